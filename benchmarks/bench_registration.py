"""ORB registration variants against the known camera move of `vitfeat synth` pairs (issue #31).

    .venv/bin/python benchmarks/bench_registration.py                       # 40 + 120 pairs, ~2 min on a core
    .venv/bin/python benchmarks/bench_registration.py --sets 20:0 --repeats 1   # quick

Each synth pair's Wood's photo is the clinical scene moved by a known similarity (truth.csv:
``wood_rotation_deg``, ``wood_scale``, ``wood_shift_x/y`` about the image centre). For every pair
ORB registration (the ORB branch of :func:`vitfeat.featurize.registration.register_pair`, run on
every pair, also those the satellite landmarks register first) is run as it is ("current") and with
one cheaper setting changed; it prints per variant the share of pairs accepted, the registration
error (mean distance, in px, between where the estimated and the true map put the clinical
lesion's pixels: median, 90th percentile, share within 3 px) and the time per pair (best of
``--repeats``, CPU time, one thread) relative to "current". Checks first that "current" gives
register_pair's own matrix on every pair that register_pair registers by ORB.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from vitfeat.dataset import load_manifest
from vitfeat.featurize import registration as reg
from vitfeat.featurize.engine import load_case_arrays
from vitfeat.featurize.views import ImageView

REPO = Path(__file__).resolve().parents[1]
CLOCK = time.process_time

#: Cheaper settings tried (each one change from register_pair's defaults).
VARIANTS = {
    "current": {},
    "fast_score": {"score": cv2.ORB_FAST_SCORE},  # FAST corner score instead of Harris
    "levels6": {"levels": 6},  # 6 pyramid levels instead of 8
    "n300": {"n_features": 300},  # 300 keypoints instead of 500
    "linear": {"interp": cv2.INTER_LINEAR},  # shrink to 384 px with INTER_LINEAR, not INTER_AREA
}


def orb_matrix(grey_c, grey_w, mask_c, mask_w, n_features=500, max_side=384, interp=cv2.INTER_AREA,
               score=cv2.ORB_HARRIS_SCORE, levels=8, min_inliers=8, scale_range=(0.6, 1.6), margin_px=7):
    """register_pair's ORB branch with its settings as arguments: the 2x3 matrix, or None if rejected."""
    orb = cv2.ORB_create(n_features, nlevels=levels, scoreType=score)

    def prepared(img, mask, s):
        if s < 1.0:
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=interp)
            mask = cv2.resize(reg._as_u8(mask), img.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
        return reg._high_pass(img), reg._skin_mask(mask, img.shape, margin_px)

    s_c, s_w = (min(1.0, max_side / max(img.shape[:2])) for img in (grey_c, grey_w))
    k1, d1 = orb.detectAndCompute(*prepared(grey_c, mask_c, s_c))
    k2, d2 = orb.detectAndCompute(*prepared(grey_w, mask_w, s_w))
    if d1 is None or d2 is None or len(k1) < min_inliers or len(k2) < min_inliers:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(d1, d2, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(good) < min_inliers:
        return None
    p1 = np.float32([k1[g.queryIdx].pt for g in good]) / s_c
    p2 = np.float32([k2[g.trainIdx].pt for g in good]) / s_w
    matrix, inliers = cv2.estimateAffinePartial2D(p1, p2, method=cv2.RANSAC, ransacReprojThreshold=3.0)
    if matrix is None:
        return None
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    return matrix if int(inliers.sum()) >= min_inliers and scale_range[0] <= scale <= scale_range[1] else None


def true_matrix(t, size: int) -> np.ndarray:
    """The synth camera move (vitfeat.synth._move_wood_camera) from a truth.csv row."""
    m = cv2.getRotationMatrix2D((size / 2, size / 2), float(t.wood_rotation_deg), float(t.wood_scale))
    m[:, 2] += [t.wood_shift_x, t.wood_shift_y]
    return m


def run_set(n: int, seed: int, size: int, repeats: int) -> list[dict]:
    from vitfeat.synth import generate

    out = REPO / "artifacts" / "bench" / f"synth_{n}_{size}_{seed}"
    if not (out / "manifest.csv").is_file():
        generate(out, n=n, seed=seed, size=size, jobs=1, progress=False)
    truth = pd.read_csv(out / "truth.csv").set_index("case_id")
    rows = []
    for case in list(load_manifest(out / "manifest.csv").cases())[:n]:
        if not case.wood:
            continue
        arrays = load_case_arrays(case, {"clinical": "given", "wood": "given"})
        vc, vw = ImageView(arrays.clinical, arrays.clinical_mask), ImageView(arrays.wood, arrays.wood_mask)
        ys, xs = np.nonzero(vc.mask)
        points = np.stack([xs, ys, np.ones_like(xs)], 1).astype(float)
        true = points @ true_matrix(truth.loc[case.case_id], arrays.wood.shape[0]).T
        own = reg.register_pair(vc.grey_u8, vw.grey_u8, vc.mask, vw.mask)
        for name, options in VARIANTS.items():
            spent = np.inf
            for _ in range(repeats):
                t0 = CLOCK()
                matrix = orb_matrix(vc.grey_u8, vw.grey_u8, vc.mask, vw.mask, **options)
                spent = min(spent, CLOCK() - t0)
            if name == "current" and own.method == "orb_similarity" and not np.array_equal(matrix, own.matrix):
                raise AssertionError(f"{case.case_id}: the bench's ORB branch no longer equals register_pair's")
            err = np.nan if matrix is None else float(np.mean(np.hypot(*(points @ matrix.T - true).T)))
            rows.append({"set": out.name, "case": case.case_id, "variant": name, "err_px": err, "ms": spent * 1e3})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["40:0", "120:1"], help="synth sets as N:SEED (default 40:0 120:1)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3, help="timings: best of this many runs per pair")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    rows = []
    for spec in args.sets:
        n, seed = (int(x) for x in spec.split(":"))
        rows += run_set(n, seed, args.size, args.repeats)
    df = pd.DataFrame(rows)
    g = df.groupby("variant", sort=False)
    table = pd.DataFrame({
        "pairs": g.size(), "accepted_%": 100 * g.err_px.apply(lambda e: e.notna().mean()),
        "median_err_px": g.err_px.median(), "p90_err_px": g.err_px.quantile(0.9),
        "within_3px_%": 100 * g.err_px.apply(lambda e: (e <= 3).mean()), "ms_per_pair": g.ms.mean()})
    table["time_vs_current"] = table.ms_per_pair / table.loc["current", "ms_per_pair"]
    print(f"ORB registration on {len(df) // len(VARIANTS)} synth pairs ({', '.join(args.sets)} at {args.size} px), "
          "error against the known camera move:")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
