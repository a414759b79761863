"""Leakage-proof model selection on feature tables: estimator zoo, patient-grouped CV, report,
explanations and prediction. Heavy imports stay inside the submodules."""

from vitfeat.pipelines.zoo import available_pipelines, make_pipeline, register_pipeline

__all__ = ["available_pipelines", "make_pipeline", "register_pipeline", "fit_run", "FitConfig", "predict_run",
           "explain_run"]


def __getattr__(name):
    if name in ("fit_run", "FitConfig"):
        from vitfeat.pipelines import select

        return getattr(select, name)
    if name == "predict_run":
        from vitfeat.pipelines.predict import predict_run

        return predict_run
    if name == "explain_run":
        from vitfeat.pipelines.explain import explain_run

        return explain_run
    raise AttributeError(name)
