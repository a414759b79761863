"""The clinician's app (`vitfeat serve`): a Gradio front end over :func:`predict_pair` and
:func:`vitfeat.pipelines.predict.predict_run`. Thin: every answer comes from library calls."""

from vitfeat.app.predict_case import AppInputError, RunInfo, predict_pair

__all__ = ["AppInputError", "RunInfo", "predict_pair"]
