"""How good is a mask source? Score it against a manifest's expert masks (``vitfeat seg evaluate``).

The source is anything ``vitfeat extract --masks`` accepts (``auto``, ``model:DIR``, ``yolo:PT``, any
registered ``PREFIX:PATH``) or a folder of 0/255 PNG masks named like the photos (or by case id);
the reference is the manifest's own ``<modality>_mask`` column. Per-image counts come from
:func:`vitfeat.deep.segmentation.metrics.confusion_counts` (segmentation-models-pytorch), so the
numbers are those ``vitfeat train seg`` and ``seg compare`` report:

* ``dice_pooled`` / ``iou_pooled``: one confusion matrix summed over every pixel of every image;
* ``dice_median`` / ``dice_mean``: over images whose reference mask is not empty (an empty reference
  makes a per-image Dice 0/0 or 0: such a case is listed in ``empty_reference``, not divided by zero,
  and counts in the pooled scores only through its false positives);
* 95 % bootstrap intervals of the pooled and the median Dice, resampling *patients* (their images
  together) when the manifest has a ``patient_id``, else images.

A case whose photo, reference or predicted mask cannot be read or whose sizes differ is not scored;
it is listed, by case id, with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vitfeat.atomic import write_csv, write_figure, write_json
from vitfeat.dataset import ImageReadError, load_valid_rows, read_image, read_mask
from vitfeat.featurize.masks import auto_mask, mask_predictor, parse_mask_source

log = logging.getLogger(__name__)

#: The keys of :attr:`MaskEvaluation.summary` (and of ``seg evaluate --json``).
SUMMARY_KEYS = ("source", "modality", "n_images", "dice_pooled", "dice_pooled_ci", "dice_median",
                "dice_median_ci", "dice_mean", "iou_pooled", "ci_level", "n_boot", "resampled",
                "n_groups", "worst", "empty_reference", "failed")


@dataclass
class MaskEvaluation:
    """What :func:`evaluate_masks` returns: the summary and one row per case.

    Attributes
    ----------
    summary : dict
        Pooled, median and mean Dice with their intervals, pooled IoU, counts, the worst cases,
        cases with an empty reference and the cases that failed.
    per_image : pandas.DataFrame
        One row per scored case.
    images : dict
        ``case_id -> (photo, reference, predicted)``, kept for the overlays.
    """

    summary: dict
    per_image: pd.DataFrame
    images: dict = field(default_factory=dict, repr=False)  # case_id -> (photo, reference, predicted), for overlays

    def quality(self) -> dict:
        """The short record kept in a run's provenance (see :func:`vitfeat.featurize.masks.describe_quality`)."""
        s = self.summary
        return {"dice_pooled": s["dice_pooled"], "dice_pooled_ci": s["dice_pooled_ci"], "n_images": s["n_images"],
                "reference": s.get("reference")}


