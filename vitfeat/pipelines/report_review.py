"""Report sections for people who decide and for reviewers (issue #28), called by
:mod:`vitfeat.pipelines.report`:

* :func:`clinician_summary` — at the top: what was predicted, from what, how well (with CIs), how
  calibrated, the operating point per 100 patients, the main limits;
* :func:`target_extras` — per target: held-out test against CV, paired comparisons (Holm), subgroup
  results, how often nested selection picked each pipeline, the calibration clip;
* :func:`provenance_rows` — the run's own provenance (data file and hash, command line, versions, seed,
  date, metric).

Every function reads the run directory's files and ``run.json``; each returns ``(html, markdown)``.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from vitfeat.evaluation.calibration import ALT_CLIP, CLIP, CLIP_TOLERANCE
from vitfeat.pipelines.compare import not_worse
from vitfeat.pipelines.nested import NAME as NESTED
from vitfeat.pipelines.selection_metric import METRICS


def _csv(run: Path, name: str) -> pd.DataFrame | None:
    path = Path(run) / name
    return pd.read_csv(path, dtype={"pipeline": str, "target": str, "subgroup": str}) if path.is_file() else None


def interval(value, low, high, digits: int = 2, note: str = "") -> str:
    """``0.83 [0.76–0.89]``; ``0.83 [— reason]`` when the interval is withheld (``note``), ``0.83`` when
    there is none; ``n/a`` for no value.

    Parameters
    ----------
    value : float or None
        The point estimate.
    low, high : float or None
        The interval's bounds (NaN or None: no interval).
    digits : int, default 2
        Decimals shown.
    note : str, default ""
        Why the interval is withheld, shown in its place.

    Returns
    -------
    str
    """
    if value is None or pd.isna(value):
        return "n/a"
    if low is None or pd.isna(low) or high is None or pd.isna(high):
        if not (isinstance(note, str) and note):
            return f"{value:.{digits}f}"
        return f"{value:.{digits}f} [— {note}]"
    return f"{value:.{digits}f} [{low:.{digits}f}–{high:.{digits}f}]"


def board_cell(row, metric: str) -> str:
    """A leaderboard row's pooled value of ``metric`` with its interval (or the reason it is withheld).

    Parameters
    ----------
    row : mapping
        A leaderboard row (``<metric>_value``, ``_ci_low``, ``_ci_high``, ``_ci_note``).
    metric : str
        The metric's name.

    Returns
    -------
    str
        As formatted by :func:`interval`.
    """
    return interval(row.get(f"{metric}_value"), row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high"),
                    note=row.get(f"{metric}_ci_note", ""))


def _per_100(sensitivity: float, specificity: float, prevalence: float) -> str:
    if not all(np.isfinite([sensitivity, specificity, prevalence])):
        return ""
    # whole patients, rounded once, so that found + missed is the number with the condition
    sick = int(round(100 * prevalence))
    tp, fp = int(round(sensitivity * sick)), int(round((1 - specificity) * (100 - sick)))
    return (f"Per 100 patients like these ({sick} with the condition): about {tp} of the {sick} are "
            f"found and {sick - tp} missed; {fp} of the {100 - sick} without it are flagged wrongly.")


def clinician_summary(run, meta: dict, board: pd.DataFrame, summary: dict) -> tuple[str, str]:
    """The summary at the top of the report (see the module docstring).

    Parameters
    ----------
    run : path-like
        The run directory.
    meta : dict
        ``run.json``.
    board : pandas.DataFrame
        ``leaderboard.csv``.
    summary : dict
        ``data_summary.json``.

    Returns
    -------
    tuple of str
        HTML and Markdown.
    """
    run = Path(run)
    test = _csv(run, "test_metrics.csv")
    operating = _csv(run, "operating_point.csv")
    metric = meta.get("metric", "balanced_accuracy")
    items = []
    for target, info in (meta.get("targets") or {}).items():
        tboard = board[board["target"] == target]
        if not len(tboard):
            continue
        honest = tboard[tboard["pipeline"] == NESTED]
        row = (honest if len(honest) else tboard[tboard["pipeline"] == info["pipeline"]]).iloc[0]
        chosen = tboard[tboard["pipeline"] == info["pipeline"]].iloc[0]
        positive = info.get("positive")
        why = (meta.get("positive_reason") or {}).get(target, "")
        lines = [f"<b>Predicted</b>: {html.escape(target)} ({', '.join(map(html.escape, info['classes']))})"
                 + (f"; positive class '{html.escape(positive)}' ({html.escape(why)})" if positive else "")
                 + f", from {summary['n_features']} image features of {summary['n_cases']} cases of "
                 f"{summary['n_patients']} patients."]
        score = (f"AUROC {board_cell(row, 'auroc')}, balanced accuracy {board_cell(row, 'balanced_accuracy')}"
                 + (f", sensitivity {board_cell(row, 'sensitivity')}, specificity {board_cell(row, 'specificity')}"
                    if positive else ""))
        source = ("nested selection (the whole choice among pipelines scored out of fold)" if len(honest)
                  else f"cross-validation of {info['pipeline']}")
        lines.append(f"<b>How well</b> ({source}): {score}.")
        if test is not None and len(test[test["target"] == target]):
            t = test[test["target"] == target].set_index("metric")
            cell = {m: interval(t.at[m, "value"], t.at[m, "ci_low"], t.at[m, "ci_high"]) for m in t.index}
            lines.append(f"<b>Held-out test</b> ({int(t['n_cases'].iloc[0])} cases, scored once): AUROC "
                         f"{cell.get('auroc', 'n/a')}, balanced accuracy {cell.get('balanced_accuracy', 'n/a')}"
                         + (f", sensitivity {cell.get('sensitivity', 'n/a')}, specificity "
                            f"{cell.get('specificity', 'n/a')}" if positive else "") + ".")
        if positive:
            lines.append(f"<b>Calibration</b> of the chosen model ({html.escape(info['pipeline'])}, out of fold): "
                         f"slope {board_cell(chosen, 'calibration_slope')}, intercept "
                         f"{board_cell(chosen, 'calibration_intercept')} (1 and 0 are perfect; a slope below 1 "
                         "means its probabilities are too extreme).")
            sens, spec = chosen.get("sensitivity_value", np.nan), chosen.get("specificity_value", np.nan)
            rule = "the most probable class"
            if operating is not None and meta.get("operating_point"):
                op = operating[(operating.get("target") == target) & (operating["pipeline"] == info["pipeline"])]
                if len(op):
                    sens, spec = op["sensitivity"].iloc[0], op["specificity"].iloc[0]
                    rule = f"the operating point {meta['operating_point']}"
            counts = summary.get("class_counts", {}).get(target, {})
            prevalence = counts.get(positive, 0) / max(1, sum(counts.values()))
            lines.append(f"<b>Operating point</b>: {html.escape(rule)}: sensitivity {sens:.2f}, specificity "
                         f"{spec:.2f}. {_per_100(sens, spec, prevalence)}")
        limits = [f"{summary['n_patients']} patients"]
        if test is None:
            limits.append("internal validation only (cross-validation; no held-out or external test)")
        limits.append("only the sources of this table were tested; performance elsewhere is unknown")
        if len(tboard) > 2:
            limits.append(f"the top row was picked among {len(tboard)} rows on the same folds (winner's curse)")
        lines.append("<b>Main limits</b>: " + "; ".join(limits) + ".")
        items.append(lines)
    chosen_metric = METRICS.get(metric, (True, metric))[1]
    note = (f"Pipelines are ranked by {html.escape(chosen_metric)} (<code>--metric {html.escape(metric)}</code>). "
            "Intervals are 95 %; '—' marks an interval withheld, with the reason.")
    page = "<h2>Summary for clinicians</h2>" + "".join(
        "<ul>" + "".join(f"<li>{line}</li>" for line in lines) + "</ul>" for lines in items)
    page += f"<p class=note>{note}</p>"
    md = "## Summary for clinicians\n\n" + "\n\n".join(
        "\n".join(f"- {_strip(line)}" for line in lines) for lines in items) + f"\n\n{_strip(note)}\n"
    return page, md


def _strip(text: str) -> str:
    for tag in ("<b>", "</b>", "<code>", "</code>"):
        text = text.replace(tag, "**" if "b>" in tag else "`")
    return html.unescape(text)


def _table(header, rows) -> tuple[str, str]:
    h = "<table><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in header) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows) + "</table>"
    m = ("| " + " | ".join(map(str, header)) + " |\n|" + "---|" * len(header) + "\n"
         + "".join("| " + " | ".join(map(str, row)) + " |\n" for row in rows))
    return h, m


def target_extras(run, target: str, meta: dict, tboard: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Test against CV, comparisons, subgroups, nested picks and the calibration clip for one target.

    Parameters
    ----------
    run : path-like
        The run directory.
    target : str
        The target.
    meta : dict
        ``run.json``.
    tboard : pandas.DataFrame
        The target's leaderboard rows.

    Returns
    -------
    tuple of list of str
        HTML parts and Markdown parts.
    """
    run = Path(run)
    parts, md = [], []
    info = meta["targets"][target]
    metric = meta.get("metric", "balanced_accuracy")
    chosen = tboard[tboard["pipeline"] == info["pipeline"]]
    test = _csv(run, "test_metrics.csv")
    if test is not None and len(chosen):
        t = test[test["target"] == target].set_index("metric")
        row = chosen.iloc[0]
        shown = [m for m in ("auroc", "balanced_accuracy", "sensitivity", "specificity", "ppv", "npv", "brier",
                             "calibration_slope", "calibration_intercept") if m in t.index]
        rows = [[m, board_cell(row, m), interval(t.at[m, "value"], t.at[m, "ci_low"], t.at[m, "ci_high"],
                                                 note=t.at[m, "ci_note"] if "ci_note" in t else "")] for m in shown]
        split = meta.get("test_split") or {}
        h, m_ = _table(["metric", f"CV ({info['pipeline']}, out of fold)", "held-out test (scored once)"], rows)
        text = (f"The chosen pipeline was fitted and selected on {split.get('n_train', '?')} training cases and "
                f"scored once on {split.get('n_test', '?')} held-out cases ({split.get('source', '')}).")
        parts.append(f"<h3>Held-out test against cross-validation</h3><p class=note>{html.escape(text)}</p>{h}")
        md.append(f"### Held-out test against cross-validation\n\n{text}\n\n{m_}")
    comparisons = _csv(run, "comparisons.csv")
    if comparisons is not None and len(comparisons[comparisons["target"] == target]):
        c = comparisons[comparisons["target"] == target]
        keep = not_worse(c, metric)
        rows = [[r.pipeline_a, r.pipeline_b, r.metric, f"{r.difference:+.3f}",
                 f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]" if np.isfinite(r.ci_low) else "—",
                 f"{r.p_value:.3g}", f"{r.p_holm:.3g}", r.test] for r in c.itertuples()]
        h, m_ = _table(["best", "other", "metric", "difference", "95 % CI", "p", "p (Holm)", "test"], rows)
        text = (f"Not significantly worse than {c['pipeline_a'].iloc[0]} on {metric} (Nadeau–Bengio corrected "
                f"t-test on the fold scores, Holm-adjusted over the {c['pipeline_b'].nunique()} comparisons with "
                f"the best, p ≥ 0.05): {', '.join(sorted(keep - {c['pipeline_a'].iloc[0]})) or 'none'}. "
                "AUROC is also compared by DeLong's paired test on the same out-of-fold predictions.")
        parts.append(f"<h3>Paired comparisons with the best</h3><p class=note>{html.escape(text)}</p>"
                     f"<details><summary>comparisons.csv</summary>{h}</details>")
        md.append(f"### Paired comparisons with the best\n\n{text}\n\n{m_}")
    groups = _csv(run, "subgroup_metrics.csv")
    if groups is not None and len(groups[groups["target"] == target]):
        g = groups[groups["target"] == target]
        rows = [[r.source, r.subgroup_column, r.subgroup, r.n,
                 "" if pd.isna(r.n_positive) else int(r.n_positive), r.metric or "",
                 interval(r.value, r.ci_low, r.ci_high, note=r.note if isinstance(r.note, str) else "")
                 if isinstance(r.metric, str) and r.metric else (r.note if isinstance(r.note, str) else "")]
                for r in g.itertuples()]
        h, m_ = _table(["source", "column", "subgroup", "n", "n positive", "metric", "value [95 % CI]"], rows)
        parts.append(f"<h3>Subgroups</h3><p class=note>The chosen pipeline per subgroup; small groups are listed "
                     f"but not scored.</p><details open><summary>subgroup_metrics.csv</summary>{h}</details>")
        md.append(f"### Subgroups\n\n{m_}")
    picks = (meta.get("nested_pick_frequency") or {}).get(target)
    if picks:
        total = sum(picks.values())
        text = ("Nested selection picked, over the outer folds: "
                + ", ".join(f"{k} {v} of {total}" for k, v in sorted(picks.items(), key=lambda kv: -kv[1]))
                + ". A pick that changes from fold to fold means the choice itself is uncertain.")
        parts.append(f"<p class=note>{html.escape(text)}</p>")
        md.append(text + "\n")
    if len(chosen) or len(tboard):
        flagged = tboard[tboard.get("calibration_clip_matters", pd.Series(False, index=tboard.index))
                         .astype(str).str.lower() == "true"]
        status = tboard.get("calibration_fit_status", pd.Series("ok", index=tboard.index)).fillna("ok")
        odd = tboard[status.astype(str) != "ok"]
        text = (f"Calibration slope and intercept: probabilities clipped to [{CLIP:g}, 1 − {CLIP:g}] before "
                f"the logit; the slope is refitted at {ALT_CLIP:g} and a pipeline is flagged when the two differ "
                f"by more than {CLIP_TOLERANCE}. The intercept is calibration-in-the-large (slope fixed at 1).")
        if len(flagged):
            text += " The clip matters for: " + ", ".join(
                f"{r['pipeline']} (slope {r['calibration_slope_value']:.2f} at {CLIP:g}, "
                f"{r['calibration_clip_slope_alt_clip']:.2f} at {ALT_CLIP:g}; "
                f"{int(r['calibration_clip_n_clipped'])} probabilities beyond the clip)"
                for _, r in flagged.iterrows()) + "."
        if len(odd):
            text += " Slope not estimable for: " + ", ".join(
                f"{r['pipeline']} ({s})" for (_, r), s in zip(odd.iterrows(), status[odd.index])) + "."
        parts.append(f"<p class=note>{html.escape(text)}</p>")
        md.append(text + "\n")
    return parts, md


