"""Self-contained report (report.html with embedded PNG figures, and report.md) built from the
files of a run directory, so it can be re-rendered at any time (``explain`` does, to link itself).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import CalibrationDisplay  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
)

from vitfeat.atomic import write_text  # noqa: E402
from vitfeat.names import join_inside  # noqa: E402
from vitfeat.evaluation.calibration import CALIBRATION  # noqa: E402
from vitfeat.evaluation.decision import decision_curve  # noqa: E402
from vitfeat.evaluation.metrics import HEADLINE  # noqa: E402
from vitfeat.pipelines.icc_filter import report_sections  # noqa: E402
from vitfeat.pipelines import report_review  # noqa: E402
from vitfeat.featurize.masks import describe_mask_source  # noqa: E402
from vitfeat.pipelines.nested import NAME as NESTED  # noqa: E402
from vitfeat.pipelines.tripod import tripod_html, tripod_markdown, write_model_card  # noqa: E402

TOP_CURVES = 5
METRIC_LABELS = {"balanced_accuracy": "Balanced accuracy", "macro_f1": "Macro-F1", "auroc": "AUROC",
                 "pr_auc": "PR-AUC", "sensitivity": "Sensitivity", "specificity": "Specificity",
                 "brier": "Brier score", "log_loss": "Log loss", "ece": "ECE (10 bins)",
                 "calibration_slope": "Calibration slope", "calibration_intercept": "Calibration intercept"}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1280px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:3px solid #2b6cb0;padding-bottom:.2em} h2{color:#2b6cb0;margin-top:1.6em} h3{margin-bottom:.3em}
table{border-collapse:collapse;font-size:.8em;margin:.6em 0} .scroll{overflow-x:auto}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#edf2f7} td{white-space:nowrap} small{color:#666} td:nth-child(2),td:nth-child(3){text-align:left}
tr.best{background:#f0fff4;font-weight:600}
.warn{background:#fffaf0;border-left:4px solid #dd6b20;padding:.4em .8em;margin:.3em 0}
.note{color:#555;font-size:.9em} img{max-width:100%;border:1px solid #eee;margin:.3em 0}
.kv td:first-child{text-align:left;font-weight:600} code{background:#f7fafc;padding:0 .2em}
"""


