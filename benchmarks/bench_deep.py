"""Throughput of the deep feature embedders: images/s per backbone and batch size.

Random weights (speed does not depend on them) and random 224 px crops; the first batch of each
setting is a warm-up and is not timed. On CUDA the embedder uses channels_last + float16 autocast.

    .venv/bin/python benchmarks/bench_deep.py                       # CPU (and CUDA if present)
    .venv/bin/python benchmarks/bench_deep.py --device cpu --batch-sizes 1 8 --n-images 16
    .venv/bin/python benchmarks/bench_deep.py --json artifacts/bench_deep.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
import warnings

import numpy as np

DEFAULT_BACKBONES = ["resnet50", "convnextv2_tiny", "vit_base_patch16_224", "samvit_base_patch16"]


def bench(backbone: str, device: str, batch_sizes, n_images: int, seed: int = 0) -> list[dict]:
    import torch

    from vitfeat.deep.embedders import Embedder, RandomWeightsWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        emb = Embedder(backbone, "random", device=device)
    rng = np.random.default_rng(seed)
    images = list(rng.integers(0, 256, size=(n_images, emb.img_size, emb.img_size, 3), dtype=np.uint8))
    rows = []
    for bs in batch_sizes:
        emb.batch_size = bs
        emb.embed(images[:bs])  # warm-up: allocator, cuDNN autotune, lazy init
        if emb.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        emb.embed(images)
        if emb.cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        rows.append({"backbone": backbone, "device": str(emb.device), "amp": emb.amp, "batch_size": bs,
                     "img_size": emb.img_size, "dim": emb.num_features, "n_images": n_images,
                     "seconds": round(elapsed, 3), "images_per_s": round(n_images / elapsed, 2)})
        print(f"{backbone:22s} {str(emb.device):6s} bs={bs:<4d} {n_images / elapsed:9.1f} img/s "
              f"({emb.img_size}px, dim {emb.num_features})", flush=True)
    del emb
    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    return rows


def embed_vs_bare(backbone: str, device: str = "auto", batch: int = 64, n_images: int = 512,
                  amp_dtype: str = "bfloat16") -> dict:
    """The deep family's embedding path (``Embedder.embed`` on uint8 photos: resize, normalise,
    transfer, channels_last, autocast) against a bare ``model(x)`` loop on ready device tensors,
    same model, batch and precision, one after the other in this process. The ratio is the figure."""
    import torch

    from vitfeat.deep.embedders import Embedder, RandomWeightsWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        emb = Embedder(backbone, "random", device=device, batch_size=batch, amp_dtype=amp_dtype)
    rng = np.random.default_rng(0)
    images = list(rng.integers(0, 256, size=(n_images, emb.img_size, emb.img_size, 3), dtype=np.uint8))
    sync = torch.cuda.synchronize if emb.cuda else (lambda: None)
    emb.embed(images[:batch])
    sync()
    start = time.perf_counter()
    emb.embed(images)
    sync()
    family = n_images / (time.perf_counter() - start)

    x = torch.randn(batch, 3, emb.img_size, emb.img_size, device=emb.device)
    if emb.cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cuda", dtype=getattr(torch, amp_dtype)) if emb.cuda else contextlib.nullcontext()
    steps = max(1, n_images // batch)
    with torch.inference_mode(), autocast:
        emb.model(x)
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            emb.model(x)
        sync()
    bare = steps * batch / (time.perf_counter() - start)
    return {"backbone": backbone, "device": str(emb.device), "img_size": emb.img_size, "batch": batch,
            "precision": amp_dtype if emb.cuda else "float32", "channels_last": emb.cuda,
            "family_images_per_s": family, "bare_images_per_s": bare, "ratio": family / bare}


def main(argv=None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", nargs="+", default=DEFAULT_BACKBONES)
    ap.add_argument("--device", choices=("auto", "cpu", "cuda", "both"), default="both",
                    help="both: CPU, then CUDA when present (default)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                    help="default: 1 8 32 on CPU, 1 32 128 on CUDA")
    ap.add_argument("--n-images", type=int, default=None, help="images timed per setting (default 32 CPU, 512 CUDA)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = {"both": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []),
               "auto": ["cuda" if torch.cuda.is_available() else "cpu"]}.get(args.device, [args.device])
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""), flush=True)
    rows = []
    for device in devices:
        sizes = args.batch_sizes or ([1, 8, 32] if device == "cpu" else [1, 32, 128])
        n = args.n_images or (32 if device == "cpu" else 512)
        for backbone in args.backbones:
            rows += bench(backbone, device, sizes, max(n, max(sizes)))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        tmp = args.json + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(rows, fh, indent=2)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
