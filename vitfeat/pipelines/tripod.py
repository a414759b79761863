"""TRIPOD+AI reporting items (Collins et al., BMJ 2024) filled from a fitted run, and the run's
``model_card.md``.

Only what the run records is filled in; what the tool cannot know (eligibility, setting, dates,
blinding, ethics, funding, ...) is listed for the author to complete, never guessed.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from vitfeat.atomic import write_text
from vitfeat.pipelines.operating import operating_point_summary

FOR_THE_AUTHOR = [
    "Source of data and study design (cohort, registry, trial), setting and centres, dates of recruitment",
    "Eligibility criteria for participants and for images (who was photographed, and who was left out)",
    "How the outcome (class labels) was assessed, by whom, blinded to the predictors or not, and when",
    "Photograph acquisition: devices, lighting, Wood's lamp model, operators",
    "Ethics approval, consent, data sharing, funding and conflicts of interest",
    "Intended use and users, and how the model's output would enter the clinical pathway",
    "Fairness: performance in subgroups (age, sex, skin type) - the run has no subgroup columns",
    "External validation: this run reports internal validation only",
]


def _metric(row, name: str) -> str:
    value, lo, hi = row.get(f"{name}_value"), row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
    if value is None or pd.isna(value):
        return "n/a"
    return f"{value:.3f} [{lo:.3f}-{hi:.3f}]" if lo is not None and not pd.isna(lo) else f"{value:.3f}"


def tripod_items(meta: dict, summary: dict, board: pd.DataFrame) -> list[tuple[str, str]]:
    """(TRIPOD+AI topic, text from the run) pairs, one list for all targets of the run.

    Parameters
    ----------
    meta : dict
        The run's ``run.json``.
    summary : dict
        Its ``data_summary.json``.
    board : pandas.DataFrame
        Its leaderboard.

    Returns
    -------
    list of tuple
    """
    items = [("Data source", f"feature table {meta.get('features_path')} (content hash {meta.get('features_hash')}); "
                             "the clinical source is for the author to state (below)"),
             ("Participants", f"{summary['n_cases']} cases from {summary['n_patients']} patients; "
                              f"{len(summary['failed_cases'])} case(s) left out because feature extraction failed"),
             ("Predictors", f"{summary['n_features']} image features from {', '.join(summary['modalities'])} "
                            "photographs (see the feature groups in the explanation report)"),
             ("Missing data", f"{100 * summary['missing_fraction_overall']:.1f} % of feature cells missing; imputed "
                              "by the median of the training part inside each fold (no test-fold information)")]
    for target, info in meta["targets"].items():
        counts = summary["class_counts"][target]
        positive = (meta.get("positive_class") or {}).get(target, info.get("positive"))
        events = min(counts.values())
        items.append((f"Outcome '{target}'", ", ".join(f"{k}: {v} cases" for k, v in counts.items())
                      + (f"; positive class '{positive}'" if positive else "")))
        epp = events / max(summary["n_features"], 1)
        caution = " (fewer than 10 per predictor: a high risk of overfitting, read the CIs)" if epp < 10 else ""
        items.append((f"Sample size '{target}'", f"{events} cases in the smallest class, "
                      f"{epp:.2f} events per candidate predictor{caution}"))
        rows = board[board["target"] == target]
        best = rows[rows["pipeline"] == info["pipeline"]]
        nested = rows[rows["pipeline"] == "nested-selection"]
        if len(best):
            b = best.iloc[0]
            items.append((f"Performance '{target}'", f"{info['pipeline']}: balanced accuracy "
                          f"{_metric(b, 'balanced_accuracy')}, AUROC {_metric(b, 'auroc')}, Brier "
                          f"{_metric(b, 'brier')}, calibration slope {_metric(b, 'calibration_slope')} "
                          "(pooled out of fold [95 % patient bootstrap])"
                          + (f"; nested selection balanced accuracy {_metric(nested.iloc[0], 'balanced_accuracy')}"
                             if len(nested) else "; not nested: the score of the chosen pipeline is optimistic")))
    items += [("Model building", f"{board['pipeline'].nunique()} pipelines compared; scaling, imputation, "
                                 "resampling and selection fitted inside training folds"),
              ("Internal validation", f"{meta['n_splits']}-fold cross-validation grouped by patient, "
                                      f"{meta['repeats']} repeat(s); "
                                      + _nested_method(meta)),
              ("Limitations", "internal validation only; single data source unless stated; "
                              "see the warnings section")]
    return items


def _nested_method(meta: dict) -> str:
    if "nested_inner" not in meta:  # a run written before run.json recorded the inner folds
        return "nested selection where the leaderboard has a nested-selection row"
    return f"nested selection with {meta['nested_inner']}" if meta["nested_inner"] else "no nested selection"


def tripod_markdown(meta: dict, summary: dict, board: pd.DataFrame) -> str:
    """The TRIPOD+AI section of report.md.

    Parameters
    ----------
    meta : dict
        The run's ``run.json``.
    summary : dict
        Its ``data_summary.json``.
    board : pandas.DataFrame
        Its leaderboard.

    Returns
    -------
    str
    """
    lines = ["## TRIPOD+AI items\n", "| item | from this run |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in tripod_items(meta, summary, board)]
    lines += ["", "For the author to fill in (the tool cannot know):", ""] + [f"- [ ] {t}" for t in FOR_THE_AUTHOR]
    return "\n".join(lines) + "\n"


def tripod_html(meta: dict, summary: dict, board: pd.DataFrame) -> str:
    """The TRIPOD+AI section of report.html: a two-column table and the author's checklist.

    Parameters
    ----------
    meta : dict
        The run's ``run.json``.
    summary : dict
        Its ``data_summary.json``.
    board : pandas.DataFrame
        Its leaderboard.

    Returns
    -------
    str
    """
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td style='white-space:normal;text-align:left'>"
                   f"{html.escape(v)}</td></tr>" for k, v in tripod_items(meta, summary, board))
    todo = "".join(f"<li>{html.escape(t)}</li>" for t in FOR_THE_AUTHOR)
    return (f"<h2>TRIPOD+AI items</h2><table class=kv>{rows}</table>"
            f"<p>For the author to fill in (the tool cannot know):</p><ul>{todo}</ul>")


def write_model_card(run_dir, meta: dict, summary: dict, board: pd.DataFrame) -> Path:
    """Write ``model_card.md`` in ``run_dir`` (atomically) and return its path.

    Parameters
    ----------
    run_dir : path-like
        The run directory.
    meta : dict
        The run's ``run.json``.
    summary : dict
        Its ``data_summary.json``.
    board : pandas.DataFrame
        Its leaderboard.

    Returns
    -------
    pathlib.Path
    """
    run = Path(run_dir)
    items = dict(tripod_items(meta, summary, board))
    text = ["# Model card", "", "## Intended use", "",
            f"Research use: classifying lesions from {_photos_words(meta)}. "
            "Not validated for clinical decisions; intended use and users are for the author to state.", "",
            "## Data", ""] + [f"- {k}: {v}" for k, v in items.items() if not k.startswith("Performance")]
    text += ["", "## Performance and calibration", ""] + [f"- {k}: {v}" for k, v in items.items()
                                                          if k.startswith("Performance")]
    text += ["", "## Operating point", "", operating_point_summary(run, meta), "",
             "## Warnings", ""] + [f"- {w}" for w in summary.get("warnings", [])] + ["", "## Limits", "",
                                                                                     items["Limitations"]]
    return write_text(run / "model_card.md", "\n".join(text) + "\n")


def _photos_words(meta: dict) -> str:
    """The photos the model was fitted on, in words (from the modalities ``fit`` recorded)."""
    modalities = ((meta.get("applicability") or {}).get("needs") or {}).get("modalities") or ["clinical", "wood"]
    return ("paired clinical and Wood's lamp photographs" if "wood" in modalities
            else "clinical (daylight) photographs")