def _fig_to_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(uri: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="{uri}">'


def _fmt(row, metric: str, html_cell: bool = False) -> str:
    m, sd = row.get(f"{metric}_mean"), row.get(f"{metric}_sd")
    lo, hi = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if m is None or pd.isna(m):
        return "n/a"
    text = f"{m:.3f}"
    if sd is not None and not pd.isna(sd):
        text += f" ± {sd:.3f}"
    if lo is not None and not pd.isna(lo):
        pooled = row.get(f"{metric}_value")
        ci = f"pooled {pooled:.2f} [{lo:.2f}–{hi:.2f}]"
        text += f"<br><small>{ci}</small>" if html_cell else f"; {ci}"
    elif isinstance(row.get(f"{metric}_ci_note"), str) and row.get(f"{metric}_ci_note"):  # withheld: say why
        ci = f"pooled {row.get(f'{metric}_value'):.2f} [—] {row.get(f'{metric}_ci_note')}"
        text += f"<br><small>{html.escape(ci)}</small>" if html_cell else f"; {ci}"
    return text


def _leaderboard_table(board: pd.DataFrame, classes) -> tuple[str, str]:
    cols = ["rank", "pipeline"] + HEADLINE + [f"f1_{c}" for c in classes] + ["fit_time"]
    head = "".join(f"<th>{html.escape(METRIC_LABELS.get(c, c.replace('f1_', 'F1 ')))}</th>" for c in cols)
    md_head = "| " + " | ".join(METRIC_LABELS.get(c, c) for c in cols) + " |\n|" + "---|" * len(cols) + "\n"
    body, md = "", ""
    for i, row in enumerate(board.to_dict("records")):
        cells = [str(row["rank"]), html.escape(str(row["pipeline"]))]
        metrics = HEADLINE + [f"f1_{c}" for c in classes]
        ft = row.get("fit_time_mean")
        fit_time = "" if ft is None or pd.isna(ft) else f"{ft:.2f} s"
        html_cells = cells + [_fmt(row, m, html_cell=True) for m in metrics] + [fit_time]
        md_cells = cells + [_fmt(row, m) for m in metrics] + [fit_time]
        body += f"<tr{' class=best' if i == 0 else ''}>" + "".join(f"<td>{c}</td>" for c in html_cells) + "</tr>"
        md += "| " + " | ".join(md_cells) + " |\n"
    return f"<div class=scroll><table><tr>{head}</tr>{body}</table></div>", md_head + md


def _calibration_table(board: pd.DataFrame) -> tuple[str, str]:
    """Brier, log loss, ECE and calibration slope/intercept per pipeline (columns absent in runs
    made before they were scored are left out)."""
    metrics = [m for m in CALIBRATION if f"{m}_mean" in board.columns]
    if not metrics:
        return "", ""
    head = "<th>Rank</th><th>Pipeline</th>" + "".join(f"<th>{METRIC_LABELS[m]}</th>" for m in metrics)
    md = ("| Rank | Pipeline | " + " | ".join(METRIC_LABELS[m] for m in metrics) + " |\n|"
          + "---|" * (len(metrics) + 2) + "\n")
    body = ""
    for row in board.to_dict("records"):
        cells = [str(row["rank"]), html.escape(str(row["pipeline"]))]
        html_cells = cells + [_fmt(row, m, html_cell=True) for m in metrics]
        body += "<tr>" + "".join(f"<td>{c}</td>" for c in html_cells) + "</tr>"
        md += "| " + " | ".join(cells + [_fmt(row, m) for m in metrics]) + " |\n"
    return f"<div class=scroll><table><tr>{head}</tr>{body}</table></div>", md


def _class_balance_figure(summary: dict) -> str:
    counts = summary["class_counts"]
    fig, axes = plt.subplots(1, len(counts), figsize=(3.2 * len(counts) + 1, 2.6), squeeze=False)
    for ax, (target, cc) in zip(axes[0], counts.items()):
        ax.bar(list(cc), list(cc.values()), color="#4299e1")
        ax.set_title(f"{target}: cases per class")
        ax.tick_params(axis="x", rotation=20)
    return _fig_to_data_uri(fig)


def _curve_over_repeats(part: pd.DataFrame, positive, kind: str, name: str, ax) -> None:
    """Mean curve over repeats (each repeat predicts every case once) with the band from the
    lowest to the highest repeat, on a common grid of false positive rate (ROC) or recall (PR)."""
    grid = np.linspace(0, 1, 101)
    curves = []
    for _, rep in part.groupby("repeat"):
        y = (rep["y_true"] == positive).to_numpy()
        score = rep[f"proba_{positive}"].to_numpy()
        if kind == "roc":
            fpr, tpr, _ = roc_curve(y, score)
            curves.append(np.interp(grid, fpr, tpr))
        else:
            precision, recall, _ = precision_recall_curve(y, score)
            curves.append(np.interp(grid, recall[::-1], precision[::-1]))
    curves = np.array(curves)
    line, = ax.plot(grid, curves.mean(0), label=f"{name} ({len(curves)} repeat{'s' if len(curves) > 1 else ''})")
    if len(curves) > 1:
        ax.fill_between(grid, curves.min(0), curves.max(0), color=line.get_color(), alpha=0.15)
    if kind == "roc":
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8)


def _curves(oof: pd.DataFrame, board: pd.DataFrame, classes, positive, kind: str) -> str:
    top = list(board["pipeline"][:TOP_CURVES])
    if len(classes) == 2:
        fig, ax = plt.subplots(figsize=(5.2, 4.4))
        for name in top:
            _curve_over_repeats(oof[oof["pipeline"] == name], positive, kind, name, ax)
        ax.set_title(f"{'ROC' if kind == 'roc' else 'Precision–recall'} (positive: {positive})")
    else:
        fig, axes = plt.subplots(1, len(classes), figsize=(4.4 * len(classes), 4.0), layout="constrained")
        for ax, cls in zip(axes, classes):
            for name in top[:3]:  # one class against the rest, mean over all repeats as for two classes
                _curve_over_repeats(oof[oof["pipeline"] == name], cls, kind, name, ax)
            ax.set_title(f"{cls} vs rest")
    for ax in fig.axes:
        ax.legend(fontsize=7, loc="lower right" if kind == "roc" else "lower left")
        ax.set_xlabel("false positive rate (1 - specificity)" if kind == "roc" else "recall (sensitivity)")
        ax.set_ylabel("true positive rate (sensitivity)" if kind == "roc" else "precision")
    return _fig_to_data_uri(fig)


