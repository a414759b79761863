"""What drives a fitted run: grouped permutation importance on held-out folds, SHAP on the final
model, aggregated by feature family and modality with plain-language descriptions.

Correlated features are clustered first (Spearman correlation, average-linkage hierarchy) and each
cluster is permuted as one unit: permuting one of two near-duplicates leaves the other in place,
which would split (and hide) their shared importance. scikit-learn's ``permutation_importance``
permutes single columns only, hence the small loop here.
"""

from __future__ import annotations

import html
import json
import logging
import textwrap
import warnings
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
FAMILY_TEXT = {
    "border": "border sharpness (how abruptly the lesion edge fades into skin)",
    "shape": "lesion shape and size (area, compactness, irregularity)",
    "area": "lesion area", "firstorder": "brightness and colour statistics inside the lesion",
    "color": "colour (CIELAB) statistics", "colour": "colour (CIELAB) statistics",
    "contrast": "contrast between lesion and surrounding skin",
    "texture": "texture (GLCM, wavelets)", "glcm": "texture regularity (GLCM)", "wavelet": "fine texture (wavelets)",
    "satellites": "satellite (confetti-like) macules around the lesion",
    "satellite": "satellite (confetti-like) macules around the lesion",
    "intensity": "fluorescence intensity and its uniformity",
    "fluorescence": "fluorescence contrast and uniformity",
    "trichrome": "intermediate-tone (trichrome) zone", "koebner": "linear (Koebner) lesions",
    "registration": "agreement between the two photos after registration",
    "deep": "deep-network image embedding (not directly interpretable)",
    "pair": "lesion extent under Wood's lamp versus daylight (area ratio, overlap)",
    "wood": "fluorescence contrast and uniformity",
}


#: Feature-name fragments worth a clinical phrase of their own.
FEATURE_HINTS = {"transition_width": "border blur (width of the lesion-to-skin transition)",
                 "crossing_width": "border blur (width of the lesion-to-skin transition)",
                 "edge_gradient": "border sharpness (edge gradient)", "satellites_count": "number of satellite macules",
                 "trichrome": "intermediate-tone (trichrome) zone", "uniformity": "uniformity of fluorescence",
                 "delta_e": "colour difference between lesion and surrounding skin (CIEDE2000)"}


def feature_group(name: str) -> tuple[str, str]:
    """``(modality, family)`` of a ``<modality>_<family>_<feature>`` column name."""
    parts = name.split("_")
    return (parts[0], parts[1] if len(parts) > 1 else "other")


def describe_group(modality: str, family: str) -> str:
    what = FAMILY_TEXT.get(family, family.replace("-", " "))
    where = MODALITY_TEXT.get(modality, modality)
    if modality == "pair" and family in ("area", "pair", "shape", "wood"):
        return "lesion area under Wood's lamp relative to daylight (Wood's-to-clinical area ratio, overlap)"
    if modality == "wood" and family in ("wood", "fluorescence"):
        return "fluorescence contrast and uniformity under Wood's lamp"
    return f"{what} {where}"


def describe_feature(name: str) -> str:
    modality, family = feature_group(name)
    if modality == "pair" and "area" in name and "ratio" in name:
        return "Wood's-to-clinical lesion area ratio" + (" (without registration)" if "unregistered" in name else "")
    rest = name.split("_", 2)[2] if name.count("_") >= 2 else name
    for key, text in FEATURE_HINTS.items():
        if key in name:
            return f"{text} {MODALITY_TEXT.get(modality, modality)} ({rest.replace('_', ' ')})"
    return f"{describe_group(modality, family)}: {rest.replace('_', ' ')}"


