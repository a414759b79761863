"""The ONE positive-class rule of vitfeat, used by fit, the report, explain, VMTL and the app.

For a binary target the "positive" class is the one sensitivity, AUROC and PR-AUC refer to:

1. an explicit choice (``--positive CLASS`` on ``fit`` / ``train vmtl``, ``positive:`` in the fit YAML)
   when one is given: it must be one of the classes;
2. else the one class with a disease or abnormal name (:data:`POSITIVE_NAMES`: vitiligo, progressive,
   active, non-stable, unstable, melanoma, lesion, disease, ...; compared case-insensitively with spaces,
   hyphens and underscores ignored, so ``Non-Stable``, ``non_stable`` and ``nonstable`` all match);
3. else, when the other class has a healthy or benign name (:data:`NEGATIVE_NAMES`: normal, healthy,
   control, benign, stable, nevus, ...), the class that has not;
4. else the labels are ambiguous: ``fit`` refuses them (``strict=True``) and asks for ``--positive``;
   other callers get the minority class, with a warning that says so (counts tied: the last class in
   sorted order).

:func:`positive_reason` says in words which rule chose the class (the report quotes it).
"""

from __future__ import annotations

import re
import warnings

import pandas as pd

#: Class names treated as the positive (diseased / abnormal / progressing) class of a binary target.
POSITIVE_NAMES = ("active", "nonstable", "unstable", "progressive", "progressing", "melanoma", "malignant",
                  "vitiligo", "lesion", "lesional", "disease", "diseased", "abnormal", "case",
                  "positive", "yes", "true", "1")
#: Class names treated as the negative (healthy / normal / benign / stable) class.
NEGATIVE_NAMES = ("normal", "healthy", "control", "benign", "stable", "nevus", "naevus", "commonnevus",
                  "normalskin", "nonlesional", "negative", "no", "false", "0")


class PositiveClassWarning(UserWarning):
    """The positive class was guessed as the minority class."""


def _normalise(name) -> str:
    return re.sub(r"[\s_\-]+", "", str(name).strip().lower())


def known_positive(classes) -> str | None:
    """The first class whose name is a known disease-stage name, or None.

    Parameters
    ----------
    classes : sequence
        Class names.

    Returns
    -------
    str or None
    """
    classes = [str(c) for c in classes]
    found = [c for c in classes if _normalise(c) in POSITIVE_NAMES]
    if len(found) == 1:
        return found[0]
    if found:
        return None
    if len(classes) == 2:
        others = [c for c in classes if _normalise(c) not in NEGATIVE_NAMES]
        if len(others) == 1:
            return others[0]
    return None


def positive_reason(classes, positive: str, explicit: str | None = None) -> str:
    """Why ``positive`` is the positive class of ``classes``, in words, for the report.

    Parameters
    ----------
    classes : sequence
        The target's class names.
    positive : str
        The chosen positive class.
    explicit : str, optional
        The user's ``--positive``, if any.

    Returns
    -------
    str
        One sentence.
    """
    classes = [str(c) for c in classes]
    other = next((c for c in classes if c != str(positive)), "")
    if explicit is not None and str(explicit) == str(positive):
        return "chosen with --positive"
    if _normalise(positive) in POSITIVE_NAMES:
        return "it names the disease or abnormal state"
    if _normalise(other) in NEGATIVE_NAMES:
        return f"the other class, '{other}', names the healthy, benign or stable state"
    return "no class name decides it; the minority class"


def positive_class(classes, y=None, explicit: str | None = None, target: str | None = None,
                   strict: bool = False) -> str:
    """The class reported as positive for a binary target (see the module docstring for the rule).

    Parameters
    ----------
    classes : sequence
        The target's class names.
    y : array-like, optional
        The labels, used to find the minority class when no name is known.
    explicit : str, optional
        A class chosen by the user (``--positive``); must be one of ``classes``.
    target : str, optional
        The target's name, for the messages.
    strict : bool, default False
        Refuse ambiguous labels (no rule decides) instead of taking the minority class.

    Returns
    -------
    str
        The positive class.

    Raises
    ------
    ValueError
        When ``explicit`` is not one of the classes, or ``strict`` and the labels are ambiguous.
    """
    classes = [str(c) for c in classes]
    what = f"target '{target}'" if target else "the target"
    if explicit is not None:
        if str(explicit) not in classes:
            raise ValueError(f"positive class '{explicit}' is not a class of {what} "
                             f"(classes: {', '.join(classes)})")
        return str(explicit)
    known = known_positive(classes)
    if known is not None:
        return known
    if strict:
        raise ValueError(f"{what[0].upper() + what[1:]}: the class names ({', '.join(classes)}) do not say which "
                         "is the disease or abnormal class; pass --positive CLASS (or 'positive:' in the fit YAML)")
    if y is not None:
        counts = pd.Series(y).astype(str).value_counts()
        guess = str(counts.index[-1])
    else:
        guess = classes[-1]
    warnings.warn(f"{what[0].upper() + what[1:]}: no class name is a known positive (disease-stage) name "
                  f"({', '.join(classes)}); '{guess}' (the minority class) is taken as positive. "
                  "Pass --positive CLASS (or 'positive:' in the fit YAML) to choose it.",
                  PositiveClassWarning, stacklevel=2)
    return guess