def ci_words(meta: dict) -> str:
    """How the intervals of this run were computed, in words.

    Parameters
    ----------
    meta : dict
        The run's run.json (its ``ci`` entry: None, ``bootstrap``, ``analytic`` or ``auto``).

    Returns
    -------
    str
    """
    ci = meta.get("ci")
    boot = "patient bootstrap, withheld when fewer than 95 % of resamples give a value"
    if ci is None:
        return "patient bootstrap"
    if ci == "bootstrap":
        return boot
    analytic = "DeLong for AUROC and Wilson for sensitivity, specificity, PPV and NPV of binary targets"
    if ci == "analytic":
        return f"{analytic}; others {boot}"
    return f"{analytic} when each patient has one case; others {boot}"


def provenance_rows(meta: dict) -> list[tuple[str, str]]:
    """``(label, value)`` rows of the run's own provenance (empty for runs made before it was recorded).

    Parameters
    ----------
    meta : dict
        The run's run.json (its ``provenance`` entry).

    Returns
    -------
    list of tuple
        ``(label, value)`` pairs in display order.
    """
    prov = meta.get("provenance") or {}
    if not prov:
        return []
    libs = ", ".join(f"{k} {v}" for k, v in (prov.get("libraries") or {}).items())
    return [("Data file (this run)", prov.get("data_file", "")), ("Data hash", prov.get("data_hash", "")),
            ("Command line", prov.get("command", "")), ("vitfeat", prov.get("vitfeat_version", "")),
            ("Python", prov.get("python", "")), ("Libraries", libs), ("Seed", prov.get("seed", "")),
            ("Date", prov.get("date", "")), ("Selection metric", prov.get("metric", "")),
            ("Intervals", prov.get("ci", ""))]