def correlation_clusters(X: np.ndarray, names: list[str], threshold: float = 0.3) -> np.ndarray:
    """Cluster label per feature: features whose Spearman |rho| exceeds about ``1 - threshold``
    end up together (average linkage on ``1 - |rho|``)."""
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
    """Mean increase of log loss on (X, y) when each group's columns are permuted together."""
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
    estimator, with their names; ``None`` for models without an exact explainer."""
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
    """One sentence per case naming the features that pushed its prediction most."""
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
        value = (lambda j: X[i, raw_col[j]] if raw_col[j] is not None else Xt[i, j])
        texts.append("; ".join(f"{tnames[j]}={value(j):.3g} ({'+' if contrib[j] >= 0 else '-'}"
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
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path.name


def explain_run(run_dir, target: str | None = None, *, n_repeats: int = 5, cluster_threshold: float = 0.3,
                max_shap_cases: int = 1000, seed: int = 0, progress: bool = True) -> Path:
    """Write ``RUN_DIR/explain/<target>/`` (CSV tables, PNG plots, explain.html, summary.json) and re-render
    the run's report so that it links the explanation. Returns the explain directory."""
    from vitfeat.dataset import file_hash
    from vitfeat.pipelines.report import write_report

    run = Path(run_dir)
    meta = json.loads((run / "run.json").read_text())
    if meta.get("kind") != "sklearn":
        raise ValueError(f"{run}: explain works on sklearn runs (this run's kind is '{meta.get('kind')}')")
    bundle = load_model(run / "model.skops")
    target = target or next(iter(bundle["targets"]))
    if target not in bundle["targets"]:
        raise ValueError(f"{run}: no model for target '{target}' (targets: {', '.join(bundle['targets'])})")
    entry = bundle["targets"][target]
    names, classes = bundle["features"], entry["classes"]
    table_path = Path(meta["features_path"])
    if not table_path.is_file():
        raise FileNotFoundError(f"{table_path}: the run's feature table is gone; explain needs it")
    if file_hash(table_path) != meta["features_hash"]:
        raise ValueError(f"{table_path}: changed since the run was fitted (content hash differs); re-run fit")
    frame, _ = read_feature_table(table_path)
    if "error" in frame.columns:
        frame = frame[frame["error"].fillna("").astype(str).str.strip() == ""]
    frame = frame[frame[target].notna()].reset_index(drop=True)
    X = frame[names].to_numpy(dtype=float, copy=True)
    X[~np.isfinite(X)] = np.nan
    y = np.searchsorted(classes, frame[target].astype(str).to_numpy())
    out = run / "explain" / target
    out.mkdir(parents=True, exist_ok=True)

    cluster_of = correlation_clusters(X, names, cluster_threshold)
    clusters: dict[str, list[int]] = {}
    for j, c in enumerate(cluster_of):
        clusters.setdefault(f"cluster_{c:03d}", []).append(j)
    families: dict[str, list[int]] = {}
    for j, n in enumerate(names):
        families.setdefault("_".join(feature_group(n)), []).append(j)

    plan = pd.read_csv(run / "folds.csv", dtype={"case_id": str})
    plan = plan[plan["repeat"] == plan["repeat"].min()]
    fold_of = dict(zip(plan["case_id"], plan["fold"]))
    folds = frame["case_id"].map(fold_of).to_numpy()
    perm_cluster, perm_family = [], []
    for fold in tqdm(sorted(pd.unique(folds[~pd.isna(folds)])), desc="permutation importance", disable=not progress):
        test = folds == fold
        # the final pipeline with its chosen hyperparameters, refitted without this fold's patients
        est = clone(entry["model"]).fit(X[~test], y[~test])
        kw = dict(n_repeats=n_repeats, seed=seed + int(fold))
        perm_cluster.append(grouped_permutation_importance(est, X[test], y[test], clusters, list(range(len(classes))), **kw))
        perm_family.append(grouped_permutation_importance(est, X[test], y[test], families, list(range(len(classes))), **kw))
    perm_cluster = pd.DataFrame(perm_cluster)
    perm_family = pd.DataFrame(perm_family)

    # A cluster is named by its member most related to the target on its own (ANOVA F), so a
    # cluster of co-varying activity signs is not named after whichever column came first.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        filled = np.nan_to_num(np.where(np.isnan(X), np.nanmedian(X, axis=0), X))
        relevance = np.nan_to_num(f_classif(filled, y)[0])
    rows = []
    for key, cols in clusters.items():
        members = [names[j] for j in sorted(cols, key=lambda j: -relevance[j])]
        groups = sorted({"_".join(feature_group(m)) for m in members})
        description = describe_feature(members[0])
        if len(members) > 1:
            description += f" — with {len(members) - 1} correlated feature(s) from {', '.join(groups)}"
        rows.append({"cluster": key, "importance": perm_cluster[key].mean(), "sd_over_folds": perm_cluster[key].std(ddof=1),
                     "n_features": len(cols), "lead_feature": members[0], "description": description,
                     "groups": ";".join(groups), "features": ";".join(members)})
    cluster_table = pd.DataFrame(rows).sort_values("importance", ascending=False)

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(X), size=min(len(X), max_shap_cases), replace=False)
    values, tnames, Xt, shap_note = shap_values(entry["model"], X[pick], names, classes, entry.get("positive"))
    shap_by_feature = pd.Series(dtype=float)
    if values is not None:
        k = classes.index(entry["positive"]) if entry.get("positive") else None
        mean_abs = np.abs(values[:, :, k]).mean(0) if k is not None else np.abs(values).mean((0, 2))
        shap_by_feature = pd.Series(mean_abs, index=tnames).sort_values(ascending=False)

    fam_rows = []
    for key, cols in families.items():
        modality, family = key.split("_", 1)
        shap_sum = float(shap_by_feature.reindex([names[j] for j in cols]).fillna(0).sum()) if len(shap_by_feature) else np.nan
        fam_rows.append({"group": key, "modality": modality, "family": family,
                         "description": describe_group(modality, family), "permutation_importance": perm_family[key].mean(),
                         "permutation_sd": perm_family[key].std(ddof=1), "shap_mean_abs_sum": shap_sum,
                         "n_features": len(cols)})
    fam_table = pd.DataFrame(fam_rows).sort_values("permutation_importance", ascending=False)
    # Shuffling 58 texture columns at once destroys more than shuffling 5: divide by the group's size
    # so large and small families can be compared per feature (the total stays the ranking).
    fam_table["importance_per_feature"] = fam_table["permutation_importance"] / fam_table["n_features"]
    fam_table["shap_per_feature"] = fam_table["shap_mean_abs_sum"] / fam_table["n_features"]
    modality_table = (fam_table.groupby("modality")[["permutation_importance", "shap_mean_abs_sum"]].sum()
                      .sort_values("permutation_importance", ascending=False).reset_index())

    write_csv(cluster_table, out / "importance_clusters.csv")
    write_csv(fam_table, out / "importance_groups.csv")
    write_csv(modality_table, out / "importance_modalities.csv")
    if len(shap_by_feature):
        write_csv(shap_by_feature.rename("shap_mean_abs").rename_axis("feature").reset_index(), out / "shap_features.csv")

    figures = [_save(_bar(fam_table.set_index("description")["permutation_importance"],
                          "Feature groups: permutation importance on held-out folds", "increase in log loss"),
                     out / "groups_permutation.png"),
               _save(_bar(cluster_table.set_index("description")["importance"],
                          "Correlated-feature clusters: permutation importance", "increase in log loss"),
                     out / "clusters_permutation.png")]
    if values is not None:
        import shap

        k = classes.index(entry["positive"]) if entry.get("positive") else int(np.bincount(y).argmin())
        figures.append(_save(_bar(shap_by_feature, f"Mean |SHAP| of the final model ({shap_note})", "mean |SHAP value|"),
                             out / "shap_bar.png"))
        shap.plots.beeswarm(shap.Explanation(values[:, :, k], data=Xt, feature_names=tnames), max_display=15,
                            show=False)
        fig = plt.gcf()
        fig.suptitle(f"SHAP beeswarm, pushes toward '{classes[k]}'", fontsize=10)
        figures.append(_save(fig, out / "shap_beeswarm.png"))

    top_groups = [{"group": r.group, "description": r.description, "importance": float(r.permutation_importance)}
                  for r in fam_table.itertuples()]
    write_json({"target": target, "pipeline": entry["pipeline"], "shap": shap_note, "top_groups": top_groups,
                "top_clusters": cluster_table.head(15)[["cluster", "lead_feature", "description", "importance"]]
                .to_dict("records")}, out / "summary.json")
    _write_html(out, target, entry["pipeline"], fam_table, cluster_table, figures, shap_note)
    write_report(run)
    return out


