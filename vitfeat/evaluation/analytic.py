"""Analytic intervals and calibration diagnostics added to the scores of :func:`score_oof`.

Binary targets get DeLong's interval for AUROC and Wilson intervals for sensitivity, specificity,
PPV and NPV (:mod:`vitfeat.evaluation.intervals`) when the cases are independent, i.e. each patient
contributes one case (``ci="auto"``), or always (``ci="analytic"``). With several cases per patient
these formulas would treat correlated cases as independent, so ``auto`` keeps the patient bootstrap.
Pooled repeats are accounted for (each case counted once).

Every pipeline also gets ``calibration_fit`` (whether the slope's logistic fit converged or the
predictions separate the classes) and ``calibration_clip`` (the slope at the alternative clip of
:func:`vitfeat.evaluation.calibration.clip_sensitivity`, and whether the clip matters).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitfeat.evaluation.calibration import CLIP, clip_sensitivity, recalibration
from vitfeat.evaluation.intervals import delong, wilson

CI_CHOICES = ("auto", "analytic", "bootstrap")


def cases_independent(frame: pd.DataFrame) -> bool:
    """True when every patient has a single case in each repeat of ``frame`` (OOF rows).

    Parameters
    ----------
    frame : pandas.DataFrame
        OOF rows with ``patient_id`` (and ``repeat`` where there are repeats); without
        ``patient_id`` or rows, every case counts as its own patient.

    Returns
    -------
    bool
    """
    if "patient_id" not in frame or not len(frame):
        return True
    keys = ["repeat", "patient_id"] if "repeat" in frame else ["patient_id"]
    return bool(frame.groupby(keys).size().max() == 1)


def proportion_counts(y_positive: np.ndarray, called: np.ndarray) -> dict[str, tuple[float, float]]:
    """``{metric: (successes, total)}`` for sensitivity, specificity, PPV and NPV.

    Parameters
    ----------
    y_positive : numpy.ndarray of bool
        True where the case belongs to the positive class.
    called : numpy.ndarray of bool
        True where the case was predicted positive.

    Returns
    -------
    dict of str to tuple
        The counts a Wilson interval needs, per metric.
    """
    tp, fp = np.sum(y_positive & called), np.sum(~y_positive & called)
    fn, tn = np.sum(y_positive & ~called), np.sum(~y_positive & ~called)
    return {"sensitivity": (tp, tp + fn), "specificity": (tn, tn + fp), "ppv": (tp, tp + fp), "npv": (tn, tn + fn)}


def add_analytic_intervals(result: dict, frame: pd.DataFrame, classes, positive, ci: str = "auto") -> None:
    """Update the ``score_oof`` result of one pipeline in place (see the module docstring).

    Parameters
    ----------
    result : dict
        ``{metric: {"value", "mean", "sd", "ci_low", "ci_high", ...}}`` from ``score_oof``.
    frame : pandas.DataFrame
        The pipeline's OOF rows.
    classes : list of str
        Class names, in probability-column order.
    positive : str or None
        Positive class of a binary target.
    ci : {"auto", "analytic", "bootstrap"}
        Which intervals to use.
    """
    if ci not in CI_CHOICES:
        raise ValueError(f"ci {ci!r}: use {', '.join(CI_CHOICES)}")
    if len(classes) != 2 or positive is None:
        return
    y = frame["y_true"].astype(str).to_numpy() == str(positive)
    score = frame[f"proba_{positive}"].to_numpy(dtype=float)
    called = frame["y_pred"].astype(str).to_numpy() == str(positive)
    repeats = int(frame["repeat"].nunique()) if "repeat" in frame else 1
    analytic = ci == "analytic" or (ci == "auto" and cases_independent(frame))
    counts = proportion_counts(y, called)
    for name, (k, n) in counts.items():
        added = name not in result  # PPV and NPV: pooled value and a Wilson interval only
        if not added and not analytic:
            continue
        low, high = wilson(k / repeats, n / repeats)
        note = "" if analytic else "Wilson interval: cases of one patient treated as independent"
        entry = result.setdefault(name, {"value": float(k / n) if n else np.nan, "mean": np.nan, "sd": np.nan,
                                         "n_boot_valid": 0})
        entry.update(ci_low=low, ci_high=high, ci_method="Wilson", ci_note=note)
    if analytic and "auroc" in result:
        d = delong(y, score, repeats=repeats)
        result["auroc"].update(ci_low=d["ci_low"], ci_high=d["ci_high"], ci_method="DeLong",
                               ci_note="" if np.isfinite(d["ci_low"]) else "DeLong needs two cases per class")
    fit = recalibration(y, score)
    clip = clip_sensitivity(y, score)
    result["calibration_fit"] = {"status": fit["status"]}
    result["calibration_clip"] = {"value": CLIP, "slope_alt_clip": clip["slope_alt"],
                                  "n_clipped": clip["n_clipped"], "matters": clip["clip_matters"]}
