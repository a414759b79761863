"""Synth speed (target: 200 cases at 512 px in under a minute on 2 cores) and a contact sheet.

    .venv/bin/python benchmarks/bench_synth.py [--n 200] [--size 512] [--jobs 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from vitfeat.synth import generate


def contact_sheet(out_dir: Path, path: Path, rows: int = 8, tile: int = 192) -> Path:
    """Clinical | Wood's | clinical mask | Wood's mask for the first `rows` cases, labelled in truth."""
    manifest = pd.read_csv(out_dir / "manifest.csv")
    lines = []
    for rec in manifest.head(rows).itertuples():
        tiles = [Image.open(out_dir / getattr(rec, c)).convert("RGB").resize((tile, tile))
                 for c in ("clinical", "wood", "clinical_mask", "wood_mask")]
        lines.append(np.concatenate([np.asarray(t) for t in tiles], 1))
    Image.fromarray(np.concatenate(lines, 0)).save(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sheet", default="artifacts/bench/synth_contact_sheet.png")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate(tmp, n=args.n, size=args.size, jobs=args.jobs, progress=False)
        dt = time.perf_counter() - t0
        truth = pd.read_csv(Path(tmp) / "truth.csv")
        Path(args.sheet).parent.mkdir(parents=True, exist_ok=True)
        sheet = contact_sheet(Path(tmp), Path(args.sheet))
    print(f"synth: {args.n} cases at {args.size} px with {args.jobs} jobs in {dt:.1f} s "
          f"({args.n / dt:.1f} cases/s; target < 60 s)")
    print(truth.groupby("label")[["area_ratio", "blur_px", "n_satellites", "wood_contrast", "patchiness"]]
          .mean().round(3).to_string())
    print(f"contact sheet: {sheet}")


if __name__ == "__main__":
    main()