def _write_html(out: Path, target, pipeline, fam_table, cluster_table, figures, shap_note) -> None:
    def table(frame, cols):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(f'{v:.4f}' if isinstance(v, float) else str(v))}</td>"
                                        for v in row) + "</tr>" for row in frame[cols].itertuples(index=False))
        return f"<table><tr>{head}</tr>{body}</table>"

    page = f"""<!doctype html><html lang=en><head><meta charset=utf-8><title>Explanation: {html.escape(target)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;font-size:.85em}}td,th{{border:1px solid #ccc;padding:2px 6px}}th{{background:#edf2f7}}
img{{max-width:100%}}</style></head><body>
<h1>What drives '{html.escape(target)}' ({html.escape(pipeline)})</h1>
<p>Permutation importance is measured on held-out folds: a model trained without those patients predicts
them with one group of features shuffled; the more the predictions worsen (log loss rises), the more the
model relies on that group. Correlated features are shuffled together. {html.escape(shap_note)}.</p>
<p><a href="../../report.html">Back to the report</a></p>
{''.join(f'<img src="{f}" alt="{f}"><br>' for f in figures)}
<h2>Feature groups</h2><p>Ranked by the rise in log loss when the whole group is shuffled. Large groups
gain from their size, so <code>importance_per_feature</code> (that rise divided by the number of features
in the group) and <code>shap_per_feature</code> (summed mean |SHAP| divided likewise) compare groups of
different sizes.</p>{table(fam_table, ['description', 'group', 'permutation_importance', 'permutation_sd',
                   'importance_per_feature', 'shap_mean_abs_sum', 'shap_per_feature', 'n_features'])}
<h2>Correlated-feature clusters</h2>{table(cluster_table.head(40), ['cluster', 'description', 'importance', 'n_features', 'features'])}
</body></html>"""
    tmp = out / ".explain.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out / "explain.html")
