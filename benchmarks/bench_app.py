"""Time the app's answer for one lesion pair at 512 px on one CPU core (handcrafted-feature run).

Target (issue #16): under 1 s after start-up. The run is fitted here on synthetic pairs with the
default handcrafted families; the timed call is :func:`vitfeat.app.predict_pair`, the function
behind the app's Stage tab and its /predict endpoint (with and without the overlay/feature details).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_app.py [--n 24] [--repeats 5] [--vmtl]

With ``--vmtl`` it also times a VMTL run (target < 5 s at 224 px): the default backbone
(convnextv2_tiny) with random weights — same architecture and cost as the pretrained one, no
download — trained for one epoch on the same folds, answering one pair at 224 px.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="training pairs (default 24)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vmtl", action="store_true", help="also time a VMTL run at 224 px")
    args = parser.parse_args()

    import cv2
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from vitfeat.app import RunInfo, predict_pair
    from vitfeat.featurize import extract
    from vitfeat.pipelines.select import FitConfig, fit_run
    from vitfeat.synth import generate

    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        root = Path(tmp)
        manifest = generate(root / "data", n=args.n, seed=1, size=512, jobs=1, progress=False)
        extract(manifest, root / "features.parquet", progress=False)
        run_dir = fit_run(root / "features.parquet", root / "run",
                          FitConfig(pipelines=["logreg", "rf"], folds=3, n_boot=50, nested=False), progress=False)
        run = RunInfo(run_dir)
        case = pd.read_csv(manifest).iloc[0]
        clinical, wood = manifest.parent / case["clinical"], manifest.parent / case["wood"]
        predict_pair(run, clinical, wood)  # start-up: imports, model and training table loaded once
        for details in (False, True):
            median, best = _time_answers(run, clinical, wood, details, args.repeats)
            print(f"one pair at 512 px, 1 core, {'stage + overlays + top-5 features' if details else 'stage only'}: "
                  f"median {median:.3f} s, best {best:.3f} s over {args.repeats} (target < 1 s)")
        if args.vmtl:
            time_vmtl(root, manifest, run_dir / "folds.csv", clinical, wood, args.repeats)


def time_vmtl(root, manifest, folds, clinical, wood, repeats: int) -> None:
    """Train a one-epoch VMTL run (default backbone, random weights, 224 px) and time one answer."""
    import torch

    from vitfeat.app import RunInfo, predict_pair
    from vitfeat.deep.vmtl.config import VMTLConfig
    from vitfeat.deep.vmtl.train import train_vmtl

    torch.set_num_threads(1)
    cfg = VMTLConfig(weights="random", imgsz=224, epochs=1, warmup_epochs=1, batch=8, device="cpu", threads=1)
    run = RunInfo(train_vmtl(manifest, root / "vmtl", folds, cfg, progress=False))
    predict_pair(run, clinical, wood)  # start-up: the fold models loaded once
    for details in (False, True):
        median, best = _time_answers(run, clinical, wood, details, repeats)
        print(f"VMTL ({cfg.backbone}, {len(run.meta['folds'])} fold models) one pair at 224 px, 1 core, "
              f"{'with details' if details else 'stage only'}: median {median:.3f} s, "
              f"best {best:.3f} s over {repeats} (target < 5 s)")


def _time_answers(run, clinical, wood, details: bool, repeats: int) -> tuple[float, float]:
    """Median and best seconds of ``repeats`` app answers for one pair (after start-up)."""
    from vitfeat.app import predict_pair

    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        predict_pair(run, clinical, wood, details=details)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2], min(times)


if __name__ == "__main__":
    main()