class _FolderSource:
    """Masks already on disk: ``DIR/<photo stem>.png`` (or any extension), else ``DIR/<case_id>.*``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files = {}
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.suffix.lower() in {".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".gif"}:
                self.files.setdefault(p.stem, p)

    def mask_for(self, case, modality: str) -> np.ndarray:
        photo = case.image(modality)
        path = self.files.get(photo.stem) or self.files.get(str(case.case_id))
        if path is None:
            raise ImageReadError(f"no mask for {photo.name} in {self.folder} (looked for {photo.stem}.* and "
                                 f"{case.case_id}.*)")
        return read_mask(path)


def resolve_source(spec: str, modality: str):
    """``(label, callable(case, rgb) -> bool mask, describe dict or None)`` for a mask source spec.

    Parameters
    ----------
    spec : str
        ``auto``, ``PREFIX:PATH`` (``model:DIR``, ``yolo:PT``) or a folder of mask images.
    modality : str
        ``clinical`` or ``wood``; a segmenter trained on the other modality is refused (named).
    """
    spec = str(spec).strip()
    if ":" not in spec and spec not in ("auto", "given") and Path(spec).expanduser().is_dir():
        folder = _FolderSource(Path(spec).expanduser())
        return f"folder:{folder.folder}", lambda case, rgb: folder.mask_for(case, modality), None
    kind, path = parse_mask_source(spec)
    if kind == "given":
        raise ValueError("--masks given is the reference itself; name the source to score (auto, "
                         "model:DIR, yolo:PT or a folder of masks)")
    if kind == "auto":
        return "auto", lambda case, rgb: auto_mask(rgb, modality), None
    predictor = mask_predictor(path, kind)
    describe = predictor.describe()
    trained = describe.get("trained_modality")
    if trained and trained != modality:
        raise ValueError(f"{kind}:{path} was trained on {trained} images; it cannot be scored on {modality} "
                         f"masks (use --modality {trained}, or a model trained on {modality} photos)")
    return f"{kind}:{path}", lambda case, rgb: np.asarray(predictor.predict(rgb, modality), dtype=bool), describe


def _counts(pred: np.ndarray, ref: np.ndarray) -> tuple[int, int, int, int]:
    import torch

    from vitfeat.deep.segmentation.metrics import confusion_counts

    tp, fp, fn, tn = confusion_counts(torch.from_numpy(pred[None, None].astype(np.float32)),
                                      torch.from_numpy(ref[None].astype(np.uint8)), num_classes=1)
    return int(tp.sum()), int(fp.sum()), int(fn.sum()), int(tn.sum())


def _pooled_dice(tp, fp, fn) -> float:
    den = 2 * tp + fp + fn
    return float(2 * tp / den) if den else float("nan")


def _bootstrap(frame: pd.DataFrame, n_boot: int, level: float, seed: int) -> dict:
    """Percentile intervals of the pooled and median Dice, resampling the groups in ``frame['group']``."""
    groups = pd.factorize(frame["group"])[0]
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    counts = np.zeros((n_groups, 3))
    np.add.at(counts, groups, frame[["tp", "fp", "fn"]].to_numpy(float))
    members = [np.flatnonzero(groups == g) for g in range(n_groups)]
    dice = frame["dice"].to_numpy(float)
    rng = np.random.default_rng(seed)
    pooled, median = np.full(n_boot, np.nan), np.full(n_boot, np.nan)
    for b in range(n_boot):
        pick = rng.integers(0, n_groups, n_groups)
        tp, fp, fn = counts[pick].sum(0)
        pooled[b] = _pooled_dice(tp, fp, fn)
        values = dice[np.concatenate([members[g] for g in pick])]
        values = values[np.isfinite(values)]
        if values.size:
            median[b] = np.median(values)
    alpha = (1 - level) / 2

    def interval(x):
        x = x[np.isfinite(x)]
        return [float(np.quantile(x, alpha)), float(np.quantile(x, 1 - alpha))] if x.size else [None, None]

    return {"dice_pooled_ci": interval(pooled), "dice_median_ci": interval(median), "n_groups": n_groups}


def evaluate_masks(manifest, source: str = "auto", *, modality: str = "clinical", n_boot: int = 1000,
                   ci_level: float = 0.95, seed: int = 0, n_worst: int = 5, keep_images: int = 0,
                   allow_outside_root: bool = False, progress: bool = False) -> MaskEvaluation:
    """Score the masks of ``source`` against the manifest's expert masks of ``modality``.

    Parameters
    ----------
    manifest : str, Path or DataFrame
        A manifest with ``<modality>`` photos and ``<modality>_mask`` reference masks.
    source : str
        A mask source as ``vitfeat extract --masks`` takes it (``auto``, ``model:DIR``, ...) or a folder.
    modality : str
        ``clinical`` (default) or ``wood``.
    n_boot : int
        Bootstrap resamples for the intervals (0: no intervals).
    ci_level : float
        Coverage of the intervals (default 0.95).
    seed : int
        Seed of the bootstrap.
    n_worst : int
        How many of the lowest-Dice cases ``summary['worst']`` names.
    keep_images : int
        Keep photo and masks of this many worst and best cases for :func:`plot_overlays` (0: none).
    allow_outside_root : bool
        Let manifest paths leave the manifest's folder.
    progress : bool
        Show a progress bar.

    Returns
    -------
    MaskEvaluation
        ``summary`` (the keys of :data:`SUMMARY_KEYS`) and ``per_image`` (case_id, patient_id, dice,
        iou, tp, fp, fn, reference_px, predicted_px, note).

    Raises
    ------
    ValueError
        The manifest has no reference masks of ``modality``, the source is unknown or was trained on
        the other modality, or no case could be scored.
    """
    if modality not in ("clinical", "wood"):
        raise ValueError(f"modality must be clinical or wood, not {modality!r}")
    man, invalid = load_valid_rows(manifest, require_targets=False, allow_outside_root=allow_outside_root)
    mask_col = f"{modality}_mask"
    name = man.path or "the manifest"
    if mask_col not in man.frame.columns or (man.frame[mask_col].isna().all() and not len(invalid)):
        raise ValueError(f"{name}: no {mask_col} column with masks: seg evaluate needs reference (expert) "
                         f"masks to score a mask source against")
    label, predict, describe = resolve_source(source, modality)
    frame = man.frame
    has_patients = bool((frame["patient_id"].astype(str) != frame["case_id"].astype(str)).any())
    rows, failed, images = [], [], {}
    for _, bad in invalid.iterrows():
        failed.append({"case_id": str(bad["case_id"]), "error": str(bad["error"])})
    cases = [c for c in man.cases() if c.image(modality) is not None and c.mask(modality) is not None]
    if progress:
        from tqdm.auto import tqdm

        cases = tqdm(cases, desc=f"seg evaluate {label}", unit="image")
    for case in cases:
        try:
            rgb = read_image(case.image(modality))
            ref = read_mask(case.mask(modality))
            if ref.shape != rgb.shape[:2]:
                raise ImageReadError(f"{case.mask(modality)}: reference mask size {ref.shape[::-1]} differs "
                                     f"from photo size {rgb.shape[1::-1]}")
            pred = np.asarray(predict(case, rgb), dtype=bool)
            if pred.shape != ref.shape:
                raise ImageReadError(f"predicted mask size {pred.shape[::-1]} differs from photo size "
                                     f"{rgb.shape[1::-1]} ({case.image(modality)})")
        except (ImageReadError, OSError, ValueError) as exc:
            failed.append({"case_id": case.case_id, "error": str(exc)})
            continue
        tp, fp, fn, _ = _counts(pred, ref)
        empty = not ref.any()
        rows.append({"case_id": case.case_id, "patient_id": case.patient_id,
                     "dice": np.nan if empty else 2 * tp / (2 * tp + fp + fn),
                     "iou": np.nan if empty else tp / (tp + fp + fn), "tp": tp, "fp": fp, "fn": fn,
                     "reference_px": int(ref.sum()), "predicted_px": int(pred.sum()),
                     "note": "empty reference mask: no per-image Dice" if empty else ""})
        if keep_images:
            images[case.case_id] = (rgb, ref, pred)
    per_image = pd.DataFrame(rows, columns=["case_id", "patient_id", "dice", "iou", "tp", "fp", "fn",
                                            "reference_px", "predicted_px", "note"])
    if per_image.empty:
        detail = "; ".join(f"{f['case_id']}: {f['error']}" for f in failed[:5])
        raise ValueError(f"{name}: no case could be scored ({detail})")
    tp, fp, fn = (int(per_image[c].sum()) for c in ("tp", "fp", "fn"))
    scored = per_image["dice"].dropna()
    summary = {
        "source": label, "modality": modality, "n_images": int(len(per_image)),
        "dice_pooled": _pooled_dice(tp, fp, fn), "dice_median": float(scored.median()) if len(scored) else None,
        "dice_mean": float(scored.mean()) if len(scored) else None,
        "iou_pooled": float(tp / (tp + fp + fn)) if tp + fp + fn else None,
        "ci_level": ci_level, "n_boot": n_boot, "resampled": "patients" if has_patients else "images",
        "worst": [{"case_id": r.case_id, "dice": round(float(r.dice), 4)}
                  for r in per_image.dropna(subset=["dice"]).nsmallest(n_worst, "dice").itertuples()],
        "empty_reference": per_image.loc[per_image["reference_px"] == 0, "case_id"].tolist(),
        "failed": failed, "reference": str(name), "mask_model": describe,
    }
    if n_boot:
        frame = per_image.assign(group=per_image["patient_id"] if has_patients else per_image["case_id"])
        summary.update(_bootstrap(frame, n_boot, ci_level, seed))
    else:
        summary.update({"dice_pooled_ci": [None, None], "dice_median_ci": [None, None],
                        "n_groups": int(per_image["patient_id"].nunique())})
    for case_id in summary["empty_reference"]:
        log.warning("%s: empty reference mask; scored in the pooled Dice only", case_id)
    for f in failed:
        log.warning("%s: not scored: %s", f["case_id"], f["error"])
    if keep_images:
        ranked = per_image.dropna(subset=["dice"]).sort_values("dice")["case_id"].tolist()
        chosen = set(ranked[:keep_images]) | set(ranked[-keep_images:])
        images = {k: v for k, v in images.items() if k in chosen}
    return MaskEvaluation(summary=summary, per_image=per_image, images=images)


def plot_overlays(evaluation: MaskEvaluation, path, n_cases: int = 4) -> Path:
    """An overlay sheet: the ``n_cases`` worst cases (top row) and best ones (bottom row).

    Parameters
    ----------
    evaluation : MaskEvaluation
        From :func:`evaluate_masks` with ``keep_images >= n_cases``.
    path : str or Path
        The PNG to write.
    n_cases : int
        Cases per row.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = evaluation.per_image.dropna(subset=["dice"]).sort_values("dice")
    ranked = ranked[ranked["case_id"].isin(list(evaluation.images))]
    worst, best = ranked.head(n_cases), ranked.tail(n_cases).iloc[::-1]
    ncols = max(len(worst), 1)
    fig, axes = plt.subplots(2, ncols, figsize=(2.8 * ncols, 6.0), squeeze=False, constrained_layout=True)
    for r, (title, part) in enumerate((("worst", worst), ("best", best))):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_axis_off()
            if c >= len(part):
                continue
            row = part.iloc[c]
            rgb, ref, pred = evaluation.images[row["case_id"]]
            shaded = rgb.astype(float) / 255
            shaded[pred] = 0.55 * shaded[pred] + 0.45 * np.array([1.0, 0.1, 0.1])
            ax.imshow(shaded)
            if ref.any() and not ref.all():
                ax.contour(ref, levels=[0.5], colors="lime", linewidths=1)
            ax.set_title(f"{title}: {row['case_id']}\nDice {row['dice']:.2f}", fontsize=8)
    fig.suptitle(f"{evaluation.summary['source']}: red = predicted lesion, green = expert outline", fontsize=9)
    path = Path(path)
    write_figure(path, fig, dpi=100)
    plt.close(fig)
    return path