def _confusions(oof: pd.DataFrame, board: pd.DataFrame, classes) -> str:
    top = list(board["pipeline"][:3])
    fig, axes = plt.subplots(1, len(top), figsize=(3.4 * len(top) + 1.5, 3.6), squeeze=False, layout="constrained")
    first = oof[oof["repeat"] == oof["repeat"].min()]
    for ax, name in zip(axes[0], top):
        part = first[first["pipeline"] == name]
        ConfusionMatrixDisplay.from_predictions(part["y_true"], part["y_pred"], labels=classes, ax=ax,
                                                colorbar=False, cmap="Blues")
        ax.set_title(name, fontsize=9)
        ax.tick_params(axis="x", rotation=20)
    return _fig_to_data_uri(fig)


def _calibration(oof: pd.DataFrame, board: pd.DataFrame, classes, positive) -> str:
    first = oof[oof["repeat"] == oof["repeat"].min()]
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    if len(classes) == 2:
        for name in list(board["pipeline"][:3]):
            part = first[first["pipeline"] == name]
            CalibrationDisplay.from_predictions(part["y_true"], part[f"proba_{positive}"], pos_label=positive,
                                                n_bins=8, strategy="quantile", name=name, ax=ax)
        ax.set_title(f"Calibration (predicted vs observed rate of '{positive}')")
    else:
        name = board["pipeline"].iloc[0]
        part = first[first["pipeline"] == name]
        for cls in classes:
            CalibrationDisplay.from_predictions(np.where(part["y_true"] == cls, cls, "rest"), part[f"proba_{cls}"],
                                                pos_label=cls, n_bins=6, strategy="quantile", name=cls, ax=ax)
        ax.set_title(f"Calibration of {name}, one class vs rest")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed fraction of the class")
    ax.legend(fontsize=7)
    return _fig_to_data_uri(fig)


def _decision_curves(oof: pd.DataFrame, board: pd.DataFrame, positive) -> tuple[str, str]:
    """Net benefit of the top three pipelines (first repeat, patient-bootstrap bands) beside
    treat-all and treat-none: figure and a markdown/HTML table at a few thresholds."""
    first = oof[oof["repeat"] == oof["repeat"].min()]
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    shown = [0.1, 0.2, 0.3, 0.5, 0.7]
    table, curve = {}, None
    for name in list(board["pipeline"][:3]):
        part = first[first["pipeline"] == name]
        curve = decision_curve(part["y_true"] == positive, part[f"proba_{positive}"], part["patient_id"], n_boot=100)
        ax.plot(curve["threshold"], curve["net_benefit"], label=name)
        ax.fill_between(curve["threshold"], curve["nb_low"], curve["nb_high"], alpha=0.15)
        table[name] = curve.set_index("threshold").loc[shown, "net_benefit"]
    ax.plot(curve["threshold"], curve["treat_all"], color="grey", ls="--", label="treat all")
    ax.axhline(0, color="black", lw=0.8, label="treat none")
    table["treat all"] = curve.set_index("threshold").loc[shown, "treat_all"]
    prevalence = float(np.mean(first["y_true"] == positive))
    ax.set_ylim(-0.05, max(0.05, prevalence * 1.15))
    ax.set_xlabel(f"threshold probability of '{positive}'")
    ax.set_ylabel("net benefit")
    ax.set_title("Decision curves (band: 95 % patient bootstrap)")
    ax.legend(fontsize=7)
    head = "<tr><th>Strategy</th>" + "".join(f"<th>t = {t:.1f}</th>" for t in shown) + "</tr>"
    body = "".join(f"<tr><td>{html.escape(k)}</td>" + "".join(f"<td>{v:.3f}</td>" for v in col) + "</tr>"
                   for k, col in table.items())
    md = ("| strategy | " + " | ".join(f"t = {t:.1f}" for t in shown) + " |\n|" + "---|" * (len(shown) + 1) + "\n"
          + "".join(f"| {k} | " + " | ".join(f"{v:.3f}" for v in col) + " |\n" for k, col in table.items()))
    return _img(_fig_to_data_uri(fig), "decision curves") + f"<table>{head}{body}</table>", md


