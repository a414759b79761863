"""Segmentation benchmark: UNet vs DeepLabV3 vs DeepLabV3+ vs UltraLight VM-UNet on real images.

Datasets (beside the repo, ../shared/data): PH2 dermoscopy (160 images, one patient each) and
vitiligo-seg (96 photos; the ``group`` column ties augmented copies of one photo together, used as
the patient so that copies never straddle train and test). One patient-grouped 70/15/15 split per
dataset, shared by every architecture; best epoch chosen on validation loss; one test evaluation.

On CPU each architecture gets the same wall-clock budget: a probe times one training step and the
number of epochs is what fits (at least 1). Prints pooled and per-image Dice/IoU, parameters,
GFLOPs (torch.utils.flop_counter, at the training size and at 256 px) and seconds per epoch.

    python benchmarks/bench_seg.py                       # ~10 min on 2 CPU cores
    python benchmarks/bench_seg.py --minutes 60 --imgsz 256 --device cuda   # a longer run
    python benchmarks/bench_seg.py --epochs 20           # equal epochs instead of equal time
    python benchmarks/bench_seg.py --recipe original --epochs 30 --imgsz 96   # the paper's protocol, small

``--recipe original`` follows the paper's protocol instead: UltraLight VM-UNet trained with its
published recipe (`vitfeat train seg --recipe original`) on the ISIC 2017 images (the first 85 % in
file order train, the rest validate), tested on every PH2 image as an external set, pooled-pixel
DSC at >= 0.5 beside the published 0.9265. 250 epochs at 256 px by default (a GPU); on CPU pass
fewer epochs and a smaller size.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vitfeat.deep.segmentation import data as segdata  # noqa: E402
from vitfeat.deep.segmentation.compare import compare_runs  # noqa: E402
from vitfeat.deep.segmentation.info import count_flops, count_parameters  # noqa: E402
from vitfeat.deep.segmentation.models import build_model  # noqa: E402
from vitfeat.deep.segmentation.train import SegConfig, make_loss, select_device, train_segmenter  # noqa: E402

DATA = REPO.parent / "shared" / "data"
ARCHS = ("unet", "deeplabv3", "deeplabv3plus", "ultralight")


def write_manifest(name: str, out: Path) -> Path | None:
    """A vitfeat manifest for one of the shared datasets (absolute paths)."""
    root = DATA / name
    if not (root / "labels.csv").is_file():
        return None
    labels = pd.read_csv(root / "labels.csv")
    frame = pd.DataFrame({
        "case_id": [Path(p).stem for p in labels["image"]],
        "patient_id": labels["group"] if "group" in labels else [Path(p).stem for p in labels["image"]],
        "clinical": [str(root / p) for p in labels["image"]],
        "clinical_mask": [str(root / p) for p in labels["mask"]],
    })
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}_manifest.csv"
    frame.to_csv(path, index=False)
    return path


def seconds_per_step(arch: str, encoder: str, imgsz: int, batch: int, device) -> float:
    """Time of one training step (forward + backward + update) on random data, after a warm-up."""
    model = build_model(arch, 1, encoder).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = make_loss("bce+dice")
    x = torch.randn(batch, 3, imgsz, imgsz, device=device)
    y = (torch.rand(batch, imgsz, imgsz, device=device) > 0.5).to(torch.uint8)
    times = []
    for _ in range(3):
        tick = time.perf_counter()
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - tick)
    return min(times[1:])


PUBLISHED_PH2_DSC = 0.9265  # UltraLight VM-UNet, trained on ISIC 2017, PH2 as external test set


def paper_protocol(args, device) -> int:
    """UltraLight's recipe on ISIC 2017 (train/val in file order), tested on all PH2 images."""
    args.out.mkdir(parents=True, exist_ok=True)
    parts = [write_manifest(name, args.out) for name in ("isic2017", "ph2")]
    if None in parts:
        print(f"skip: {DATA / 'isic2017'} or {DATA / 'ph2'} not found")
        return 0
    isic = pd.read_csv(parts[0]).sort_values("clinical")  # glob order of the original's folders
    ph2 = pd.read_csv(parts[1]).sort_values("clinical")
    manifest = args.out / "isic2017_then_ph2.csv"
    pd.concat([isic, ph2]).to_csv(manifest, index=False)
    n_val = max(1, round(len(isic) * 0.15))
    split = f"ordered:{len(isic) - n_val},{n_val},{len(ph2)}"
    epochs = args.epochs or 250
    imgsz = args.imgsz if args.imgsz != 96 or args.epochs else 256
    run = args.out / f"paper_ultralight_{imgsz}px_{epochs}ep"
    print(f"device {device}, {torch.get_num_threads()} threads: UltraLight, recipe original, {epochs} epochs at "
          f"{imgsz} px, batch {args.batch}, split {split} (ISIC 2017 train/val, PH2 test)", flush=True)
    tick = time.perf_counter()
    cfg = SegConfig(arch="ultralight", recipe="original", epochs=epochs, imgsz=imgsz, batch=args.batch,
                    split=split, device=str(device))
    meta = train_segmenter(manifest, run, cfg, resume=(run / "last.pt").is_file(), progress=False,
                           allow_outside_root=True)
    pooled = meta["test_metrics"]["pooled"]
    print(f"trained in {time.perf_counter() - tick:.0f} s ({meta['mean_epoch_seconds']:.1f} s/epoch), best epoch "
          f"{meta['best_epoch']}/{meta['epochs_done']}")
    print(f"PH2 ({meta['test_metrics']['n_images']} images) pooled: DSC {pooled['dice']:.4f}  IoU {pooled['iou']:.4f}  "
          f"Acc {pooled['accuracy']:.4f}  Sens {pooled['recall']:.4f}  Spec {pooled['specificity']:.4f}")
    print(f"published PH2 DSC {PUBLISHED_PH2_DSC} (1,250 ISIC 2017 training images, 250 epochs, 256 px, "
          "all 200 PH2 images)")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["ph2", "vitiligo-seg"])
    ap.add_argument("--archs", nargs="+", default=list(ARCHS))
    ap.add_argument("--imgsz", type=int, default=96)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--encoder", default="resnet18")
    ap.add_argument("--minutes", type=float, default=10.0, help="total training budget, split evenly")
    ap.add_argument("--max-epochs", type=int, default=40)
    ap.add_argument("--epochs", type=int, help="the same number of epochs for every run (no time budget)")
    ap.add_argument("--recipe", choices=["vitfeat", "original"], default="vitfeat",
                    help="original: UltraLight's recipe and protocol (ISIC 2017 -> PH2); see the docstring")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: on a shared 2-core machine 2 threads ran 10x slower)")
    ap.add_argument("--out", type=Path, default=REPO / "artifacts" / "bench_seg")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = select_device(args.device)
    torch.set_num_threads(args.threads)
    if args.recipe == "original":
        return paper_protocol(args, device)
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(d, a) for d in args.datasets for a in args.archs]
    budget = args.minutes * 60 / len(jobs)
    rows = []
    print(f"device {device}, {torch.get_num_threads()} threads, imgsz {args.imgsz}, batch {args.batch}, "
          f"encoder {args.encoder}, {budget:.0f} s of training per run", flush=True)
    for dataset in args.datasets:
        manifest = write_manifest(dataset, args.out)
        if manifest is None:
            print(f"skip {dataset}: {DATA / dataset} not found")
            continue
        items, _ = segdata.items_from_manifest(manifest, allow_outside_root=True)
        split = segdata.grouped_split(items, seed=0)
        split_path = segdata.write_split(split, args.out / f"{dataset}_split.csv")
        counts = split["split"].value_counts().to_dict()
        print(f"\n{dataset}: {len(items)} cases, {split['patient_id'].nunique()} patients, split {counts}", flush=True)
        n_train = counts.get("train", 0)
        run_dirs = []
        for arch in args.archs:
            if args.epochs:
                epochs = args.epochs
            else:
                step = seconds_per_step(arch, args.encoder, args.imgsz, args.batch, device)
                # validation and augmentation add about a third to the bare steps (measured, 1 thread)
                per_epoch = step * math.ceil(n_train / args.batch) * 1.3
                epochs = max(1, min(args.max_epochs, int(budget // per_epoch)))
            run = args.out / f"{dataset}_{arch}"
            if (run / "segmenter.json").is_file():
                print(f"{run} exists: reporting it without retraining", flush=True)
            else:
                cfg = SegConfig(arch=arch, epochs=epochs, imgsz=args.imgsz, batch=args.batch, encoder=args.encoder,
                                lr=1e-3, lrf=0.01, device=str(device))  # 1e-3 -> 1e-5, as UltraLight
                train_segmenter(manifest, run, cfg, split_from=split_path, resume=(run / "last.pt").is_file(),
                                progress=False, allow_outside_root=True)
            meta = json.loads((run / "segmenter.json").read_text())
            model = build_model(arch, 1, args.encoder)
            test = meta["test_metrics"]
            row = {
                "dataset": dataset, "arch": arch, "encoder": meta["encoder"] or "-", "epochs": meta["epochs_done"],
                "best_epoch": meta["best_epoch"], "epoch_s": round(meta["mean_epoch_seconds"], 1),
                "params": count_parameters(model),
                f"gflops@{args.imgsz}": round(count_flops(model, args.imgsz) / 1e9, 3),
                "gflops@256": round(count_flops(model, 256) / 1e9, 3),
                "dice_pooled": round(test["pooled"]["dice"], 4), "iou_pooled": round(test["pooled"]["iou"], 4),
                "dice_per_image": round(test["per_image"]["dice"], 4),
                "iou_per_image": round(test["per_image"]["iou"], 4),
                "acc_pooled": round(test["pooled"]["accuracy"], 4),
                "sens_pooled": round(test["pooled"]["recall"], 4),
                "spec_pooled": round(test["pooled"]["specificity"], 4), "n_test": test["n_images"],
            }
            rows.append(row)
            run_dirs.append(run)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        if len(run_dirs) > 1:
            compare_runs(run_dirs, args.out / f"{dataset}_compare", n_cases=6)
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "results.csv", index=False)
    print("\n" + table.to_string(index=False))
    print("\nreference: UltraLight VM-UNet published PH2 DSC 0.9265 (pooled pixels; trained on ISIC2017, "
          "250 epochs at 256 px, all 200 PH2 images as an external test set)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