def write_evaluation(evaluation: MaskEvaluation, out_dir, n_cases: int = 4) -> dict:
    """Write ``per_image.csv``, ``summary.json`` and (when images were kept) ``overlays.png`` into ``out_dir``.

    Parameters
    ----------
    evaluation : MaskEvaluation
        From :func:`evaluate_masks`.
    out_dir : str or Path
        Output folder (created).
    n_cases : int
        Worst and best cases on the overlay sheet.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"per_image": str(write_csv(out / "per_image.csv", evaluation.per_image, index=False)),
               "summary": str(write_json(out / "summary.json", evaluation.summary))}
    if evaluation.images:
        written["overlays"] = str(plot_overlays(evaluation, out / "overlays.png", n_cases))
    return written


def record_quality(evaluation: MaskEvaluation) -> Path:
    """Store the measured quality in the evaluated segmenter's ``segmenter.json`` (``mask_quality``).

    ``extract --masks model:DIR`` then records it in the feature table's provenance and the report
    shows it. Only a ``model:DIR`` segmenter directory can hold it.

    Parameters
    ----------
    evaluation : MaskEvaluation
        From :func:`evaluate_masks` with a ``model:DIR`` source.
    """
    import json

    from vitfeat.atomic import write_text

    describe = evaluation.summary.get("mask_model") or {}
    if describe.get("kind") != "segmenter":
        raise ValueError(f"--record needs a `train seg` segmenter directory (model:DIR), not "
                         f"{evaluation.summary['source']}")
    path = Path(describe["path"]) / "segmenter.json"
    meta = json.loads(path.read_text())
    meta["mask_quality"] = evaluation.quality()
    write_text(path, json.dumps(meta, indent=2))
    return path


def format_summary(summary: dict) -> str:
    """The few lines ``seg evaluate`` prints.

    Parameters
    ----------
    summary : dict
        :attr:`MaskEvaluation.summary`.

    Returns
    -------
    str
        Pooled/median/mean Dice with intervals and pooled IoU, then the worst, empty-reference and
        unscored cases.
    """
    def ci(key):
        lo, hi = summary.get(key) or (None, None)
        return f" [{lo:.3f}-{hi:.3f}]" if lo is not None else ""

    def num(v):
        return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"

    lines = [f"{summary['source']} vs expert {summary['modality']} masks: {summary['n_images']} images"
             f" ({summary.get('n_groups', '?')} {summary['resampled']} resampled)",
             f"  Dice pooled {num(summary['dice_pooled'])}{ci('dice_pooled_ci')}, median "
             f"{num(summary['dice_median'])}{ci('dice_median_ci')}, mean {num(summary['dice_mean'])}; "
             f"IoU pooled {num(summary['iou_pooled'])}"]
    if summary["worst"]:
        lines.append("  worst: " + ", ".join(f"{w['case_id']} {w['dice']:.2f}" for w in summary["worst"]))
    if summary["empty_reference"]:
        lines.append(f"  empty reference mask (no per-image Dice): {', '.join(summary['empty_reference'])}")
    for f in summary["failed"]:
        lines.append(f"  not scored: {f['case_id']}: {f['error']}")
    return "\n".join(lines)