def _fold_spread(fold_scores: pd.DataFrame, board: pd.DataFrame) -> str:
    order = list(board["pipeline"])[::-1]
    data = [fold_scores.loc[fold_scores["pipeline"] == n, "balanced_accuracy"].dropna().to_numpy() for n in order]
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(order) + 1.2))
    ax.boxplot(data, vert=False, tick_labels=order, widths=0.6)
    for i, d in enumerate(data, start=1):
        ax.scatter(d, np.full(len(d), i) + np.random.default_rng(i).uniform(-0.12, 0.12, len(d)), s=9,
                   color="#2b6cb0", alpha=0.7, zorder=3)
    ax.set_xlabel("balanced accuracy per test fold")
    ax.set_title("Fold-to-fold spread")
    return _fig_to_data_uri(fig)


def _read(run: Path):
    board = pd.read_csv(run / "leaderboard.csv", dtype={"pipeline": str, "target": str})
    oof = pd.read_csv(run / "oof_predictions.csv", dtype={"case_id": str, "patient_id": str, "y_true": str,
                                                          "y_pred": str, "target": str})
    folds = pd.read_csv(run / "fold_scores.csv", dtype={"pipeline": str, "target": str})
    summary = json.loads((run / "data_summary.json").read_text())
    meta = json.loads((run / "run.json").read_text())
    return board, oof, folds, summary, meta


@dataclass
class Report:
    """The content of a run's report, computed by :func:`compute_report` (nothing written yet).

    Attributes
    ----------
    html : str
        The whole ``report.html`` page.
    markdown : str
        ``report.md``.
    meta : dict
        The run's run.json.
    summary : dict
        Its data_summary.json.
    board : pandas.DataFrame
        Its leaderboard.
    """

    html: str
    markdown: str
    meta: dict
    summary: dict
    board: pd.DataFrame


def _data_section(summary: dict) -> tuple[list[str], list[str]]:
    """HTML parts and Markdown lines describing the cases, classes, failures and warnings."""
    parts, md = [], []
    parts.append("<h2>Data</h2><table class=kv>")
    rows = [("Cases", summary["n_cases"]), ("Patients", summary["n_patients"]), ("Features", summary["n_features"]),
            ("Modalities", ", ".join(summary["modalities"])),
            ("Missing values", f"{100 * summary['missing_fraction_overall']:.1f} % of feature cells"),
            ("Failed cases (left out)", len(summary["failed_cases"])),
            ("Features without variance", len(summary["constant_features"]))]
    parts += [f"<tr><td>{k}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows]
    parts.append("</table>")
    for target, cc in summary["class_counts"].items():
        pp = summary["patients_per_class"][target]
        parts.append(f"<p><b>{html.escape(target)}</b>: " + ", ".join(
            f"{html.escape(k)} {v} cases / {pp.get(k, '?')} patients" for k, v in cc.items()) + "</p>")
        md.append(f"- **{target}**: " + ", ".join(f"{k} {v} cases / {pp.get(k, '?')} patients" for k, v in cc.items()))
    md.append(f"- {summary['n_cases']} cases, {summary['n_patients']} patients, {summary['n_features']} features, "
              f"{len(summary['failed_cases'])} failed case(s)\n")
    parts.append(_img(_class_balance_figure(summary), "class balance"))
    if summary["failed_cases"]:
        parts.append("<details><summary>Failed cases</summary><ul>" + "".join(
            f"<li>{html.escape(f['case_id'])}: {html.escape(f['error'])}</li>" for f in summary["failed_cases"])
            + "</ul></details>")

    if summary.get("warnings"):
        parts.append("<h2>Warnings</h2>"
                     + "".join(f"<div class=warn>{html.escape(w)}</div>" for w in summary["warnings"]))
        md.append("## Warnings\n\n" + "\n".join(f"- {w}" for w in summary["warnings"]) + "\n")
    return parts, md


_OPERATING_COLUMNS = ("sensitivity", "specificity", "ppv", "npv")


def _operating_point_section(run: Path, target: str, meta: dict) -> tuple[list[str], list[str]]:
    """The table of ``operating_point.csv`` for one target (fit --operating-point), or nothing."""
    path = run / "operating_point.csv"
    rule = meta.get("operating_point")
    if not rule or not path.is_file():
        return [], []
    table = pd.read_csv(path)
    table = table[table["target"] == target] if "target" in table else table
    if not len(table):
        return [], []

    def cell(row, key):
        return f"{row[key]:.2f} [{row[key + '_ci_low']:.2f}–{row[key + '_ci_high']:.2f}]"

    header = ["pipeline", "fold thresholds", *_OPERATING_COLUMNS]
    rows = [[str(r["pipeline"]), f"{r['threshold_min']:.3f}–{r['threshold_max']:.3f}",
             *(cell(r, k) for k in _OPERATING_COLUMNS)] for _, r in table.iterrows()]
    html_rows = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rows)
    note = (f"Decision rule <code>{html.escape(rule)}</code>: each outer fold's threshold was chosen by "
            "patient-grouped inner CV on its training part only and applied to its test part; figures are "
            "pooled out of fold with 95 % patient-bootstrap CIs.")
    parts = [f"<h3>Operating point</h3><p class=note>{note}</p><table><tr>"
             + "".join(f"<th>{h}</th>" for h in header) + f"</tr>{html_rows}</table>"]
    md = ["### Operating point\n\n" + f"Rule `{rule}` (thresholds chosen inside each training part).\n\n"
          + "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
          + "\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n"]
    return parts, md


