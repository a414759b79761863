"""Training-free ``--masks auto``: version 3 against the current version, side by side, on expert masks.

Datasets (beside the repo, ../shared/data): vitiligo-seg (96 web photos, hand-drawn polygons; the
``group`` column ties the ~3 augmented copies of one source photo together and is the patient),
PH2 and ISIC 2017 dermoscopy (one patient per image; pigmented lesions, not vitiligo: the automatic
mask must not get worse there). For each set and method it prints the pooled Dice (one confusion
matrix over every pixel of every image, as ``vitfeat seg evaluate``) and the median per-image Dice
with 95 % patient-bootstrap intervals, per-image Dice quantiles and a text histogram, the seconds
per photo of both methods measured in the same run, and how much of the remaining error (false
positives + false negatives) lies in collages (more than one panel) and in a band along the expert
outline (a coarse hand-drawn polygon disagrees there whatever the method does).

``--cv`` chooses the two settings new in v4 (``background_flat_sd``, ``panel_keep``; a small grid
that includes "off") inside a 5-fold patient-grouped cross-validation on vitiligo-seg: each fold
picks the setting with the best pooled Dice on its training groups and is scored on its held-out
groups. It prints the in-sample figure of the chosen defaults beside the cross-validated one.

    python benchmarks/bench_auto_masks.py --quick          # a third of the photos, 200 resamples (~1 min)
    python benchmarks/bench_auto_masks.py --cv --figure auto_masks.png   # everything (~5 min on 2 cores)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vitfeat.dataset import read_image, read_mask  # noqa: E402
from vitfeat.deep.segmentation.evaluate import _bootstrap  # noqa: E402
from vitfeat.featurize.masks import AUTO_MASK_VERSION, auto_clinical_mask, collage_panels  # noqa: E402

DATA = REPO.parent / "shared" / "data"
SETS = ("vitiligo-seg", "ph2", "isic2017")
#: Version 3: no backdrop removal, no collage panels.
OLD = {"background_flat_sd": None, "panel_keep": None}
#: The grid of ``--cv`` (the defaults of the current version are in it).
GRID = [{"background_flat_sd": b, "panel_keep": p} for b in (None, 0.5, 0.8) for p in (None, 0.5, 0.8)]


def load(folder: Path, every: int = 1, limit: int | None = None) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """``(case, patient, photo, expert mask)`` of a shared-data folder (every ``every``-th row)."""
    labels = pd.read_csv(folder / "labels.csv", dtype=str).iloc[::every]
    if limit:
        labels = labels.head(limit)
    patients = labels["group"] if "group" in labels else labels["image"]
    return [(Path(image).stem, str(patient), read_image(folder / image), read_mask(folder / mask) > 0)
            for image, mask, patient in zip(labels["image"], labels["mask"], patients)]


def score(items, **settings) -> tuple[pd.DataFrame, float]:
    """Per-image counts of :func:`auto_clinical_mask` with ``settings`` and the seconds per photo."""
    rows, start = [], time.perf_counter()
    for case, patient, rgb, ref in items:
        pred = auto_clinical_mask(rgb, **settings)
        tp, fp, fn = int((pred & ref).sum()), int((pred & ~ref).sum()), int((~pred & ref).sum())
        rows.append({"case_id": case, "group": patient, "tp": tp, "fp": fp, "fn": fn,
                     "dice": 2 * tp / (2 * tp + fp + fn) if ref.any() else np.nan})
    return pd.DataFrame(rows), (time.perf_counter() - start) / max(len(items), 1)


def pooled(frame: pd.DataFrame) -> float:
    tp, fp, fn = frame[["tp", "fp", "fn"]].sum()
    return 2 * tp / max(2 * tp + fp + fn, 1)


def summary(frame: pd.DataFrame, n_boot: int) -> str:
    ci = _bootstrap(frame, n_boot, 0.95, 0) if n_boot else {"dice_pooled_ci": [np.nan] * 2,
                                                            "dice_median_ci": [np.nan] * 2}
    p, m = ci["dice_pooled_ci"], ci["dice_median_ci"]
    return (f"pooled {pooled(frame):.3f} [{p[0]:.3f}-{p[1]:.3f}]  median {frame['dice'].median():.3f} "
            f"[{m[0]:.3f}-{m[1]:.3f}]")


def histogram(dice: pd.Series, bins: int = 10) -> str:
    counts, _ = np.histogram(dice.dropna(), bins=bins, range=(0, 1))
    return "  ".join(f"{k / bins:.1f}:{c}" for k, c in enumerate(counts))


def error_sources(items, band_fraction: float = 1 / 40) -> dict:
    """Shares of the error (fp + fn) in collage photos and within a band along the expert outline."""
    import cv2

    total = collage = band = radius = 0
    for _, _, rgb, ref in items:
        pred = auto_clinical_mask(rgb)
        wrong = pred ^ ref
        total += wrong.sum()
        if len(collage_panels(rgb)) > 1:
            collage += wrong.sum()
        radius = max(1, round(max(ref.shape) * band_fraction))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        ring = cv2.dilate(ref.astype(np.uint8), kernel) > cv2.erode(ref.astype(np.uint8), kernel)
        band += (wrong & ring).sum()
    return {"collage": collage / max(total, 1), "outline_band": band / max(total, 1), "band_px": radius}


def grouped_cv(items, folds: int = 5) -> tuple[float, list[dict]]:
    """Pooled Dice on held-out groups when each fold picks its setting of :data:`GRID` on its training groups."""
    from sklearn.model_selection import GroupKFold

    frames = [score(items, **setting)[0] for setting in GRID]
    groups = frames[0]["group"].to_numpy()
    held_out, chosen = [], []
    for train, test in GroupKFold(folds).split(frames[0], groups=groups):
        best = int(np.argmax([pooled(f.iloc[train]) for f in frames]))
        chosen.append(GRID[best])
        held_out.append(frames[best].iloc[test])
    return pooled(pd.concat(held_out)), chosen


def figure(path: Path, results: dict) -> None:
    import matplotlib.pyplot as plt

    from vitfeat.atomic import write_figure

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.2))
    for ax, (name, (old, new)) in zip(np.atleast_1d(axes), results.items()):
        bins = np.linspace(0, 1, 11)
        ax.hist([old["dice"].dropna(), new["dice"].dropna()], bins=bins, label=["v3", f"v{AUTO_MASK_VERSION}"])
        ax.set_title(f"{name}: pooled {pooled(old):.2f} -> {pooled(new):.2f}")
        ax.set_xlabel("per-image Dice")
    np.atleast_1d(axes)[0].set_ylabel("photos")
    np.atleast_1d(axes)[0].legend()
    fig.tight_layout()
    write_figure(path, fig, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every 3rd vitiligo photo, 30 PH2 and 30 ISIC images")
    parser.add_argument("--cv", action="store_true", help="choose the v4 settings in a patient-grouped CV")
    parser.add_argument("--n-boot", type=int, default=None, help="bootstrap resamples (default 1000; 200 quick)")
    parser.add_argument("--figure", help="write the per-image Dice histograms to this PNG")
    parser.add_argument("--data", default=str(DATA), help=f"the shared data folder (default {DATA})")
    args = parser.parse_args(argv)
    data = Path(args.data)
    n_boot = args.n_boot if args.n_boot is not None else (200 if args.quick else 1000)
    results = {}
    for name in SETS:
        items = load(data / name, every=3 if args.quick and name == "vitiligo-seg" else 1,
                     limit=30 if args.quick and name != "vitiligo-seg" else None)
        old, old_s = score(items, **OLD)
        new, new_s = score(items)
        results[name] = (old, new)
        print(f"{name}: {len(items)} images, {new['group'].nunique()} patients")
        for label, frame, seconds in (("v3", old, old_s), (f"v{AUTO_MASK_VERSION}", new, new_s)):
            q = frame["dice"].quantile([0.1, 0.25, 0.5, 0.75, 0.9]).round(2).tolist()
            print(f"  {label:3s} {summary(frame, n_boot)}  {seconds:.3f} s/photo  quantiles 10/25/50/75/90 {q}")
            print(f"      histogram {histogram(frame['dice'])}")
        if name == "vitiligo-seg":
            shares = error_sources(items)
            print(f"  v{AUTO_MASK_VERSION} error (fp + fn): {shares['collage']:.0%} in collage photos, "
                  f"{shares['outline_band']:.0%} within {shares['band_px']} px of the expert outline")
            if args.cv:
                cv_dice, chosen = grouped_cv(items)
                print(f"  5-fold patient-grouped CV of the v4 settings: held-out pooled Dice {cv_dice:.3f} "
                      f"(in-sample with the defaults {pooled(new):.3f}); chosen per fold: {chosen}")
    if args.figure:
        figure(Path(args.figure), results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
