"""What the app says about a model's needs and about a case's applicability.

The needs come from what ``fit`` recorded (``run.json`` ``applicability.needs``: the modalities of
the training cases and the mask source); the verdict from ``predict``'s ``in_scope``,
``scope_reason`` and ``<target>_prediction_set`` columns. Here they are only put in plain words.
"""

from __future__ import annotations

import pandas as pd

#: Shown when the conformal set holds more than one class.
CANNOT_SEPARATE = "the model cannot separate the stages for this lesion"


def run_needs(run) -> dict:
    """``{"modalities", "mask_source", "recorded", "wood_share"}`` of a :class:`~vitfeat.app.RunInfo`.

    Runs fitted before ``fit`` recorded its needs fall back to the feature names (a Wood's or
    pair feature means the model needs the Wood's photo) and ``recorded`` is False.

    Parameters
    ----------
    run : RunInfo
        The run.
    """
    needs = (run.meta.get("applicability") or {}).get("needs")
    mask_source = str((run.meta.get("extraction") or {}).get("masks") or "given")
    if needs:
        return {"modalities": list(needs.get("modalities") or ["clinical"]),
                "mask_source": str(needs.get("mask_source") or mask_source), "recorded": True,
                "wood_share": float(needs.get("wood_share") or 0.0)}
    wood = run.kind == "sklearn" and any(c.startswith(("wood_", "pair_")) for c in run.feature_columns)
    return {"modalities": ["clinical", "wood"] if wood else ["clinical"], "mask_source": mask_source,
            "recorded": False, "wood_share": None}


def never_saw_wood(run) -> bool:
    """True for a feature model whose training cases had no Wood's photo at all (recorded by fit)."""
    return run.kind == "sklearn" and run_needs(run)["wood_share"] == 0.0


def mask_note(run) -> str | None:
    """A plain sentence for models fitted with given (drawn) masks; None otherwise."""
    if run.kind != "sklearn" or run_needs(run)["mask_source"] != "given":
        return None
    return ("This model was trained on hand-drawn lesion masks. Upload a mask for each photo; without one "
            "the lesion is outlined automatically, which differs from how the model was trained.")


def _parse_set(text) -> list[str] | None:
    if text is None or (isinstance(text, float) and pd.isna(text)) or not str(text).strip():
        return None
    return [s.strip() for s in str(text).strip("{}").split(",") if s.strip()]


def scope_fields(run, row: pd.Series, target: str, *, masks_uploaded: bool) -> tuple[dict, list[str]]:
    """The answer's applicability fields and the warnings they bring.

    Parameters
    ----------
    run : RunInfo
        The run.
    row : pandas.Series
        ``predict``'s output row for the case.
    target : str
        The answered target.
    masks_uploaded : bool
        Whether the user gave a clinical mask.

    Returns
    -------
    (dict, list of str)
        ``in_scope`` (bool, or None for runs without a check), ``scope_reason``, ``prediction_set``
        (list of classes or None), ``mask_source`` (``uploaded``, ``automatic`` or the run's model
        source), ``model`` (the run's name); and warnings.
    """
    checked = "in_scope" in row.index and pd.notna(row["in_scope"])
    in_scope = bool(row["in_scope"]) if checked else None
    reason = str(row.get("scope_reason") or "") if checked else "this run has no applicability check"
    if reason == "nan":
        reason = ""
    source = run_needs(run)["mask_source"]
    if masks_uploaded:
        mask_source = "uploaded"
    elif source in ("given", "auto"):
        mask_source = "automatic"
    else:
        mask_source = source.split(":", 1)[0]
    warnings = []
    note = mask_note(run)
    if note and not masks_uploaded:
        warnings.append("no lesion mask was uploaded: the lesion was outlined automatically, but this model was "
                        "trained on hand-drawn masks, so its answer may differ from how it was validated")
    fields = {"in_scope": in_scope, "scope_reason": reason,
              "prediction_set": _parse_set(row.get(f"{target}_prediction_set")), "mask_source": mask_source,
              "model": run.name}
    return fields, warnings


def verdict_lines(result: dict) -> list[str]:
    """The first lines of the Stage tab's answer: the stage, or "Cannot assess" with the reason.

    Parameters
    ----------
    result : dict
        :func:`~vitfeat.app.predict_pair`'s answer.
    """
    if result.get("in_scope") is False:
        reasons = [r.strip() for r in str(result.get("scope_reason") or "").split(";") if r.strip()]
        return ["## Cannot assess this photo",
                "The photo lies outside what the model was trained on, so it gives no stage:\n"
                + "\n".join(f"- {r}" for r in reasons)]
    probs = " · ".join(f"{c}: **{p:.1%}**" for c, p in result["probabilities"].items())
    lines = [f"## Predicted stage: {result['stage']}", f"Probabilities — {probs}"]
    pset = result.get("prediction_set")
    if pset:
        cover = result.get("coverage")
        at = f" at {cover:.0%} coverage" if cover else ""
        if len(pset) > 1:
            lines.append(f"Prediction set{at}: {{{', '.join(pset)}}} — **{CANNOT_SEPARATE}**")
        else:
            lines.append(f"Prediction set{at}: {{{pset[0]}}}")
    if result.get("in_scope") is True:
        lines.append("In scope: the photo resembles the training cases.")
    return lines


def scope_summary(run) -> str | None:
    """The Model tab's paragraph on what the model needs and when it declines to answer (None for
    runs without a recorded check).

    Parameters
    ----------
    run : RunInfo
        The run.
    """
    scope = run.meta.get("applicability")
    if not scope:
        return None
    needs = run_needs(run)
    photos = "a clinical and a Wood's-lamp photo" if "wood" in needs["modalities"] else "one clinical photo"
    masks = {"given": "hand-drawn masks (upload one, or it draws one automatically)",
             "auto": "masks it draws automatically"}.get(needs["mask_source"], f"masks from {needs['mask_source']}")
    n, flagged = scope.get("oof_assessed", 0), scope.get("oof_flagged", 0)
    lines = [f"### What it needs and when it cannot answer\nThis model needs {photos}, with {masks}. It answers "
             f"\"cannot assess\" when a photo fails an image-quality gate learnt from the training photos or lies "
             f"far from every training case (k-nearest-neighbour distance on the features). Out of fold "
             f"{flagged} of {n} training cases ({flagged / max(n, 1):.0%}) were flagged so."]
    for target, c in (run.meta.get("conformal") or {}).items():
        if c.get("empirical_coverage") is not None:
            lines.append(f"{target}: prediction sets at {c['coverage']:.0%} coverage held the true class for "
                         f"{c['empirical_coverage']:.0%} of cases out of fold; {c['two_class_share']:.0%} of them "
                         f"named both classes ({CANNOT_SEPARATE}).")
    return "\n\n".join(lines)