def _target_section(run: Path, target: str, tboard: pd.DataFrame, oof: pd.DataFrame,
                    fold_scores: pd.DataFrame, meta: dict) -> tuple[list[str], list[str]]:
    """HTML parts and Markdown lines for one target: leaderboard, curves, calibration, explanations."""
    parts, md = [], []
    info = meta["targets"][target]
    classes, positive = info["classes"], info.get("positive")
    toof = oof[oof["target"] == target]
    tfolds = fold_scores[fold_scores["target"] == target]
    table, md_table = _leaderboard_table(tboard, classes)
    # the refitted one, not an included run
    best = tboard[tboard["pipeline"] == info["pipeline"]].iloc[0]
    parts.append(f"<h2>Target: {html.escape(target)}</h2>")
    lead = (f"Best pipeline: <b>{html.escape(str(best['pipeline']))}</b> "
            f"({html.escape(str(best['description']))}): "
            f"balanced accuracy {_fmt(best, 'balanced_accuracy')}, AUROC {_fmt(best, 'auroc')}. "
            f"This pipeline, refitted on all cases, is saved in <code>model.skops</code>.")
    honest = tboard[tboard["pipeline"] == NESTED]
    if len(honest):
        lead += (f" Picking the best of these pipelines is itself scored by nested selection (inner CV on "
                 f"each training part only): balanced accuracy {_fmt(honest.iloc[0], 'balanced_accuracy')}, "
                 f"AUROC {_fmt(honest.iloc[0], 'auroc')} — the figure to quote for the chosen model.")
    if positive:
        lead += f" Sensitivity and specificity refer to '{html.escape(positive)}' as the positive class."
    parts.append(f"<p>{lead}</p><h3>Leaderboard</h3><p class=note>Mean ± SD over test folds; "
                 "below: the score of all out-of-fold predictions pooled, with its 95 % CI ("
                 f"{html.escape(report_review.ci_words(meta))}). Ranked by the fold mean of "
                 f"{html.escape(meta.get('metric', 'balanced_accuracy'))}.</p>" + table)
    md.append(f"## Target: {target}\n\nBest: **{best['pipeline']}** — balanced accuracy "
              f"{_fmt(best, 'balanced_accuracy')}, AUROC {_fmt(best, 'auroc')}."
              + (f" Nested selection (the figure to quote): balanced accuracy "
                 f"{_fmt(honest.iloc[0], 'balanced_accuracy')}, AUROC {_fmt(honest.iloc[0], 'auroc')}."
                 if len(honest) else "") + "\n\n" + md_table)
    parts_op, md_op = _operating_point_section(run, target, meta)
    parts += parts_op
    md += md_op
    parts_rv, md_rv = report_review.target_extras(run, target, meta, tboard)
    parts += parts_rv
    md += md_rv
    parts.append("<h3>ROC and precision–recall curves</h3><p class=note>Pooled out-of-fold predictions;"
                 " mean curve over all repeats (more classes: each class against the rest), band from the lowest"
                 " to the highest repeat. The diagonal of the ROC plot is a coin toss.</p>")
    parts.append(_img(_curves(toof, tboard, classes, positive, "roc"), f"ROC curves {target}"))
    parts.append(_img(_curves(toof, tboard, classes, positive, "pr"), f"PR curves {target}"))
    parts.append("<h3>Confusion matrices</h3><p class=note>Rows: true class; columns: predicted class.</p>")
    parts.append(_img(_confusions(toof, tboard, classes), f"confusion matrices {target}"))
    parts.append("<h3>Calibration</h3><p class=note>Points on the diagonal mean a predicted 70 % "
                 "happens 70 % of the time.</p>")
    parts.append(_img(_calibration(toof, tboard, classes, positive), f"calibration {target}"))
    cal_html, cal_md = _calibration_table(tboard)
    if cal_html:
        parts.append("<p class=note>Brier score and log loss: lower is better (they mix discrimination "
                     "and calibration). ECE: mean gap between predicted and observed rate over 10 "
                     "equal-width bins. Calibration slope/intercept: logistic regression of the outcome on "
                     "logit(p); 1 and 0 are perfect, a slope below 1 means predictions too extreme.</p>"
                     + cal_html)
        md.append("### Calibration\n\nOut of fold; lower Brier/log loss/ECE is better; slope 1 and "
                  "intercept 0 are perfect.\n\n" + cal_md)
    if len(classes) == 2 and positive:
        dca_html, dca_md = _decision_curves(toof, tboard, positive)
        parts.append("<h3>Decision curves</h3><p class=note>Net benefit of treating the cases the model "
                     "calls positive at each threshold probability, against treating everyone or no one "
                     "(Vickers &amp; Elkin 2006). A model helps where its curve lies above both.</p>" + dca_html)
        md.append("### Decision curves (net benefit, first repeat)\n\n" + dca_md)
    parts.append("<h3>Fold spread</h3>")
    parts.append(_img(_fold_spread(tfolds, tboard), f"fold spread {target}"))
    parts.append("<h3>What drives the prediction</h3>")
    explain_summary = join_inside(run / "explain", target) / "summary.json"
    if explain_summary.is_file():
        ex = json.loads(explain_summary.read_text())
        link = f"explain/{target}/explain.html"
        parts.append(f"<p>See <a href=\"{html.escape(link)}\">the explanation report</a>. Most important "
                     "feature groups (permutation importance on held-out folds):</p><ol>" + "".join(
                         f"<li>{html.escape(g['description'])} <span class=note>({html.escape(g['group'])}, "
                         f"{g['importance']:.3f})</span></li>" for g in ex.get("top_groups", [])[:8]) + "</ol>")
        parts.append("<p>Most important single signals (clusters of correlated features, named by one "
                     "member):</p><ol>" + "".join(
                         f"<li>{html.escape(c['description'])} <span class=note>({html.escape(c['lead_feature'])}, "
                         f"{c['importance']:.3f})</span></li>" for c in ex.get("top_clusters", [])[:8]) + "</ol>")
        md.append(f"### What drives the prediction\n\nSee [{link}]({link}). Top feature groups: "
                  + "; ".join(g["description"] for g in ex.get("top_groups", [])[:5]) + ". Top single signals: "
                  + "; ".join(c["lead_feature"] for c in ex.get("top_clusters", [])[:5]) + ".\n")
    else:
        parts.append(f"<p>Run <code>vitfeat explain {html.escape(str(run))} --target {html.escape(target)}</code> "
                     "to add SHAP and permutation importances; they are then linked here.</p>")
    return parts, md


