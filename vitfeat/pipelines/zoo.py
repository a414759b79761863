"""Registry of named imblearn Pipelines: impute -> (scale) -> (select) -> (sampler) -> classifier.

A pipeline name is either a registered name (``register_pipeline``) or composed from parts joined
by ``+``: one classifier, at most one sampler, at most one selector, e.g. ``lgbm+smote``,
``logreg+kbest+ros``. ``all`` means every name in :data:`DEFAULT_PIPELINES`.

Every preprocessing step lives *inside* the pipeline, so cross-validation fits imputation,
scaling, selection and resampling on the training folds only; imblearn drops samplers at
predict time, so test folds are never resampled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from imblearn.over_sampling import SMOTE, BorderlineSMOTE, RandomOverSampler
from imblearn.pipeline import Pipeline
from imblearn.under_sampling import RandomUnderSampler
from scipy.stats import loguniform, randint, uniform
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.feature_selection import SelectKBest, VarianceThreshold, f_classif
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from vitfeat.pipelines.prefilter import NearDuplicateFilter
from vitfeat.registry import Registry


@dataclass(frozen=True)
class Part:
    """One building block: ``make(random_state)`` returns a fresh estimator.

    Attributes
    ----------
    name : str
        Its token in pipeline names.
    kind : {"classifier", "sampler", "selector"}
        Which step it fills.
    make : callable
        ``make(random_state) -> estimator`` (``make(random_state, bins)`` when ``rows_per_bin``).
    description : str
        One line (``vitfeat list``, the report).
    needs_scaling : bool
        Put a StandardScaler before it.
    search_space : dict
        ``{parameter: distribution}`` for ``--search random``.
    cost : float
        CPU of one fit relative to hgb's.
    rows_per_bin : int
        For histogram models: training rows per bin (:func:`gbm_bins`).
    scaler : callable, optional
        ``scaler(random_state, n_rows) -> transformer`` used instead of StandardScaler when scaling.
    requires : tuple of (str, str)
        ``(importable module, install command)`` pairs of optional packages it needs; a pipeline
        naming it is refused with the command while one is missing (:func:`missing_requirement`).
    """

    name: str
    kind: str  # "classifier" | "sampler" | "selector"
    make: Callable[[int], object]
    description: str
    needs_scaling: bool = False
    search_space: dict = field(default_factory=dict)  # keys relative to the step
    cost: float = 1.0  # CPU of one fit relative to hgb's (measured on 480 x 1,800), to start the slow fits first
    rows_per_bin: int = 0  # a histogram model (> 0): make(random_state, bins), bins from gbm_bins
    scaler: Callable[[int], object] | None = None  # replaces StandardScaler (tabular deep models)
    requires: tuple = ()  # ((module, install command), ...): optional packages it needs
    cost_full_bins: float = 0.0  # cost at 255 bins (fit --gbm-bins full, the default), when it differs


#: Training rows per histogram bin that scikit-learn's gradient boosting aims for. Split search costs
#: bins x features at every node, whatever the number of rows; with a few hundred training rows the
#: libraries' 255 bins hold one or two rows each, finer than any split the data can support.
ROWS_PER_BIN = 8
#: The same for LightGBM and XGBoost. Their split search is most of their fit on short wide tables
#: (LightGBM, 480 x 1,800: 4.5 s at 63 bins, 2.4 s at 31), and on the benchmark's three tables and on
#: PH2 they held their AUROC at 31 bins where scikit-learn's HGB did not (docs/fit.md).
ROWS_PER_BIN_LIGHTGBM_XGBOOST = 16
#: Below this many training rows the bins stop shrinking (63 bins at 8 rows per bin, 31 at 16).
MIN_BIN_ROWS = 512


def gbm_bins(n_rows: int | None, rows_per_bin: int = ROWS_PER_BIN) -> int:
    """Histogram bins for a gradient-boosting fit on ``n_rows`` training rows.

    One bin per ``rows_per_bin`` rows, between the bins of :data:`MIN_BIN_ROWS` rows and 255 (the
    libraries' default, also used when the size is unknown). At 8 rows per bin 480 rows get 63
    bins, 1,000 rows 124, 2,048 rows or more 255; at 16 rows per bin 480 rows get 31, 1,000 rows 61
    and 4,096 or more 255.

    Parameters
    ----------
    n_rows : int or None
        Rows of the training part.
    rows_per_bin : int, default :data:`ROWS_PER_BIN`
        Training rows per bin.

    Returns
    -------
    int
    """
    if not n_rows:
        return 255
    return int(min(256, max(MIN_BIN_ROWS // rows_per_bin, n_rows // rows_per_bin))) - 1


#: Histogram-bin rules of a fit (``fit --gbm-bins``): ``full`` keeps the libraries' 255 bins (the
#: default: sized bins cost lgbm, xgb and hgb 0.008-0.017 AUROC on the 600 x 1,800 bench, issue #31);
#: ``rows`` sizes them to the training rows with :func:`gbm_bins` (faster, an explicit trade).
GBM_BINS = ("full", "rows")


def check_gbm_bins(rule: str) -> str:
    """``rule`` when it is one of :data:`GBM_BINS`.

    Parameters
    ----------
    rule : str
        A bins rule (``fit --gbm-bins``).

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For an unknown rule.
    """
    if rule not in GBM_BINS:
        raise ValueError(f"unknown gbm_bins '{rule}' (use {' or '.join(GBM_BINS)})")
    return rule


def _lgbm(rs, bins=255, early_stopping=False):
    from lightgbm import LGBMClassifier

    if early_stopping:  # fit --gbm-early-stopping: trees chosen on a split of the training rows
        from vitfeat.pipelines.gbm_early import EarlyStoppingLGBM as LGBMClassifier

    # n_jobs=1: parallelism comes from joblib over (pipeline, fold) tasks; nested threads thrash.
    # force_row_wise: the same trees as col-wise, ~15 % faster on short wide tables, without
    # LightGBM's timing probe choosing differently from run to run.
    return LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=5,
                          subsample=0.8, subsample_freq=1, colsample_bytree=0.8, max_bin=bins,
                          force_row_wise=True, n_jobs=1, random_state=rs, verbose=-1)


def _xgb(rs, bins=255, early_stopping=False):
    from xgboost import XGBClassifier

    stop = {}
    if early_stopping:
        from vitfeat.pipelines.gbm_early import PATIENCE
        from vitfeat.pipelines.gbm_early import EarlyStoppingXGB as XGBClassifier

        stop = {"early_stopping_rounds": PATIENCE}

    # XGBoost's max_bin counts one more than LightGBM's and scikit-learn's
    return XGBClassifier(n_estimators=200, learning_rate=0.05, max_depth=4, subsample=0.8,
                         colsample_bytree=0.8, tree_method="hist", max_bin=bins + 1, n_jobs=1,
                         random_state=rs, **stop)


def _hgb(rs, bins=255, early_stopping=False):
    # no class_weight: sample weights make scikit-learn's HGB about 8x slower; the sampler
    # variants (hgb+ros, ...) handle imbalance instead. early_stopping=False is its default "auto"
    # (off below 10,000 rows); True stops like vitfeat.pipelines.gbm_early (its own stratified split).
    from vitfeat.pipelines.gbm_early import PATIENCE, VALIDATION_FRACTION

    stop = dict(early_stopping=True, validation_fraction=VALIDATION_FRACTION, n_iter_no_change=PATIENCE,
                scoring="loss") if early_stopping else {}
    return HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=15, max_bins=bins,
                                          random_state=rs, **stop)


def _svm(rs):
    # Platt scaling on internal folds of the training part (scikit-learn's replacement for the
    # deprecated SVC(probability=True)).
    svc = SVC(C=1.0, kernel="rbf", class_weight="balanced", random_state=rs)
    return CalibratedClassifierCV(svc, method="sigmoid", cv=3, ensemble=False)


def _tabular_deep_parts() -> list:
    """RealMLP and TabM (vitfeat.pipelines.tabular_deep, imported only when a pipeline is built)."""
    from sklearn.preprocessing import QuantileTransformer, RobustScaler

    from vitfeat.pipelines.tabular_deep import INSTALL

    def realmlp(rs):
        from vitfeat.pipelines.tabular_deep import RealMLPClassifier

        return RealMLPClassifier(random_state=rs)

    def tabm(rs):
        from vitfeat.pipelines.tabular_deep import TabMClassifier

        return TabMClassifier(random_state=rs)

    def quantile(rs, n_rows=None):  # TabM's preprocessing: pytabkit's quantile transform to a normal distribution
        n_quantiles = max(min((n_rows or 3000) // 30, 1000), 10)
        return QuantileTransformer(output_distribution="normal", n_quantiles=n_quantiles, subsample=10**9,
                                   random_state=rs)

    return [Part("realmlp", "classifier", realmlp,
                 "RealMLP-TD tabular network (robust scaling, PBLD embeddings; CPU, early stopping in-fold)",
                 needs_scaling=True, scaler=lambda rs, n_rows=None: RobustScaler(), cost=2.0,
                 search_space={"lr": loguniform(0.01, 0.1), "p_drop": uniform(0.0, 0.3)},
                 requires=(("torch", "pip install torch"),)),
            Part("tabm", "classifier", tabm,
                 "TabM tabular network (k=32 BatchEnsemble MLPs, quantile transform; CPU, early stopping in-fold)",
                 needs_scaling=True, scaler=quantile, cost=4.0,
                 search_space={"lr": loguniform(5e-4, 5e-3), "dropout": uniform(0.0, 0.3)},
                 requires=(("tabm", INSTALL),))]


#: Classifiers by name (entry-point group ``vitfeat.classifiers``); :func:`register_classifier` adds one.
CLASSIFIERS: Registry[Part] = Registry("classifier", "vitfeat.classifiers")
for _part in [
        Part("logreg", "classifier",
             lambda rs: LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000),
             "L2-regularised logistic regression (class-balanced)", needs_scaling=True, cost=0.1,
             search_space={"C": loguniform(1e-3, 1e2)}),
        Part("svm", "classifier", _svm, "RBF support vector machine with Platt probabilities",
             needs_scaling=True, cost=0.1,
             search_space={"estimator__C": loguniform(1e-2, 1e2), "estimator__gamma": loguniform(1e-4, 1e-1)}),
        Part("rf", "classifier",
             lambda rs: RandomForestClassifier(n_estimators=200, min_samples_leaf=2, class_weight="balanced",
                                               n_jobs=1, random_state=rs),
             "random forest (class-balanced)", cost=0.65,
             search_space={"max_features": uniform(0.05, 0.5), "min_samples_leaf": randint(1, 10)}),
        Part("et", "classifier",
             lambda rs: ExtraTreesClassifier(n_estimators=200, min_samples_leaf=2, class_weight="balanced",
                                             n_jobs=1, random_state=rs),
             "extremely randomised trees (class-balanced)", cost=0.3,
             search_space={"max_features": uniform(0.05, 0.5), "min_samples_leaf": randint(1, 10)}),
        # cost_full_bins: one fit on 480 x 1,800 at 255 bins, one thread (docs/fit.md): hgb 7.4 s, xgb 11.4,
        # lgbm 8.2; at sized bins xgb is the cheapest of the three, at 255 the dearest
        Part("hgb", "classifier", _hgb, "histogram gradient boosting (scikit-learn)", cost=1.0, cost_full_bins=1.0,
             rows_per_bin=ROWS_PER_BIN,
             search_space={"learning_rate": loguniform(0.01, 0.3), "max_leaf_nodes": randint(4, 32)}),
        Part("xgb", "classifier", _xgb, "XGBoost gradient-boosted trees", cost=0.75, cost_full_bins=1.54,
             rows_per_bin=ROWS_PER_BIN_LIGHTGBM_XGBOOST,
             search_space={"learning_rate": loguniform(0.01, 0.3), "max_depth": randint(2, 7)}),
        Part("lgbm", "classifier", _lgbm, "LightGBM gradient-boosted trees", cost=1.15, cost_full_bins=1.11,
             rows_per_bin=ROWS_PER_BIN_LIGHTGBM_XGBOOST,
             search_space={"learning_rate": loguniform(0.01, 0.3), "num_leaves": randint(4, 32)}),
]:
    CLASSIFIERS.register(_part.name, _part)
for _part in _tabular_deep_parts():
    CLASSIFIERS.register(_part.name, _part)

#: Resamplers by name (entry-point group ``vitfeat.samplers``); :func:`register_sampler` adds one.
SAMPLERS: Registry[Part] = Registry("sampler", "vitfeat.samplers")
for _part in [
        Part("ros", "sampler", lambda rs: RandomOverSampler(random_state=rs),
             "random oversampling of minority classes"),
        Part("smote", "sampler", lambda rs: SMOTE(k_neighbors=3, random_state=rs),
             "SMOTE synthetic minority oversampling (k=3)"),
        Part("borderline", "sampler", lambda rs: BorderlineSMOTE(k_neighbors=3, m_neighbors=6, random_state=rs),
             "borderline-SMOTE (oversamples minority cases near the class border)"),
        Part("rus", "sampler", lambda rs: RandomUnderSampler(random_state=rs),
             "random undersampling of majority classes"),
]:
    SAMPLERS.register(_part.name, _part)

#: Feature selectors by name (entry-point group ``vitfeat.selectors``).
SELECTORS: Registry[Part] = Registry("feature selector", "vitfeat.selectors")
SELECTORS.register("kbest", Part("kbest", "selector", lambda rs: SelectKBest(f_classif, k=30),
                                 "keep the 30 features with the highest ANOVA F score (fitted per training fold)"))


def register_classifier(name: str, make: Callable[[int], object], description: str, *, needs_scaling: bool = False,
                        search_space: dict | None = None, cost: float = 1.0, overwrite: bool = False) -> Part:
    """Add a classifier to the zoo: every pipeline name may then use it (``name``, ``name+smote``, ...).

    Parameters
    ----------
    name : str
        Its name in pipeline names (no ``+``).
    make : callable
        ``make(random_state) -> estimator`` with ``fit``, ``predict_proba`` and ``classes_``.
    description : str
        One line, shown by ``vitfeat list classifier`` and in the report.
    needs_scaling : bool, default False
        Put a StandardScaler before it.
    search_space : dict, optional
        ``{parameter: scipy distribution}`` for ``--search random``.
    cost : float, default 1.0
        CPU of one fit relative to hgb's (the CV starts slow fits first).
    overwrite : bool, default False
        Replace an existing classifier of that name.

    Returns
    -------
    Part
    """
    if "+" in name or name == "all":
        raise ValueError(f"classifier name '{name}' may not contain '+' or be 'all'")
    part = Part(name, "classifier", make, description, needs_scaling=needs_scaling,
                search_space=dict(search_space or {}), cost=cost)
    return CLASSIFIERS.register(name, part, overwrite=overwrite)


def register_sampler(name: str, make: Callable[[int], object], description: str, *, overwrite: bool = False) -> Part:
    """Add a resampler (imblearn ``fit_resample``) to the zoo, usable as ``<classifier>+name``.

    Parameters
    ----------
    name : str
        Its name in pipeline names (no ``+``).
    make : callable
        ``make(random_state) -> sampler`` with ``fit_resample``.
    description : str
        One line.
    overwrite : bool, default False
        Replace an existing sampler of that name.

    Returns
    -------
    Part
    """
    if "+" in name or name == "all":
        raise ValueError(f"sampler name '{name}' may not contain '+' or be 'all'")
    return SAMPLERS.register(name, Part(name, "sampler", make, description), overwrite=overwrite)

#: What ``all`` expands to: every classifier plain, plus the common resampling variants.
#: rf+ros left it in issue #31: on PH2, vitiligo-cls, two synth tables and two fit-benchmark tables
#: (benchmarks/pipeline_wins.py, bench_fit.py; docs/fit.md) it was never best, and rf scored at least
#: as high on five of the six at the same cost; it is still accepted by name.
DEFAULT_PIPELINES = ["logreg", "logreg+smote", "svm", "rf", "et", "hgb", "xgb", "lgbm",
                     "lgbm+smote", "lgbm+borderline", "logreg+kbest+rus"]

_REGISTRY: dict[str, Callable[[int], Pipeline]] = {}


def register_pipeline(name: str, *, default: bool = False):
    """Decorator registering ``factory(random_state) -> Pipeline`` under ``name``.

    >>> @register_pipeline("my_rf")
    ... def my_rf(random_state=0):
    ...     return make_pipeline("rf+smote", random_state).set_params(classifier__n_estimators=500)

    Parameters
    ----------
    name : str
        The pipeline's name (no ``+``, not ``all``).
    default : bool, default False
        Add it to what ``all`` expands to.

    Returns
    -------
    callable
        The decorator; it returns the factory unchanged.
    """
    if "+" in name or name == "all":
        raise ValueError(f"pipeline name '{name}' may not contain '+' or be 'all'")

    def wrap(factory):
        _REGISTRY[name] = factory
        if default and name not in DEFAULT_PIPELINES:
            DEFAULT_PIPELINES.append(name)
        return factory

    return wrap


_BUILT_IN_PARTS = {(registry.kind, name) for registry in (CLASSIFIERS, SAMPLERS, SELECTORS) for name in registry}


def registered_factories() -> dict:
    """The user-registered factories and parts, to hand to worker processes (they start with the built-in ones).

    Returns
    -------
    dict
        ``{pipeline name: factory}``, plus ``{"<kind>:<name>": Part}`` for classifiers and samplers
        registered at run time (:func:`register_classifier`).
    """
    out: dict = dict(_REGISTRY)
    for registry in (CLASSIFIERS, SAMPLERS, SELECTORS):
        out.update({f"{registry.kind}:{name}": part for name, part in registry.items()
                    if (registry.kind, name) not in _BUILT_IN_PARTS})
    return out


def restore_registered(factories: dict) -> None:
    """Register in this (worker) process the factories of :func:`registered_factories`.

    Parameters
    ----------
    factories : dict
        What :func:`registered_factories` returned in the main process.
    """
    registries = {r.kind: r for r in (CLASSIFIERS, SAMPLERS, SELECTORS)}
    for name, factory in (factories or {}).items():
        kind, _, part = name.partition(":")
        if part and kind in registries:
            if part not in registries[kind]:
                registries[kind].register(part, factory)
        else:
            _REGISTRY.setdefault(name, factory)


def available_pipelines() -> list[str]:
    """Default names plus user-registered ones (composed names are accepted too)."""
    return list(dict.fromkeys(DEFAULT_PIPELINES + sorted(_REGISTRY)))


def expand_names(spec) -> list[str]:
    """Turn ``"all"``, ``"lgbm+smote,logreg"`` or a list into a list of pipeline names (checked).

    Parameters
    ----------
    spec : str or list of str
        Names, comma separated or a list; ``all`` for :data:`DEFAULT_PIPELINES`.

    Returns
    -------
    list of str
        Unique names, in order.
    """
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for name in (n.strip() for n in names):
        if not name:
            continue
        if name == "all":
            out += DEFAULT_PIPELINES
        else:
            make_pipeline(name)  # raises with the list of valid parts
            out.append(name)
    return list(dict.fromkeys(out))


def _parse(name: str) -> tuple[Part, Part | None, Part | None]:
    clf = sampler = selector = None
    for token in name.split("+"):
        for table, kind in ((CLASSIFIERS, "classifier"), (SAMPLERS, "sampler"), (SELECTORS, "selector")):
            if token in table:
                current = {"classifier": clf, "sampler": sampler, "selector": selector}[kind]
                if current is not None:
                    raise ValueError(f"pipeline '{name}': more than one {kind} ('{current.name}', '{token}')")
                if kind == "classifier":
                    clf = table[token]
                elif kind == "sampler":
                    sampler = table[token]
                else:
                    selector = table[token]
                break
        else:
            raise ValueError(
                f"pipeline '{name}': unknown part '{token}'. Classifiers: {', '.join(CLASSIFIERS)}; "
                f"samplers: {', '.join(SAMPLERS)}; selectors: {', '.join(SELECTORS)}; "
                f"registered pipelines: {', '.join(sorted(_REGISTRY)) or 'none'}")
    if clf is None:
        raise ValueError(f"pipeline '{name}' names no classifier (one of {', '.join(CLASSIFIERS)})")
    missing = missing_requirement(clf)
    if missing:
        raise ValueError(f"pipeline '{name}' needs {missing[0]}: {missing[1]}")
    return clf, sampler, selector


def missing_requirement(part: Part) -> tuple[str, str] | None:
    """The first optional package ``part`` needs that is not installed, with its install command.

    Parameters
    ----------
    part : Part
        A classifier, sampler or selector.

    Returns
    -------
    tuple of (str, str) or None
        ``(module, install command)``, or None when everything it needs is importable.
    """
    from importlib.util import find_spec

    for module, command in part.requires:
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return module, command
    return None


def make_pipeline(name: str, random_state: int = 0, prefilter: bool = False, n_rows: int | None = None,
                  early_stopping: bool = False, bins_rule: str = "rows") -> Pipeline:
    """A fresh, unfitted Pipeline for ``name``; step names are stable for ``set_params``:
    ``impute``, ``drop_constant``, ``prefilter``, ``scale``, ``select``, ``sampler``, ``classifier``.

    ``prefilter=True`` puts a :class:`~vitfeat.pipelines.prefilter.NearDuplicateFilter` right after
    imputation (registered pipelines too), so it is fitted on each training part only.
    ``n_rows`` (rows of the training part) sizes the histogram bins of gradient-boosting
    classifiers (:func:`gbm_bins`); registered pipelines keep their own settings.

    Parameters
    ----------
    name : str
        A pipeline name (``lgbm+smote``) or a registered one.
    random_state : int, default 0
        Seed of every random step.
    prefilter : bool, default False
        Add the near-duplicate filter after imputation.
    n_rows : int, optional
        Training rows (sizes the histogram bins).
    early_stopping : bool, default False
        Gradient-boosting classifiers stop on a validation split of their training rows
        (:mod:`vitfeat.pipelines.gbm_early`); others are unchanged.
    bins_rule : {"rows", "full"}, default "rows"
        ``rows`` sizes the histogram bins to ``n_rows``; ``full`` keeps 255 bins (``fit``'s default,
        :data:`GBM_BINS`). ``n_rows`` still sizes the other steps (TabM's quantile transform).

    Returns
    -------
    imblearn.pipeline.Pipeline
    """
    if name in _REGISTRY:
        pipe = _REGISTRY[name](random_state)
        if prefilter and isinstance(pipe, Pipeline):
            pipe.steps.insert(1 if pipe.steps[0][0] == "impute" else 0, ("prefilter", NearDuplicateFilter()))
        return pipe
    clf, sampler, selector = _parse(name)
    steps = [("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
             ("drop_constant", VarianceThreshold(0.0))]
    if prefilter:
        steps.append(("prefilter", NearDuplicateFilter()))
    if clf.needs_scaling or sampler is not None and sampler.name in ("smote", "borderline"):
        # SMOTE interpolates in feature space: neighbours must not be dominated by large-unit features.
        steps.append(("scale", clf.scaler(random_state, n_rows) if clf.scaler else StandardScaler()))
    if selector is not None:
        steps.append(("select", selector.make(random_state)))
    if sampler is not None:
        steps.append(("sampler", sampler.make(random_state)))
    bins = gbm_bins(n_rows if check_gbm_bins(bins_rule) == "rows" else None, clf.rows_per_bin or ROWS_PER_BIN)
    if not clf.rows_per_bin:
        model = clf.make(random_state)
    elif early_stopping:
        model = clf.make(random_state, bins, early_stopping=True)
    else:
        model = clf.make(random_state, bins)
    steps.append(("classifier", model))
    return Pipeline(steps)


def search_space(name: str) -> dict:
    """Hyperparameter distributions for RandomizedSearchCV, keyed ``classifier__<param>``.

    Parameters
    ----------
    name : str
        A pipeline name (``lgbm+smote``) or a registered one.

    Returns
    -------
    dict
        Empty for registered pipelines.
    """
    if name in _REGISTRY:
        return {}
    clf, _, _ = _parse(name)
    return {f"classifier__{k}": v for k, v in clf.search_space.items()}


def relative_cost(name: str, gbm_bins: str = "rows") -> float:
    """Rough CPU of one fit of pipeline ``name`` relative to the others (1 for registered ones).

    The CV runner starts the slowest fits first, so that the cores do not wait on one long fit at
    the end (longest-processing-time-first scheduling); results do not depend on it.

    Parameters
    ----------
    name : str
        A pipeline name (``lgbm+smote``) or a registered one.
    gbm_bins : {"rows", "full"}, default "rows"
        The fit's bins rule: at ``full`` (255 bins) the boosting models cost differently.

    Returns
    -------
    float
    """
    if name in _REGISTRY:
        return 1.0
    clf, sampler, _ = _parse(name)
    cost = clf.cost_full_bins if gbm_bins == "full" and clf.cost_full_bins else clf.cost
    return cost * (1.3 if sampler is not None and sampler.name != "rus" else 1.0)


def describe(name: str) -> str:
    """The pipeline in words: classifier; selection; resampling.

    Parameters
    ----------
    name : str
        A pipeline name (``lgbm+smote``) or a registered one.

    Returns
    -------
    str
    """
    if name in _REGISTRY:
        return f"user-registered pipeline '{name}'"
    clf, sampler, selector = _parse(name)
    parts = [clf.description]
    if selector:
        parts.append(selector.description)
    parts.append(sampler.description if sampler else "no resampling")
    return "; ".join(parts)


def add_custom_pipelines(spec: dict) -> list[str]:
    """Register pipelines from a YAML ``custom:`` section::

        custom:
          big_rf: {base: rf+smote, params: {classifier__n_estimators: 500}}

    Parameters
    ----------
    spec : dict
        ``{name: {"base": pipeline name, "params": {set_params key: value}}}``.

    Returns
    -------
    list of str
        The names registered.
    """
    names = []
    for name, entry in (spec or {}).items():
        base = entry.get("base")
        params = dict(entry.get("params") or {})
        if not base:
            raise ValueError(f"custom pipeline '{name}': 'base' (e.g. rf+smote) is required")
        make_pipeline(base).set_params(**params)  # fail now, not in a worker

        def factory(random_state=0, _base=base, _params=params):
            return make_pipeline(_base, random_state).set_params(**_params)

        register_pipeline(name)(factory)
        names.append(name)
    return names
