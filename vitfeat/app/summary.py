"""Model tab: the run's summary in plain words (data, leaderboard with CIs, warnings, use and limits)."""

from __future__ import annotations

import json

INTENDED_USE = ("Intended use: research and decision support for clinicians staging vitiligo (stable versus "
                "active) from {photos}. Not a diagnosis; not validated beyond the data named below. Limits: the "
                "score applies to patients like the training patients (camera, skin types, lighting); photos "
                "outside that range are declined (\"cannot assess\") or get warnings.")


def intended_use(run) -> str:
    """:data:`INTENDED_USE` for the photos this run was trained on (a clinical-only model never mentions
    Wood's-lamp photos).

    Parameters
    ----------
    run : RunInfo
        The run.

    Returns
    -------
    str
    """
    from vitfeat.app.scope import never_saw_wood

    photos = ("a clinical (daylight) photo of the lesion" if never_saw_wood(run)
              else "a clinical and a Wood's-lamp photo of the same lesion")
    return INTENDED_USE.format(photos=photos)


def interval_text(perf: dict) -> str:
    """The score's 95% interval in words: shown only when it says something (``ci_low < ci_high`` at
    the two decimals shown); otherwise why there is none.

    Parameters
    ----------
    perf : dict
        :meth:`~vitfeat.app.RunInfo.performance`.
    """
    lo, hi = perf.get("ci_low"), perf.get("ci_high")
    if lo is None or hi is None:
        return " (no interval recorded)"
    if f"{lo:.2f}" != f"{hi:.2f}":  # an interval that reads "1.00–1.00" says nothing
        return f" (95% CI {lo:.2f}–{hi:.2f})"
    if perf.get("mean") is not None and perf["mean"] >= 0.999:
        return " (no interval: the classes were perfectly separated in this run, so resampling cannot vary the score)"
    return " (no interval: the score did not vary across resamples)"


def model_summary(run) -> str:
    """Markdown summary of a :class:`~vitfeat.app.RunInfo` (the model card when the run has one).

    Parameters
    ----------
    run : RunInfo
        The run.

    Returns
    -------
    str
    """
    parts = [f"## Run `{run.name}` ({run.kind})"]
    card = run.path / "model_card.md"
    if card.is_file():
        parts.append(card.read_text())
    summary_path = run.path / "data_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    if summary:
        counts = "; ".join(f"{t}: " + ", ".join(f"{c} {n}" for c, n in cc.items())
                           for t, cc in (summary.get("class_counts") or {}).items())
        parts.append(f"### Data\n{summary.get('n_cases', '?')} cases from {summary.get('n_patients', '?')} "
                     f"patients, {summary.get('n_features', '?')} features; classes — {counts}")
    targets = run.meta.get("targets") or {}
    for target in targets:  # a dict in feature runs, a list of names in VMTL runs
        perf = run.performance(target)
        parts.append(f"**{target}**: model {perf.get('pipeline')}, positive class {perf.get('positive')}")
        if perf.get("mean") is not None:
            which = ("nested-selection: the selection procedure scored on held-out patients" if perf.get("nested")
                     else f"{perf['row']}, cross-validated; optimistic, the run has no nested-selection row")
            parts.append(f"Score ({which}): balanced accuracy {perf['mean']:.3f}{interval_text(perf)}")
    board = run.leaderboard
    if board is not None and "balanced_accuracy_mean" in board.columns:
        rows = ["| rank | target | pipeline | balanced accuracy | 95% CI |", "|---|---|---|---|---|"]
        for _, r in board.head(8).iterrows():
            lo, hi = r.get("balanced_accuracy_ci_low"), r.get("balanced_accuracy_ci_high")
            ci = (f"{lo:.3f}–{hi:.3f}" if lo == lo and hi == hi and lo is not None and f"{lo:.3f}" != f"{hi:.3f}"
                  else "none (no variation across resamples)")
            rows.append(f"| {r.get('rank', '')} | {r.get('target', '')} | {r['pipeline']} | "
                        f"{r['balanced_accuracy_mean']:.3f} | {ci} |")
        parts.append("### Leaderboard (top)\n" + "\n".join(rows))
    warnings = summary.get("warnings") or []
    if warnings:
        parts.append("### Warnings\n" + "\n".join(f"- {w}" for w in warnings))
    from vitfeat.app.scope import scope_summary

    scope = scope_summary(run)  # what the model needs, how often it declines (issue #27)
    if scope:
        parts.append(scope)
    parts.append("### Intended use and limits\n" + intended_use(run))
    return "\n\n".join(parts)