def _provenance_section(run: Path, meta: dict) -> tuple[list[str], list[str]]:
    """HTML parts and Markdown lines naming the feature table, extraction and config."""
    parts, md = [], []
    prov = meta.get("extraction") or {}
    parts.append("<h2>Provenance</h2><table class=kv>" + "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in [
            ("Feature table", meta.get("features_path")), ("Table content hash", meta.get("features_hash")),
            ("Extraction vitfeat version", prov.get("vitfeat_version", prov.get("version", "unknown"))),
            ("Feature families", ", ".join(f"{k} v{v.get('version', '?')}" if isinstance(v, dict) else str(k)
                                           for k, v in (prov.get("families") or {}).items()) or "unknown"),
            ("Mask source", describe_mask_source(prov.get("masks"), prov.get("mask_quality"))),
            ("Run time", f"{meta.get('elapsed_s', '?')} s"), *report_review.provenance_rows(meta)]) + "</table>")
    config = (run / "config.yaml").read_text() if (run / "config.yaml").is_file() else ""
    parts.append(f"<details><summary>config.yaml</summary><pre>{html.escape(config)}</pre></details>")
    md.append(f"## Provenance\n\n- feature table: `{meta.get('features_path')}` (hash {meta.get('features_hash')})\n"
              f"- config: `config.yaml`\n"
              f"- masks: {describe_mask_source(prov.get('masks'), prov.get('mask_quality'))}\n"
              + "".join(f"- {k}: {v}\n" for k, v in report_review.provenance_rows(meta)))
    return parts, md


