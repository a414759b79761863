"""What drives a fitted run: grouped permutation importance on held-out folds, SHAP on the final
model, aggregated by feature family and modality with plain-language descriptions.

Correlated features are clustered first (Spearman correlation, average-linkage hierarchy) and each
cluster is permuted as one unit: permuting one of two near-duplicates leaves the other in place,
which would split (and hide) their shared importance. scikit-learn's ``permutation_importance``
permutes single columns only, hence the small loop here.
"""

from __future__ import annotations

import html
import logging
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.cluster import hierarchy  # noqa: E402
from scipy.spatial.distance import squareform  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.feature_selection import f_classif  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from vitfeat.artefacts import verify_run  # noqa: E402
from vitfeat.names import join_inside  # noqa: E402
from vitfeat.atomic import write_figure, write_text  # noqa: E402

from vitfeat.pipelines.persist import (  # noqa: E402
    load_model,
    read_feature_table,
    write_csv,
    write_json,
)

log = logging.getLogger(__name__)

TREE_MODELS = ("RandomForestClassifier", "ExtraTreesClassifier", "HistGradientBoostingClassifier",
               "XGBClassifier", "LGBMClassifier", "GradientBoostingClassifier", "DecisionTreeClassifier")
LINEAR_MODELS = ("LogisticRegression", "RidgeClassifier", "SGDClassifier", "LinearSVC")

MODALITY_TEXT = {"clinical": "in the clinical (daylight) photo", "wood": "under Wood's lamp",
                 "pair": "comparing the Wood's-lamp and daylight photos"}


def feature_group(name: str) -> tuple[str, str]:
    """``(modality, family)`` of a ``<modality>_<family>_<feature>`` column name.

    Parameters
    ----------
    name : str
        A feature column name.

    Returns
    -------
    tuple of str
        The first two ``_``-separated parts; the family is ``"other"`` for a name without ``_``.
    """
    parts = name.split("_")
    return (parts[0], parts[1] if len(parts) > 1 else "other")


def describe_group(modality: str, family: str) -> str:
    """Plain-language description of a column group: the family's own declaration
    (:func:`vitfeat.featurize.describe_group`), else the family's name for undeclared families.

    Parameters
    ----------
    modality : str
        ``clinical``, ``wood`` or ``pair`` (others are shown as they are).
    family : str
        The feature family's name.

    Returns
    -------
    str
    """
    from vitfeat.featurize import describe_group as declared

    try:
        return declared(modality, family)
    except KeyError:
        return f"{family.replace('-', ' ')} features {MODALITY_TEXT.get(modality, modality)}"


def describe_feature(name: str) -> str:
    """Plain-language description of a feature column: the declaring family's wording
    (:func:`vitfeat.featurize.describe_column`), else its group and bare name for undeclared ones.

    Parameters
    ----------
    name : str
        A ``<modality>_<family>_<feature>`` column name.

    Returns
    -------
    str
    """
    from vitfeat.featurize import describe_column

    try:
        return describe_column(name)
    except KeyError:
        modality, family = feature_group(name)
        rest = name.split("_", 2)[2] if name.count("_") >= 2 else name
        return f"{describe_group(modality, family)}: {rest.replace('_', ' ')}"


def _group_text(modality: str, family: str, members: list[str]) -> str:
    """The group's description; an undeclared group also names (up to three of) its features."""
    from vitfeat.featurize import describe_group as declared

    try:
        return declared(modality, family)
    except KeyError:
        bare = [m.split("_", 2)[2].replace("_", " ") if m.count("_") >= 2 else m for m in members[:3]]
        more = f" and {len(members) - 3} more" if len(members) > 3 else ""
        return f"{describe_group(modality, family)} ({', '.join(bare)}{more})"


