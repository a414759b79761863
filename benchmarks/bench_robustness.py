"""Robustness study speed: time per case x perturbation, cold and from the cache.

Goal (issue #29): 100 cases x 10 perturbations in under 10 minutes on 2 cores, with the cache.

    .venv/bin/python benchmarks/bench_robustness.py            # 100 synth cases at 512 px, every perturbation
    .venv/bin/python benchmarks/bench_robustness.py --quick    # 6 cases at 128 px, 3 perturbations (seconds)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from vitfeat.pipelines.perturb import DEFAULT_PERTURBATIONS
from vitfeat.pipelines.robustness import run_robustness
from vitfeat.synth import generate


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="6 cases at 128 px, 3 perturbations")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--perturbations", default=",".join(DEFAULT_PERTURBATIONS))
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.size, args.perturbations = 6, 128, "rotation,noise,contour"
    names = args.perturbations.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = generate(Path(tmp) / "synth", n=args.n, size=args.size, seed=0, jobs=args.jobs, progress=False)
        timings = []
        for label in ("cold", "cached"):
            t0 = time.perf_counter()
            result = run_robustness(manifest, Path(tmp) / "rob", perturbations=names, jobs=args.jobs, progress=False)
            timings.append((label, time.perf_counter() - t0))
    versions = args.n * (len(names) + 1)  # + the unperturbed version
    print(f"robustness: {args.n} cases at {args.size} px x {len(names)} perturbations (+ none), {args.jobs} jobs, "
          f"{len(result.icc)} features")
    for label, dt in timings:
        print(f"  {label:>6}: {dt:7.1f} s total, {1000 * dt / versions:7.1f} ms per case x perturbation")
    goal = timings[0][1] * 100 * 11 / versions
    note = " (worker start-up dominates in --quick: an overestimate)" if args.quick else ""
    print(f"  cold time scaled to 100 cases x 10 perturbations: {goal / 60:.1f} min (goal < 10 min){note}")


if __name__ == "__main__":
    main()