def compute_report(run_dir) -> Report:
    """Build the HTML and Markdown report of the run in ``run_dir`` from its saved outputs.

    Parameters
    ----------
    run_dir : str or os.PathLike
        A finished run folder (``leaderboard.csv``, ``oof_predictions.csv``, ``run.json``, ...).

    Returns
    -------
    Report
        Page text and the run data it was built from; :func:`write_report` writes it.
    """
    run = Path(run_dir)
    board, oof, fold_scores, summary, meta = _read(run)
    parts, md = [], []
    title = f"vitfeat model comparison — {run.name}"
    parts.append(f"<h1>{html.escape(title)}</h1><p class=note>Created {meta.get('created', '')} by vitfeat "
                 f"{meta.get('vitfeat_version', '')}. Every score comes from out-of-fold predictions: each case "
                 f"was predicted by a model that never saw that patient. {meta['n_splits']} folds grouped by "
                 f"patient, {meta['repeats']} repeat(s).</p>")
    md.append(f"# {title}\n\nOut-of-fold scores, {meta['n_splits']} patient-grouped folds, "
              f"{meta['repeats']} repeat(s). Fold mean ± fold SD; pooled OOF value [95 % CI: "
              f"{report_review.ci_words(meta)}].\n")

    summary_html, summary_md = report_review.clinician_summary(run, meta, board, summary)
    parts.append(summary_html)
    md.append(summary_md)
    for section_parts, section_md in [_data_section(summary), report_sections(meta)] + [
            _target_section(run, target, tboard, oof, fold_scores, meta)
            for target, tboard in board.groupby("target", sort=False)]:
        parts += section_parts
        md += section_md
    from vitfeat.pipelines.applicability import report_section

    section_parts, section_md = report_section(meta)  # out-of-scope flags and conformal sets (issue #27)
    parts += section_parts
    md += section_md
    tripod_md = tripod_markdown(meta, summary, board)
    md.append(tripod_md)
    parts.append(tripod_html(meta, summary, board))
    section_parts, section_md = _provenance_section(run, meta)
    parts += section_parts
    md += section_md

    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>")
    return Report(html=page, markdown="\n".join(md) + "\n", meta=meta, summary=summary, board=board)


def write_report(run_dir) -> tuple[Path, Path]:
    """(Re)write ``report.html``, ``report.md`` and the model card in ``run_dir``; return the report paths.

    Parameters
    ----------
    run_dir : path-like
        A run directory written by ``fit``.

    Returns
    -------
    tuple of pathlib.Path
        ``(report.html, report.md)``.
    """
    run = Path(run_dir)
    report = compute_report(run)
    write_model_card(run, report.meta, report.summary, report.board)
    html_path, md_path = run / "report.html", run / "report.md"
    write_text(html_path, report.html)
    write_text(md_path, report.markdown)
    return html_path, md_path