def correlation_clusters(X: np.ndarray, names: list[str], threshold: float = 0.3) -> np.ndarray:
    """Cluster label per feature: features whose Spearman |rho| exceeds about ``1 - threshold``
    end up together (average linkage on ``1 - |rho|``).

    Parameters
    ----------
    X : numpy.ndarray
        ``(n_cases, n_features)`` feature matrix; missing values are filled with the column median.
    names : list of str
        The feature names (one per column of ``X``).
    threshold : float, default 0.3
        Distance (``1 - |rho|``) at which the average-linkage tree is cut.

    Returns
    -------
    numpy.ndarray
        An integer cluster label (from 1) per column.
    """
    if X.shape[1] == 1:
        return np.ones(1, dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-missing columns (e.g. Wood's features of clinical-only data)
        filled = np.nan_to_num(np.where(np.isnan(X), np.nanmedian(X, axis=0), X))
        rho = spearmanr(filled).statistic
    rho = np.atleast_2d(np.nan_to_num(rho, nan=0.0))
    dist = 1.0 - np.abs((rho + rho.T) / 2)
    np.fill_diagonal(dist, 0.0)
    link = hierarchy.linkage(squareform(np.clip(dist, 0, None), checks=False), method="average")
    return hierarchy.fcluster(link, t=threshold, criterion="distance")


def grouped_permutation_importance(estimator, X, y, groups: dict[str, list[int]], classes_idx, *,
                                   n_repeats: int = 5, seed: int = 0) -> dict[str, float]:
    """Mean increase of log loss on (X, y) when each group's columns are permuted together.

    Parameters
    ----------
    estimator : classifier
        A fitted classifier with ``predict_proba`` and integer ``classes_``.
    X : numpy.ndarray
        The held-out feature matrix.
    y : numpy.ndarray
        Integer class indices of the held-out cases.
    groups : dict of str to list of int
        Column indices permuted as one unit, by group name.
    classes_idx : list of int
        Every class index of the target (classes missing from the fold still count in the loss).
    n_repeats : int, default 5
        Shuffles per group; the increase is averaged over them.
    seed : int, default 0
        Seed of the row permutations.

    Returns
    -------
    dict of str to float
        Mean rise in log loss per group (larger: the model relies more on it).
    """
    rng = np.random.default_rng(seed)

    def loss(data):
        proba = np.zeros((len(data), len(classes_idx)))
        proba[:, np.asarray(estimator.classes_, dtype=int)] = estimator.predict_proba(data)
        proba = np.clip(proba, 1e-7, 1)
        return log_loss(y, proba / proba.sum(1, keepdims=True), labels=classes_idx)

    base = loss(X)
    out = {}
    for key, cols in groups.items():
        drops = []
        for _ in range(n_repeats):
            shuffled = X.copy()
            perm = rng.permutation(len(X))
            shuffled[:, cols] = X[perm][:, cols]
            drops.append(loss(shuffled) - base)
        out[key] = float(np.mean(drops))
    return out


def _transformed(model, X: np.ndarray, names: list[str]):
    """Apply every fitted step except samplers and the classifier; track column names."""
    Xt, current = X, np.asarray(names, dtype=object)
    for _, step in model.steps[:-1]:
        if hasattr(step, "fit_resample") or step in (None, "passthrough"):
            continue
        Xt = step.transform(Xt)
        current = np.asarray(step.get_feature_names_out(current), dtype=object)
    return Xt, [str(c) for c in current]


def shap_values(model, X: np.ndarray, names: list[str], classes: list[str], positive: str | None):
    """SHAP values ``(n_cases, n_features, n_classes)`` on the transformed features of the final
    estimator, with their names; ``None`` for models without an exact explainer.

    Parameters
    ----------
    model : sklearn.pipeline.Pipeline
        The fitted pipeline (samplers are skipped, the other steps transform ``X``).
    X : numpy.ndarray
        Raw feature matrix of the cases to explain.
    names : list of str
        The raw feature names.
    classes : list of str
        The target's classes in model order.
    positive : str or None
        The positive class of a binary target (unused by the computation itself).

    Returns
    -------
    tuple
        ``(values, transformed_names, transformed_X, note)``; ``values`` is ``None`` when the
        classifier is neither a tree model nor a linear model, and ``note`` says which explainer ran.
    """
    import shap

    clf = model.steps[-1][1]
    kind = type(clf).__name__
    Xt, tnames = _transformed(model, X, names)
    if kind in TREE_MODELS:
        explainer = shap.TreeExplainer(clf)
    elif kind in LINEAR_MODELS:
        explainer = shap.LinearExplainer(clf, shap.maskers.Independent(Xt, max_samples=200))
    else:
        return None, tnames, Xt, f"no exact SHAP explainer for {kind}; permutation importance only"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = np.asarray(explainer.shap_values(Xt))
    if values.ndim == 2:  # binary models explained on the log-odds of the second class
        values = np.stack([-values, values], axis=-1)
    elif values.ndim == 3 and values.shape[0] == len(classes) and values.shape[1] == len(Xt):
        values = np.moveaxis(values, 0, -1)
    return values, tnames, Xt, f"SHAP {type(explainer).__name__} on {kind}"


def explain_cases(bundle: dict, target: str, X: np.ndarray, top: int = 3) -> list[str]:
    """One sentence per case naming the features that pushed its prediction most.

    Parameters
    ----------
    bundle : dict
        A loaded ``model.skops`` bundle (``features`` and ``targets``).
    target : str
        The target whose model is explained.
    X : numpy.ndarray
        Raw feature matrix of the cases, columns in ``bundle["features"]`` order.
    top : int, default 3
        Features named per case (largest |SHAP| toward the predicted class).

    Returns
    -------
    list of str
        One text per case; empty strings when the model has no exact SHAP explainer.
    """
    entry = bundle["targets"][target]
    model, classes = entry["model"], entry["classes"]
    values, tnames, Xt, _ = shap_values(model, X, bundle["features"], classes, entry.get("positive"))
    if values is None:
        return [""] * len(X)
    proba = model.predict_proba(X)
    # Show the measured value, not the scaled one the classifier sees.
    raw_col = [bundle["features"].index(n) if n in bundle["features"] else None for n in tnames]
    texts = []
    for i in range(len(X)):
        k = int(np.asarray(model.classes_)[proba[i].argmax()])
        contrib = values[i, :, k]
        order = np.argsort(-np.abs(contrib))[:top]
        shown = {j: X[i, raw_col[j]] if raw_col[j] is not None else Xt[i, j] for j in order}
        texts.append("; ".join(f"{tnames[j]}={shown[j]:.3g} ({'+' if contrib[j] >= 0 else '-'}"
                               f"{abs(contrib[j]):.2f} toward {classes[k]})" for j in order))
    return texts


def _bar(series: pd.Series, title: str, xlabel: str):
    series = series.iloc[:15][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(series) + 1.2))
    ax.barh(range(len(series)), series.to_numpy(), color="#3182ce")
    ax.set_yticks(range(len(series)), [textwrap.shorten(str(s), 110) for s in series.index], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


def _save(fig, path: Path) -> str:
    write_figure(path, fig, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path.name


@dataclass
class Explanation:
    """What :func:`compute_explanation` found for one target of a fitted run (nothing written yet).

    Attributes
    ----------
    target, pipeline : str
        The explained target and the name of its chosen pipeline.
    classes : list of str
        The target's classes in model order.
    positive : str or None
        The positive class of a binary target.
    frame : pandas.DataFrame
        The cases explained (feature-table rows with a label and no extraction error).
    y : numpy.ndarray
        Their class indices.
    cluster_table, group_table, modality_table : pandas.DataFrame
        Permutation importance by correlated-feature cluster, by ``<modality>_<family>`` group and
        by modality.
    group_columns : dict of str to list of str
        The feature columns of each group.
    relevance : pandas.Series
        ANOVA F of each feature with the target, on its own.
    shap_by_feature : pandas.Series
        Mean |SHAP| per transformed feature, largest first (empty without an explainer).
    shap_note : str
        Which SHAP explainer ran, or why none did.
    shap_values, shap_data : numpy.ndarray or None
        The SHAP values and the transformed features they explain.
    shap_names : list of str
        Names of the transformed features.
    table_path : pathlib.Path or None
        The run's feature table.
    provenance : dict
        The feature table's provenance (photo folders for the galleries).
    """

    target: str
    pipeline: str
    classes: list[str]
    positive: str | None
    frame: pd.DataFrame  # the cases explained (feature table rows with a label, no errors)
    y: np.ndarray
    cluster_table: pd.DataFrame
    group_table: pd.DataFrame
    modality_table: pd.DataFrame
    group_columns: dict[str, list[str]]
    relevance: pd.Series  # ANOVA F of each feature with the target, on its own
    shap_by_feature: pd.Series
    shap_note: str
    shap_values: np.ndarray | None = None
    shap_data: np.ndarray | None = None
    shap_names: list[str] = field(default_factory=list)
    table_path: Path | None = None
    provenance: dict = field(default_factory=dict)


def _load_cases(run: Path, target: str | None, trust_modified: bool = False):
    """``(bundle, target, frame, X, y, table_path, provenance)`` of a fitted sklearn run."""
    from vitfeat.dataset import file_hash

    meta = verify_run(run, ("model.skops",), trust_modified=trust_modified)
    if meta.get("kind") != "sklearn":
        raise ValueError(f"{run}: explain works on sklearn runs (this run's kind is '{meta.get('kind')}')")
    bundle = load_model(run / "model.skops")
    target = target or next(iter(bundle["targets"]))
    if target not in bundle["targets"]:
        raise ValueError(f"{run}: no model for target '{target}' (targets: {', '.join(bundle['targets'])})")
    table_path = Path(meta["features_path"])
    if not table_path.is_file():
        raise FileNotFoundError(f"{table_path}: the run's feature table is gone; explain needs it")
    if file_hash(table_path) != meta["features_hash"]:
        raise ValueError(f"{table_path}: changed since the run was fitted (content hash differs); re-run fit")
    frame, provenance = read_feature_table(table_path)
    if "error" in frame.columns:
        frame = frame[frame["error"].fillna("").astype(str).str.strip() == ""]
    frame = frame[frame[target].notna()].reset_index(drop=True)
    X = frame[bundle["features"]].to_numpy(dtype=float, copy=True)
    X[~np.isfinite(X)] = np.nan
    y = np.searchsorted(bundle["targets"][target]["classes"], frame[target].astype(str).to_numpy())
    return bundle, target, frame, X, y, table_path, provenance


def _column_groups(X, names, cluster_threshold) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Column indices of each correlated-feature cluster and of each ``<modality>_<family>`` group."""
    clusters: dict[str, list[int]] = {}
    for j, c in enumerate(correlation_clusters(X, names, cluster_threshold)):
        clusters.setdefault(f"cluster_{c:03d}", []).append(j)
    families: dict[str, list[int]] = {}
    for j, n in enumerate(names):
        families.setdefault("_".join(feature_group(n)), []).append(j)
    return clusters, families


def _held_out_importance(run: Path, entry, frame, X, y, clusters, families, *, n_repeats, seed, progress):
    """Grouped permutation importance per fold of the run's first repeat (clusters, families)."""
    plan = pd.read_csv(run / "folds.csv", dtype={"case_id": str})
    plan = plan[plan["repeat"] == plan["repeat"].min()]
    folds = frame["case_id"].map(dict(zip(plan["case_id"], plan["fold"]))).to_numpy()
    classes_idx = list(range(len(entry["classes"])))
    perm_cluster, perm_family = [], []
    for fold in tqdm(sorted(pd.unique(folds[~pd.isna(folds)])), desc="permutation importance", disable=not progress):
        test = folds == fold
        # the final pipeline with its chosen hyperparameters, refitted without this fold's patients
        est = clone(entry["model"]).fit(X[~test], y[~test])
        kw = dict(n_repeats=n_repeats, seed=seed + int(fold))
        perm_cluster.append(grouped_permutation_importance(est, X[test], y[test], clusters, classes_idx, **kw))
        perm_family.append(grouped_permutation_importance(est, X[test], y[test], families, classes_idx, **kw))
    return pd.DataFrame(perm_cluster), pd.DataFrame(perm_family)


def _cluster_table(clusters, names, perm_cluster, relevance) -> pd.DataFrame:
    # A cluster is named by its member most related to the target on its own (ANOVA F), so a
    # cluster of co-varying activity signs is not named after whichever column came first.
    rows = []
    for key, cols in clusters.items():
        members = [names[j] for j in sorted(cols, key=lambda j: -relevance[j])]
        groups = sorted({"_".join(feature_group(m)) for m in members})
        description = describe_feature(members[0])
        if len(members) > 1:
            description += f" — with {len(members) - 1} correlated feature(s) from {', '.join(groups)}"
        rows.append({"cluster": key, "importance": perm_cluster[key].mean(),
                     "sd_over_folds": perm_cluster[key].std(ddof=1),
                     "n_features": len(cols), "lead_feature": members[0], "description": description,
                     "groups": ";".join(groups), "features": ";".join(members)})
    return pd.DataFrame(rows).sort_values("importance", ascending=False)


def _group_table(families, names, perm_family, shap_by_feature) -> pd.DataFrame:
    rows = []
    for key, cols in families.items():
        modality, family = key.split("_", 1)
        members = [names[j] for j in cols]
        shap_sum = float(shap_by_feature.reindex(members).fillna(0).sum()) if len(shap_by_feature) else np.nan
        rows.append({"group": key, "modality": modality, "family": family,
                     "description": _group_text(modality, family, members),
                     "permutation_importance": perm_family[key].mean(),
                     "permutation_sd": perm_family[key].std(ddof=1), "shap_mean_abs_sum": shap_sum,
                     "n_features": len(cols)})
    table = pd.DataFrame(rows).sort_values("permutation_importance", ascending=False)
    # Shuffling 58 texture columns at once destroys more than shuffling 5: divide by the group's size
    # so large and small families can be compared per feature (the total stays the ranking).
    table["importance_per_feature"] = table["permutation_importance"] / table["n_features"]
    table["shap_per_feature"] = table["shap_mean_abs_sum"] / table["n_features"]
    return table


def compute_explanation(run_dir, target: str | None = None, *, n_repeats: int = 5, cluster_threshold: float = 0.3,
                        max_shap_cases: int = 1000, seed: int = 0, progress: bool = True,
                        trust_modified: bool = False) -> Explanation:
    """Permutation importance on held-out folds and SHAP of the final model, writing nothing.

    Parameters
    ----------
    run_dir : path-like
        A run directory written by ``fit`` (sklearn kind).
    target : str, optional
        The target to explain (default: the run's first).
    n_repeats, cluster_threshold, max_shap_cases, seed, progress
        Shuffles per group, the correlation-cluster cut (``1 - |rho|``), the SHAP sample size, the
        random seed and the progress bar.
    trust_modified : bool, default False
        Use a run whose files changed after fit (with a warning) instead of refusing it.

    Returns
    -------
    Explanation
        The tables (clusters, feature groups, modalities) and the SHAP summary.
    """
    run = Path(run_dir)
    bundle, target, frame, X, y, table_path, provenance = _load_cases(run, target, trust_modified)
    entry, names = bundle["targets"][target], bundle["features"]
    clusters, families = _column_groups(X, names, cluster_threshold)
    perm_cluster, perm_family = _held_out_importance(run, entry, frame, X, y, clusters, families,
                                                     n_repeats=n_repeats, seed=seed, progress=progress)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        filled = np.nan_to_num(np.where(np.isnan(X), np.nanmedian(X, axis=0), X))
        relevance = np.nan_to_num(f_classif(filled, y)[0])

    pick = np.random.default_rng(seed).choice(len(X), size=min(len(X), max_shap_cases), replace=False)
    values, tnames, Xt, shap_note = shap_values(entry["model"], X[pick], names, entry["classes"], entry.get("positive"))
    shap_by_feature = pd.Series(dtype=float)
    if values is not None:
        k = entry["classes"].index(entry["positive"]) if entry.get("positive") else None
        mean_abs = np.abs(values[:, :, k]).mean(0) if k is not None else np.abs(values).mean((0, 2))
        shap_by_feature = pd.Series(mean_abs, index=tnames).sort_values(ascending=False)

    group_table = _group_table(families, names, perm_family, shap_by_feature)
    modality_table = (group_table.groupby("modality")[["permutation_importance", "shap_mean_abs_sum"]].sum()
                      .sort_values("permutation_importance", ascending=False).reset_index())
    return Explanation(target=target, pipeline=entry["pipeline"], classes=list(entry["classes"]),
                       positive=entry.get("positive"), frame=frame, y=y,
                       cluster_table=_cluster_table(clusters, names, perm_cluster, relevance),
                       group_table=group_table, modality_table=modality_table,
                       group_columns={k: [names[j] for j in cols] for k, cols in families.items()},
                       relevance=pd.Series(relevance, index=names), shap_by_feature=shap_by_feature,
                       shap_note=shap_note, shap_values=values, shap_data=Xt, shap_names=tnames,
                       table_path=table_path, provenance=provenance)


def explain_run(run_dir, target: str | None = None, *, n_repeats: int = 5, cluster_threshold: float = 0.3,
                max_shap_cases: int = 1000, seed: int = 0, progress: bool = True, n_galleries: int = 3,
                trust_modified: bool = False) -> Path:
    """Write ``RUN_DIR/explain/<target>/`` (CSV tables, PNG plots, case galleries, explain.html,
    summary.json) and re-render the run's report so that it links the explanation.

    Parameters
    ----------
    run_dir : path-like
        A run directory written by ``fit`` (sklearn kind).
    target : str, optional
        The target to explain (default: the run's first).
    n_repeats, cluster_threshold, max_shap_cases, seed, progress, trust_modified
        As in :func:`compute_explanation`.
    n_galleries : int, default 3
        How many of the top feature groups get a case gallery.

    Returns
    -------
    pathlib.Path
        The explain directory.
    """
    from vitfeat.pipelines.report import write_report

    result = compute_explanation(run_dir, target, n_repeats=n_repeats, cluster_threshold=cluster_threshold,
                                 max_shap_cases=max_shap_cases, seed=seed, progress=progress,
                                 trust_modified=trust_modified)
    out = write_explanation(result, join_inside(Path(run_dir) / "explain", result.target), n_galleries=n_galleries)
    write_report(Path(run_dir))
    return out


def lead_feature(result: Explanation, group: str) -> tuple[str, str]:
    """``(feature, how_chosen)``: the group's most important feature — largest mean |SHAP| of the
    final model where SHAP covers the group's columns, else largest ANOVA F with the target.

    Parameters
    ----------
    result : Explanation
        A computed explanation.
    group : str
        A ``<modality>_<family>`` key of ``result.group_columns``.

    Returns
    -------
    tuple of str
        The feature's name and how it was chosen (in words).
    """
    members = result.group_columns[group]
    shap = result.shap_by_feature.reindex(members).dropna()
    if len(shap) and shap.max() > 0:
        return str(shap.idxmax()), "largest mean |SHAP| of the final model in the group"
    return str(result.relevance.reindex(members).idxmax()), "largest ANOVA F with the target in the group"


def write_galleries(result: Explanation, out: Path, n_groups: int = 3) -> list[dict]:
    """A case gallery (``gallery_<group>.png`` and ``.csv``) for each of the top ``n_groups`` groups.

    Never raises for missing photos: the gallery is skipped with a logged warning and the reason is
    returned as ``note`` (shown in explain.html).

    Parameters
    ----------
    result : Explanation
        A computed explanation.
    out : pathlib.Path
        The explain directory the files go to.
    n_groups : int, default 3
        How many groups (by permutation importance) get a gallery.

    Returns
    -------
    list of dict
        Per group: ``group``, ``feature``, ``description``, ``chosen_by``, ``png``, ``csv``
        (file names, ``png`` ``None`` when skipped) and ``note``.
    """
    from vitfeat.pipelines.gallery import draw_gallery, extreme_cases, find_photos

    photos, problem = find_photos(result.provenance, result.table_path)
    galleries = []
    for group in result.group_table["group"].head(n_groups):
        feature, how = lead_feature(result, group)
        item = {"group": group, "feature": feature, "description": describe_feature(feature), "chosen_by": how,
                "png": None, "csv": None, "note": problem}
        chosen = extreme_cases(result.frame, feature, result.target)
        item["csv"] = write_csv(chosen.assign(feature=feature), join_inside(out, f"gallery_{group}", ".csv")).name
        if problem is None:
            try:
                title = f"{group}: {feature} — lowest four and highest four cases"
                item["png"] = draw_gallery(chosen, photos, title, join_inside(out, f"gallery_{group}", ".png")).name
            except (OSError, ValueError) as err:  # a moved or unreadable photo: the rest of explain goes on
                item["note"] = str(err)
        if item["note"]:
            log.warning("case gallery for %s skipped: %s", group, item["note"])
        galleries.append(item)
    return galleries


def write_explanation(result: Explanation, out: Path, n_galleries: int = 3) -> Path:
    """Write the tables, figures, case galleries, summary.json and explain.html of ``result`` to ``out``.

    Parameters
    ----------
    result : Explanation
        A computed explanation.
    out : pathlib.Path
        The directory to write (created if missing).
    n_galleries : int, default 3
        How many of the top feature groups get a case gallery.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    out.mkdir(parents=True, exist_ok=True)
    write_csv(result.cluster_table, out / "importance_clusters.csv")
    write_csv(result.group_table, out / "importance_groups.csv")
    write_csv(result.modality_table, out / "importance_modalities.csv")
    if len(result.shap_by_feature):
        write_csv(result.shap_by_feature.rename("shap_mean_abs").rename_axis("feature").reset_index(),
                  out / "shap_features.csv")
    figures = _write_figures(result, out)
    galleries = write_galleries(result, out, n_galleries)
    top_groups = [{"group": r.group, "description": r.description, "importance": float(r.permutation_importance)}
                  for r in result.group_table.itertuples()]
    write_json({"target": result.target, "pipeline": result.pipeline, "shap": result.shap_note,
                "top_groups": top_groups, "galleries": galleries,
                "top_clusters": result.cluster_table.head(15)[["cluster", "lead_feature", "description", "importance"]]
                .to_dict("records")}, out / "summary.json")
    _write_html(out, result, figures, galleries)
    return out


def _write_figures(result: Explanation, out: Path) -> list[str]:
    figures = [_save(_bar(result.group_table.set_index("description")["permutation_importance"],
                          "Feature groups: permutation importance on held-out folds", "increase in log loss"),
                     out / "groups_permutation.png"),
               _save(_bar(result.cluster_table.set_index("description")["importance"],
                          "Correlated-feature clusters: permutation importance", "increase in log loss"),
                     out / "clusters_permutation.png")]
    if result.shap_values is None:
        return figures
    import shap

    classes = result.classes
    k = classes.index(result.positive) if result.positive else int(np.bincount(result.y).argmin())
    figures.append(_save(_bar(result.shap_by_feature, f"Mean |SHAP| of the final model ({result.shap_note})",
                              "mean |SHAP value|"), out / "shap_bar.png"))
    shap.plots.beeswarm(shap.Explanation(result.shap_values[:, :, k], data=result.shap_data,
                                         feature_names=result.shap_names), max_display=15, show=False)
    fig = plt.gcf()
    fig.suptitle(f"SHAP beeswarm, pushes toward '{classes[k]}'", fontsize=10)
    figures.append(_save(fig, out / "shap_beeswarm.png"))
    return figures


def _gallery_html(galleries: list[dict]) -> str:
    if not galleries:
        return ""
    parts = ["<h2>Case galleries</h2><p>For each of the top feature groups, its most important feature on the "
             "run's own cases: the four with the lowest and the four with the highest value (clinical photo, "
             "Wood's photo beside it where there is one, lesion outlined in red, labelled with class and value).</p>"]
    for g in galleries:
        parts.append(f"<h3>{html.escape(g['group'])}: <code>{html.escape(g['feature'])}</code></h3>"
                     f"<p>{html.escape(g['description'])} — chosen as the {html.escape(g['chosen_by'])}. "
                     f"Cases: <code>{html.escape(g['csv'])}</code>.</p>")
        if g["png"]:
            parts.append(f'<img src="{html.escape(g["png"])}" alt="case gallery for {html.escape(g["group"])}">')
        else:
            parts.append(f"<p><b>No gallery:</b> {html.escape(g['note'] or '')}</p>")
    return "\n".join(parts)


def _write_html(out: Path, result: Explanation, figures: list[str], galleries: list[dict]) -> None:
    def table(frame, cols):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(f'{v:.4f}' if isinstance(v, float) else str(v))}</td>"
                                        for v in row) + "</tr>" for row in frame[cols].itertuples(index=False))
        return f"<table><tr>{head}</tr>{body}</table>"

    target, pipeline, shap_note = result.target, result.pipeline, result.shap_note
    cluster_cols = ["cluster", "description", "importance", "n_features", "features"]
    page = f"""<!doctype html><html lang=en><head><meta charset=utf-8><title>Explanation: {html.escape(target)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;font-size:.85em;max-width:100%}}td,th{{border:1px solid #ccc;padding:2px 6px}}
th{{background:#edf2f7}}td{{overflow-wrap:anywhere}}img{{max-width:100%}}summary{{cursor:pointer;font-weight:600}}
</style></head><body>
<h1>What drives '{html.escape(target)}' ({html.escape(pipeline)})</h1>
<p>Permutation importance is measured on held-out folds: a model trained without those patients predicts
them with one group of features shuffled; the more the predictions worsen (log loss rises), the more the
model relies on that group. Correlated features are shuffled together. {html.escape(shap_note)}.</p>
<p><a href="../../report.html">Back to the report</a></p>
{''.join(f'<img src="{f}" alt="{f}"><br>' for f in figures[:1])}
<details><summary>More figures: clusters{' and SHAP' if len(figures) > 2 else ''}</summary>
{''.join(f'<img src="{f}" alt="{f}"><br>' for f in figures[1:])}</details>
<h2>Feature groups</h2><details><summary>Table of the feature groups</summary>
<p>Ranked by the rise in log loss when the whole group is shuffled. Large groups gain from their size,
so <code>importance_per_feature</code> (that rise divided by the number of features in the group)
and <code>shap_per_feature</code> (summed mean |SHAP| divided likewise) compare groups of
different sizes.</p>{table(result.group_table, ['description', 'group', 'permutation_importance', 'permutation_sd',
                   'importance_per_feature', 'shap_mean_abs_sum', 'shap_per_feature', 'n_features'])}</details>
<details><summary>Case galleries</summary>{_gallery_html(galleries)}</details>
<h2>Correlated-feature clusters</h2><details><summary>Table of the 40 strongest clusters</summary>
{table(result.cluster_table.head(40), cluster_cols)}</details>
</body></html>"""
    write_text(out / "explain.html", page)
