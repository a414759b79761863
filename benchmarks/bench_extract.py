"""Benchmark of `vitfeat extract`: speed, truth recovery on synth, agreement with pyradiomics.

    .venv/bin/python benchmarks/bench_extract.py                 # everything (about 2-3 min on 2 cores)
    .venv/bin/python benchmarks/bench_extract.py --n 200 --size 512 --ph2 40 --jobs 2
    .venv/bin/python benchmarks/bench_extract.py --baseline 07c0f96 --n 40 --ph2 20   # old vs new, one run

Prints:
1. synth (N paired cases at SIZE px): cases/s of a full extraction with --jobs J (no cache),
   and per-case time on one core (images decoded + masks read, then features), per family (a
   table with each family's share, the shared per-image intermediates on their own, and the
   ratio of features to decode time);
2. truth recovery on the same cases: Spearman of the measured area ratio and border transition
   width with truth.csv, and the share of cases with the exact satellite count;
3. PH2 (when ../shared/data/ph2 exists): per-image time of vitfeat's full single-image set vs
   pyradiomics' default 2D extraction (original + wavelet) and their ratio, when pyradiomics is installed
   (`pip install versioneer wheel && pip install --no-build-isolation pyradiomics`), and the
   relative difference of the shape and first-order features both define.

With ``--baseline REF`` it prints instead the side-by-side comparison of ``vitfeat.featurize`` at git
commit REF (copied under another package name) and this checkout, in one process on the same
inputs: per paired synth case decode ms and each code's features ms (best of --repeats passes, the
two codes alternating first from pass to pass), both features / decode ratios; per PH2 image each
code's ms and pyradiomics' (original + wavelet), both ratios to pyradiomics; and the largest
relative difference of every family's values between the two codes (synth pairs and PH2 images).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from vitfeat.dataset import load_manifest, read_image, read_mask
from vitfeat.featurize import DEFAULT_FAMILIES, extract, get_family
from vitfeat.featurize.engine import load_case_arrays

REPO = Path(__file__).resolve().parents[1]
CLOCK = time.process_time  # single-threaded timings below: CPU seconds of this process

# pyradiomics name -> vitfeat feature (same definition; see docs/extract.md for the differences)
PYRADIOMICS_PAIRS = {
    "shape2D_MeshSurface": "shape_mesh_area", "shape2D_PixelSurface": "shape_pixel_area",
    "shape2D_Perimeter": "shape_perimeter", "shape2D_PerimeterSurfaceRatio": "shape_perimeter_area_ratio",
    "shape2D_Sphericity": "shape_sphericity", "shape2D_MaximumDiameter": "shape_max_diameter",
    "shape2D_MajorAxisLength": "shape_major_axis", "shape2D_MinorAxisLength": "shape_minor_axis",
    "shape2D_Elongation": "shape_elongation",
    "firstorder_Energy": "firstorder_energy", "firstorder_Entropy": "firstorder_entropy",
    "firstorder_Minimum": "firstorder_minimum", "firstorder_10Percentile": "firstorder_p10",
    "firstorder_90Percentile": "firstorder_p90", "firstorder_Maximum": "firstorder_maximum",
    "firstorder_Mean": "firstorder_mean", "firstorder_Median": "firstorder_median",
    "firstorder_InterquartileRange": "firstorder_iqr", "firstorder_Range": "firstorder_range",
    "firstorder_MeanAbsoluteDeviation": "firstorder_mean_absolute_deviation",
    "firstorder_RobustMeanAbsoluteDeviation": "firstorder_robust_mean_absolute_deviation",
    "firstorder_RootMeanSquared": "firstorder_rms", "firstorder_Skewness": "firstorder_skewness",
    "firstorder_Kurtosis": "firstorder_kurtosis", "firstorder_Variance": "firstorder_variance",
    "firstorder_Uniformity": "firstorder_uniformity",
}


def per_core_times(manifest, n: int, repeats: int) -> tuple[float, float, dict, list]:
    """(load ms, features ms, per-family ms) per case, one thread, in this process, and each pass's
    features / decode ratio (both halves timed in that pass, so a drift of the machine's speed
    between passes cancels out of it).

    CPU time of this process (``time.process_time``), not wall time, and the best of ``repeats``
    passes (as ``timeit`` reports): on a machine shared with other jobs, wall time and single
    passes measure the neighbours (cache and memory-bandwidth contention) as much as the code.
    """
    cv2.setNumThreads(1)
    families = [get_family(f) for f in DEFAULT_FAMILIES]
    cases = list(manifest.cases())[:n]
    for fam in families:  # warm-up: first calls import and initialise libraries
        fam(load_case_arrays(cases[0], {"clinical": "given", "wood": "given"}))
    load_best, fam_best, ratios = np.inf, {f.name: np.inf for f in families}, []
    for _ in range(repeats):
        load_t, fam_t = 0.0, {f.name: 0.0 for f in families}
        for case in cases:
            plan = {"clinical": "given", **({"wood": "given"} if case.wood else {})}
            t0 = CLOCK()
            arrays = load_case_arrays(case, plan)
            load_t += CLOCK() - t0
            for fam in families:
                t0 = CLOCK()
                fam(arrays)
                fam_t[fam.name] += CLOCK() - t0
        load_best = min(load_best, load_t)
        fam_best = {k: min(fam_best[k], fam_t[k]) for k in fam_t}
        ratios.append(sum(fam_t.values()) / load_t)
    k = 1000.0 / len(cases)
    return load_best * k, sum(fam_best.values()) * k, {name: t * k for name, t in fam_best.items()}, ratios


def shared_intermediate_times(manifest, n: int, repeats: int) -> dict:
    """CPU ms per case of the per-image intermediates the families share (:mod:`vitfeat.featurize.views`).

    They are computed once per image, on first use, so :func:`per_core_times` charges each to the
    first family that reads it; this times them on their own (best of ``repeats``).
    """
    from vitfeat.featurize.views import DISTANCE_PREFETCH_PX, view

    def cielab(v):  # the window the colour family converts (its default 2 x 24 px bands)
        return v.lab8_window(v.near(max(2.0 + v.ring_width, DISTANCE_PREFETCH_PX)))

    parts = {"components": lambda v: v.components_box, "grey": lambda v: (v.grey_u8, v.grey_roi),
             # distance: the window the families read (the first distance_near computes it for all)
             "distance": lambda v: v.distance_near(0.0), "ring + boundary": lambda v: (v.ring_roi, v.boundary_roi),
             "CIELAB": cielab}
    cases = [load_case_arrays(c, {"clinical": "given", **({"wood": "given"} if c.wood else {})})
             for c in list(manifest.cases())[:n]]
    best = dict.fromkeys(parts, np.inf)
    for _ in range(repeats):
        spent = dict.fromkeys(parts, 0.0)
        for arrays in cases:
            arrays.memo.clear()
            for modality in ("clinical", "wood"):
                v = view(arrays, modality)
                if v is None or not v.has_lesion:
                    continue
                for name, part in parts.items():
                    t0 = CLOCK()
                    part(v)
                    spent[name] += CLOCK() - t0
        best = {k: min(best[k], spent[k]) for k in parts}
    return {k: t * 1000.0 / len(cases) for k, t in best.items()}


def best_ms_per_item(items, func, repeats: int) -> float:
    """Best-of-``repeats`` CPU ms per item of ``func(item)`` over all ``items`` (see per_core_times)."""
    best = np.inf
    for _ in range(repeats):
        t0 = CLOCK()
        for item in items:
            func(item)
        best = min(best, CLOCK() - t0)
    return best * 1000 / len(items)


def bench_synth(n: int, size: int, jobs: int, seed: int, repeats: int) -> None:
    from vitfeat.synth import generate

    out = REPO / "artifacts" / "bench" / f"synth_{n}_{size}_{seed}"
    generate(out, n=n, seed=seed, size=size, jobs=jobs, progress=False)  # always: synth code may have changed
    manifest = load_manifest(out / "manifest.csv")
    t0 = time.perf_counter()
    result = extract(manifest, None, jobs=jobs, progress=False)  # no output, no cache: all computed
    wall = time.perf_counter() - t0
    print(f"== synth: {n} paired cases at {size} px, {len(DEFAULT_FAMILIES)} handcrafted families, "
          f"{result.frame.shape[1] - 4} features")
    print(f"extract --jobs {jobs}: {wall:.1f} s, {n / wall:.1f} cases/s ({result.n_failed} failed)")
    load_ms, feat_ms, fam_ms, pass_ratios = per_core_times(manifest, min(n, 40), repeats)
    print(f"one core (CPU time, best of {repeats} passes), per paired case: {load_ms:.1f} ms decode + masks, "
          f"{feat_ms:.1f} ms features, {load_ms + feat_ms:.1f} ms in all (target < 50 ms)")
    print("  per family (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in fam_ms.items()))
    print(f"  {'family':12s} {'ms/case':>8s} {'share':>6s}")
    for name, ms in fam_ms.items():
        print(f"  {name:12s} {ms:8.2f} {ms / feat_ms:6.0%}")
    print(f"  {'all':12s} {feat_ms:8.2f}   100%")
    shared = shared_intermediate_times(manifest, min(n, 40), repeats)
    print(f"  of which per-image intermediates shared by the families ({sum(shared.values()):.1f} ms, charged above to "
          "the first family that reads each): " + ", ".join(f"{k} {v:.1f}" for k, v in shared.items()))
    print(f"features / decode: {feat_ms / load_ms:.2f} (measured in this run; issue #17 target <= 3, issue #31's <= 2)")
    print(f"  per pass (both halves timed in the same pass): median {np.median(pass_ratios):.2f}, "
          f"range {min(pass_ratios):.2f}-{max(pass_ratios):.2f} over {len(pass_ratios)} passes")

    f = result.frame.merge(pd.read_csv(out / "truth.csv"), on="case_id")
    observed = f["area_ratio"] * f["wood_scale"] ** 2

    def rho(a, b):
        return spearmanr(a, b, nan_policy="omit")[0]

    print("== truth recovery (Spearman unless noted)")
    print("area ratio, registered vs truth:             "
          f"{rho(f['pair_wood_area_ratio'], f['area_ratio']):.3f} "
          f"(target 0.9; registration accepted for {f['pair_wood_registration_ok'].mean():.0%} of pairs)")
    print("area ratio, registration-free vs truth:      "
          f"{rho(f['pair_wood_area_ratio_unregistered'], f['area_ratio']):.3f}")
    print("area ratio, registration-free vs truth*zoom^2: "
          f"{rho(f['pair_wood_area_ratio_unregistered'], observed):.3f} "
          "(what the photos show)")
    print("border transition width vs blur_px:          "
          f"{rho(f['clinical_border_transition_width'], f['blur_px']):.3f} "
          f"(crossing {rho(f['clinical_border_crossing_width'], f['blur_px']):.3f}, "
          f"inner {rho(f['clinical_border_inner_transition_width'], f['blur_px']):.3f}; target 0.8)")
    print("Wood's transition width vs wood_blur_px:     "
          f"{rho(f['wood_border_transition_width'], f['wood_blur_px']):.3f}")
    for mod in ("clinical", "wood"):
        exact = (f[f"{mod}_satellites_count"] == f["n_satellites"]).mean()
        print(f"{mod} satellite count exact:                {exact:.1%} (target 90 %)")
    print("trichrome width vs trichrome_px:             "
          f"{rho(f['clinical_color_trichrome_width'], f['trichrome_px']):.3f}")
    print("Wood's uniformity (CV) vs patchiness:        "
          f"{rho(f['wood_fluorescence_uniformity_cv'], f['patchiness']):.3f}")


def bench_ph2(n: int, repeats: int) -> None:
    root = REPO.parent / "shared" / "data" / "ph2"
    if not root.is_dir():
        print(f"== PH2: {root} absent, skipped")
        return
    labels = pd.read_csv(root / "labels.csv", dtype=str).head(n)
    images = [(read_image(root / r.image), read_mask(root / r.mask)) for r in labels.itertuples()]
    cv2.setNumThreads(1)
    from vitfeat.featurize import CaseArrays

    families = [get_family(f) for f in DEFAULT_FAMILIES]
    for fam in families:  # warm-up: first calls import and initialise libraries
        fam(CaseArrays("warm-up", images[0][0], None, images[0][1], None))

    def run_ours(i):
        rgb, mask = images[i]
        case = CaseArrays(str(i), rgb, None, mask, None)
        row = {}
        for fam in families:
            row.update(fam(case))
        return row

    ours_ms = best_ms_per_item(range(len(images)), run_ours, repeats)
    ours = [run_ours(i) for i in range(len(images))]
    print(f"== PH2: {len(images)} dermoscopy images ({images[0][0].shape[1]}x{images[0][0].shape[0]} px), one core, "
          f"CPU time, best of {repeats} passes")
    print(f"vitfeat full single-image set: {ours_ms:.1f} ms/image ({len(ours[0])} columns, "
          f"{sum(not k.startswith(('wood_', 'pair_')) for k in ours[0])} clinical)")
    try:
        import SimpleITK as sitk
        from radiomics import featureextractor
    except ImportError:
        print("pyradiomics not installed: no comparison")
        return
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    full = featureextractor.RadiomicsFeatureExtractor(force2D=True)
    full.enableImageTypes(Original={}, Wavelet={})
    subset = featureextractor.RadiomicsFeatureExtractor(force2D=True)
    subset.disableAllFeatures()
    subset.enableFeatureClassByName("shape2D")
    subset.enableFeatureClassByName("firstorder")
    warm_grey = sitk.GetImageFromArray(cv2.cvtColor(images[0][0], cv2.COLOR_RGB2GRAY).astype(np.float32))
    full.execute(warm_grey, sitk.GetImageFromArray(images[0][1].astype(np.uint8)))  # warm-up, as for vitfeat
    inputs = [(sitk.GetImageFromArray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)),
               sitk.GetImageFromArray(mask.astype(np.uint8))) for rgb, mask in images]
    theirs_ms = best_ms_per_item(inputs, lambda pair: full.execute(*pair), repeats)
    theirs = []
    for grey, label in inputs:
        res = subset.execute(grey, label)
        theirs.append({k.removeprefix("original_"): float(v) for k, v in res.items() if k.startswith("original_")})
    print(f"pyradiomics original + wavelet: {theirs_ms:.1f} ms/image -> vitfeat is {theirs_ms / ours_ms:.1f}x faster "
          "(target 10x)")
    print(f"PH2 pyradiomics / vitfeat per image: {theirs_ms / ours_ms:.1f} "
          "(measured in this run; issue #17 target >= 20, issue #31's >= 40)")
    print("agreement on the features both define (relative difference |vitfeat - pyradiomics| / |pyradiomics|):")
    print(f"  {'pyradiomics':42s} {'vitfeat':42s} {'median':>9s} {'max':>9s}")
    for theirs_name, our_name in PYRADIOMICS_PAIRS.items():
        a = np.array([o[f"clinical_{our_name}"] for o in ours])
        b = np.array([t[theirs_name] for t in theirs])
        rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-12)
        flag = "" if rel.max() <= 0.01 else "  > 1 %"
        print(f"  {theirs_name:42s} clinical_{our_name:33s} {np.median(rel):9.2e} {rel.max():9.2e}{flag}")
    border_stability(images)


def border_stability(images) -> None:
    """How much the border features move under the chamfer distance (vs the exact Euclidean one)
    and, for scale, under re-encoding the photo as JPEG (quality 90)."""
    from vitfeat.featurize import views
    from vitfeat.featurize.families.border import border_features

    def table(kernel, recode=False):
        kept, views.DISTANCE_KERNEL = views.DISTANCE_KERNEL, kernel
        try:
            return pd.DataFrame([border_features(views.ImageView(
                cv2.imdecode(cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_UNCHANGED)
                if recode else rgb, mask)) for rgb, mask in images])
        finally:
            views.DISTANCE_KERNEL = kept

    exact, chamfer = table(cv2.DIST_MASK_PRECISE), table(cv2.DIST_MASK_5)
    recoded = table(cv2.DIST_MASK_PRECISE, recode=True)
    print("border features on PH2, relative change (median / 90th percentile):")
    print(f"  {'feature':24s} {'chamfer vs exact distance':>27s} {'JPEG q90 re-encode':>20s}")
    for col in exact:
        a = ((chamfer[col] - exact[col]).abs() / exact[col].abs().clip(lower=1e-9)).dropna()
        b = ((recoded[col] - exact[col]).abs() / exact[col].abs().clip(lower=1e-9)).dropna()
        print(f"  {col:24s} {a.median():13.3f} / {a.quantile(0.9):.3f}      {b.median():9.3f} / {b.quantile(0.9):.3f}")


def baseline_featurize(ref: str):
    """``vitfeat.featurize`` as at git commit ``ref``, imported as its own package (its own family
    registry), so that old and new run side by side in one process. Returns the package module."""
    import importlib
    import io
    import re
    import shutil
    import subprocess
    import sys
    import tarfile
    import tempfile

    from vitfeat.atomic import write_text

    sha = subprocess.run(["git", "rev-parse", ref], cwd=REPO, check=True, capture_output=True,
                         text=True).stdout.strip()
    name = f"vitfeat_featurize_{sha[:10]}"
    root = REPO / "artifacts" / "bench" / "baselines"
    pkg = root / name
    if not pkg.is_dir():
        blob = subprocess.run(["git", "archive", sha, "vitfeat/featurize"], cwd=REPO, check=True,
                              capture_output=True).stdout
        # Written beside it, then renamed: another process never imports a half-written copy.
        root.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            for member in tar.getmembers():
                if not member.isfile() or not member.name.endswith(".py"):
                    continue
                target = building / Path(member.name).relative_to("vitfeat/featurize")
                target.parent.mkdir(parents=True, exist_ok=True)
                text = tar.extractfile(member).read().decode()
                write_text(target, re.sub(r"\bvitfeat\.featurize\b", name, text))
        try:
            building.rename(pkg)
        except OSError:  # another process renamed its copy first: the same files
            shutil.rmtree(building, ignore_errors=True)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(name)


def side_by_side(ref: str, n: int, size: int, seed: int, n_ph2: int, repeats: int) -> None:
    """Old (``ref``) and current featurize timed and compared in one process (see the module docstring)."""
    import vitfeat.featurize as new_pkg
    from vitfeat.synth import generate

    old_pkg = baseline_featurize(ref)
    codes = {"old": old_pkg, "new": new_pkg}
    cv2.setNumThreads(1)
    fams = {k: [p.get_family(f) for f in p.default_families()] for k, p in codes.items()}
    loaders = {k: __import__(f"{p.__name__}.engine", fromlist=["load_case_arrays"]).load_case_arrays
               for k, p in codes.items()}
    out = REPO / "artifacts" / "bench" / f"synth_{n}_{size}_{seed}"
    generate(out, n=n, seed=seed, size=size, jobs=1, progress=False)
    cases = list(load_manifest(out / "manifest.csv").cases())[:n]

    def plan(case):
        return {"clinical": "given", **({"wood": "given"} if case.wood else {})}

    def features(key, arrays):
        row = {}
        for fam in fams[key]:
            row.update(fam(arrays))
        return row

    for key in codes:  # warm-up: imports, numba compilation or cache loading
        features(key, loaders[key](cases[0], plan(cases[0])))
    # As per_core_times: each case decoded (timed) and then its features (timed), case after case.
    decode = {k: np.inf for k in codes}
    best = {k: np.inf for k in codes}
    fam_best = {k: {f.name: np.inf for f in fams[k]} for k in codes}
    for r in range(repeats):
        for key in (list(codes) if r % 2 == 0 else list(codes)[::-1]):
            spent, load_t = dict.fromkeys(fam_best[key], 0.0), 0.0
            for case in cases:
                t0 = CLOCK()
                arrays = loaders[key](case, plan(case))
                load_t += CLOCK() - t0
                for fam in fams[key]:
                    t1 = CLOCK()
                    fam(arrays)
                    spent[fam.name] += CLOCK() - t1
            decode[key] = min(decode[key], load_t)
            best[key] = min(best[key], sum(spent.values()))
            fam_best[key] = {f: min(fam_best[key][f], spent[f]) for f in spent}
    k = 1000.0 / len(cases)
    print(f"== side by side: vitfeat.featurize at {ref} (old) vs this checkout (new), one process, one core, "
          f"CPU time, best of {repeats} passes, order alternating")
    print(f"synth: {len(cases)} paired cases at {size} px, per case (decode + masks: the same code for both):")
    floor = min(decode.values())  # the same decoding code: its best time over both codes' passes
    print(f"  decode + masks {floor * k:.2f} ms (best of the two codes' passes: {decode['old'] * k:.2f}, "
          f"{decode['new'] * k:.2f})")
    for key in codes:
        print(f"  {key}: features {best[key] * k:.2f} ms -> features / decode {best[key] / floor:.2f}")
    print(f"  new / old features: {best['new'] / best['old']:.3f}; per family (old -> new ms): " + ", ".join(
        f"{f} {fam_best['old'][f] * k:.2f} -> {fam_best['new'][f] * k:.2f}" for f in fam_best["new"]))
    diffs = {}

    def compare(a: dict, b: dict) -> None:
        for col, x in a.items():
            y = b[col]
            fam = col.split("_")[1] if col.split("_")[0] in ("clinical", "wood") else col.split("_")[0]
            if np.isnan(x) and np.isnan(y):
                rel = 0.0
            elif np.isnan(x) != np.isnan(y):
                rel = np.inf
            else:
                rel = abs(x - y) / max(abs(x), 1e-12) if x != y else 0.0
            if rel >= diffs.get(fam, (-1.0, ""))[0]:
                diffs[fam] = (rel, col) if rel > diffs.get(fam, (-1.0, ""))[0] else diffs[fam]

    for case in cases:
        compare(features("old", loaders["old"](case, plan(case))), features("new", loaders["new"](case, plan(case))))
    root = REPO.parent / "shared" / "data" / "ph2"
    if n_ph2 and root.is_dir():
        labels = pd.read_csv(root / "labels.csv", dtype=str).head(n_ph2)
        images = [(read_image(root / r.image), read_mask(root / r.mask)) for r in labels.itertuples()]
        ph2 = dict.fromkeys(codes, np.inf)
        ph2_fam = {k: {f.name: np.inf for f in fams[k]} for k in codes}
        for r in range(repeats):
            for key in (list(codes) if r % 2 == 0 else list(codes)[::-1]):
                spent = dict.fromkeys(ph2_fam[key], 0.0)
                for i, (rgb, mask) in enumerate(images):
                    case = codes[key].CaseArrays(str(i), rgb, None, mask, None)
                    for fam in fams[key]:
                        t1 = CLOCK()
                        fam(case)
                        spent[fam.name] += CLOCK() - t1
                ph2[key] = min(ph2[key], sum(spent.values()))
                ph2_fam[key] = {f: min(ph2_fam[key][f], spent[f]) for f in spent}
        for i, (rgb, mask) in enumerate(images):
            compare(features("old", old_pkg.CaseArrays(str(i), rgb, None, mask, None)),
                    features("new", new_pkg.CaseArrays(str(i), rgb, None, mask, None)))
        kp = 1000.0 / len(images)
        line = f"PH2: {len(images)} images: old {ph2['old'] * kp:.2f} ms, new {ph2['new'] * kp:.2f} ms per image " \
               f"(new / old {ph2['new'] / ph2['old']:.3f}); per family (old -> new ms): " + ", ".join(
                   f"{f} {ph2_fam['old'][f] * kp:.2f} -> {ph2_fam['new'][f] * kp:.2f}" for f in ph2_fam["new"]
                   if ph2_fam["old"][f] * kp > 0.05)
        try:
            import SimpleITK as sitk
            from radiomics import featureextractor
        except ImportError:
            print(line + "; pyradiomics not installed")
        else:
            logging.getLogger("radiomics").setLevel(logging.ERROR)
            full = featureextractor.RadiomicsFeatureExtractor(force2D=True)
            full.enableImageTypes(Original={}, Wavelet={})
            inputs = [(sitk.GetImageFromArray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)),
                       sitk.GetImageFromArray(mask.astype(np.uint8))) for rgb, mask in images]
            full.execute(*inputs[0])
            theirs = best_ms_per_item(inputs, lambda pair: full.execute(*pair), repeats)
            print(line)
            print(f"  pyradiomics original + wavelet {theirs:.1f} ms per image: pyradiomics / vitfeat "
                  f"old {theirs / (ph2['old'] * kp):.1f}x, new {theirs / (ph2['new'] * kp):.1f}x")
    print("largest relative difference of the values, new vs old (synth pairs and PH2 images), per family:")
    for fam, (rel, col) in sorted(diffs.items()):
        print(f"  {fam:12s} {rel:9.2e}  {col if rel > 0 else ''}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="synth cases (default 200)")
    ap.add_argument("--size", type=int, default=512, help="synth image size (default 512)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="extract workers (default 2)")
    ap.add_argument("--ph2", type=int, default=40, help="PH2 images to compare on (default 40; 0 = skip)")
    ap.add_argument("--repeats", type=int, default=3, help="timing passes; the best is reported (default 3)")
    ap.add_argument("--baseline", metavar="REF", help="git commit to compare with, side by side in one run "
                    "(only this comparison is printed)")
    args = ap.parse_args()
    if args.baseline:
        side_by_side(args.baseline, args.n, args.size, args.seed, args.ph2, args.repeats)
        return
    bench_synth(args.n, args.size, args.jobs, args.seed, args.repeats)
    if args.ph2:
        bench_ph2(args.ph2, args.repeats)


if __name__ == "__main__":
    main()
