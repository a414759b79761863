"""VMTL vs the best feature pipeline on the same folds (synth), and VMTL training speed.

    .venv/bin/python benchmarks/bench_vmtl.py                       # 300 synth cases, CPU-sized model
    .venv/bin/python benchmarks/bench_vmtl.py --backbone convnextv2_tiny --imgsz 224 --batch 32 \\
        --epochs 30 --weights hub                                   # the real thing, on a GPU
    .venv/bin/python benchmarks/bench_vmtl.py --throughput-only     # images/s and epoch time only

Steps (each reused when its output exists in --out, so an interrupted run resumes):
1. synth N paired cases; 2. `extract` (handcrafted families); 3. `fit` with --pipelines, which
writes the fold plan; 4. `train vmtl` on that plan (--folds-from); 5. both scored by fit's
score_oof (balanced accuracy, AUROC with patient-bootstrap 95 % CIs) and a fit run with
--include that puts VMTL in the leaderboard and report; 6. training throughput (images/s, epoch
time) of the full-size model: on CUDA at 224 px, batch 32, bf16 autocast; on CPU at --cpu-imgsz.

The best feature pipeline is the one fit selected; its score comes from the same OOF predictions it
was selected on (slightly optimistic), while VMTL is a single pre-declared configuration.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def _ci(stats: dict) -> str:
    return f"{stats['value']:.3f} [{stats['ci_low']:.3f}, {stats['ci_high']:.3f}]"


def throughput(backbone: str, imgsz: int, batch: int, device: torch.device, steps: int = 10) -> float:
    """Training images/s of the full VMTL model (all tasks) on random paired tensors."""
    from vitfeat.deep.vmtl.config import VMTLConfig
    from vitfeat.deep.vmtl.losses import UncertaintyWeighting
    from vitfeat.deep.vmtl.model import build_model
    from vitfeat.deep.vmtl.train import make_optimizer, make_scheduler, train_epoch

    cfg = VMTLConfig(backbone=backbone, weights="random", imgsz=imgsz, batch=batch, device=str(device))
    model = build_model(cfg, 2).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    weighting = UncertaintyWeighting(cfg.tasks, cfg.importance, cfg.log_var_init).to(device)
    n = batch * steps
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(n, 1, imgsz, imgsz)
    masks[:, :, imgsz // 4: imgsz // 2, imgsz // 4: imgsz // 2] = 1
    box = torch.tensor([[0.375, 0.375, 0.25, 0.25]]).repeat(n, 1)
    yes = torch.ones(n, dtype=torch.bool)
    items = [{"case_id": [f"c{i}" for i in range(k, k + batch)],
              "clinical": torch.randn(batch, 3, imgsz, imgsz, generator=g),
              "wood": torch.randn(batch, 3, imgsz, imgsz, generator=g), "has_wood": yes[:batch],
              "clinical_mask": masks[:batch], "wood_mask": masks[:batch], "has_clinical_mask": yes[:batch],
              "has_wood_mask": yes[:batch], "clinical_box": box[:batch], "wood_box": box[:batch],
              "has_clinical_box": yes[:batch], "has_wood_box": yes[:batch], "label": torch.arange(batch) % 2}
             for k in range(0, n, batch)]
    opt = make_optimizer(model, weighting, cfg)
    sched = make_scheduler(opt, cfg, steps)
    train_epoch(model, weighting, items[:2], opt, sched, cfg, device, 0)  # warm-up (cudnn autotune, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    train_epoch(model, weighting, items, opt, sched, cfg, device, 0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def epoch_benchmark(manifest, variant: str, imgsz: int = 224, batch: int = 32, device: str = "auto",
                    backbone: str | None = None, weights: str = "random", hidden_dim: int | None = None) -> dict:
    """One training epoch of ``variant`` over every pair of ``manifest`` (all tasks of the variant;
    the original in its stage 0): seconds, pairs/s and peak GPU memory. The first few batches are
    a warm-up epoch on 2 batches (cuDNN autotune, allocator), not timed."""
    from vitfeat.dataset import load_manifest
    from vitfeat.deep.runtime import select_device
    from vitfeat.deep.vmtl.config import preset
    from vitfeat.deep.vmtl.data import PairedDataset, load_cases
    from vitfeat.deep.vmtl.model import normalisation
    from vitfeat.deep.vmtl.train import make_loader, make_optimizer, make_scheduler, train_epoch

    dev = select_device(device, mps=False)
    cfg = preset(variant, backbone=backbone, weights=weights, imgsz=imgsz, batch=batch, device=str(dev),
                 hidden_dim=hidden_dim)
    cases, _ = load_cases(load_manifest(manifest).cases(), imgsz, cfg.target, progress=False)
    classes = sorted({c.label for c in cases})
    mean, std = normalisation(cfg.backbone)
    data = PairedDataset(cases, classes, imgsz, mean, std, train=cfg.augment)
    loader = make_loader(data, cfg, shuffle=True, seed=0)
    torch.manual_seed(0)
    model = build_for_bench(cfg, len(classes), dev)
    if variant == "original":
        from vitfeat.deep.vmtl.curriculum import STAGE_TASKS, stage_optimizer, train_stage_epoch
        from vitfeat.deep.vmtl.losses import UncertaintyWeighting
        from vitfeat.deep.vmtl.original import SummedContrastive

        weighting = UncertaintyWeighting(STAGE_TASKS[0], cfg.importance, cfg.log_var_init).to(dev)
        margins = SummedContrastive(cfg.margins).to(dev)
        model.set_stage_trainable(STAGE_TASKS[0])
        opt = stage_optimizer(model, weighting, margins, cfg, 0)

        def run(batches):
            return train_stage_epoch(model, weighting, margins, batches, opt, cfg, dev, 0, 0)
    else:
        from vitfeat.deep.vmtl.losses import UncertaintyWeighting

        weighting = UncertaintyWeighting(cfg.tasks, cfg.importance, cfg.log_var_init).to(dev)
        opt = make_optimizer(model, weighting, cfg)
        sched = make_scheduler(opt, cfg, len(loader))

        def run(batches):
            return train_epoch(model, weighting, batches, opt, sched, cfg, dev, 0)

    run([b for _, b in zip(range(2), loader)])  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run(loader)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"variant": variant, "backbone": cfg.backbone, "imgsz": imgsz, "batch": batch, "pairs": len(data),
            "device": str(dev), "epoch_s": seconds, "pairs_per_s": len(data) / seconds,
            "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None,
            "parameters": sum(p.numel() for p in model.parameters())}


def build_for_bench(cfg, n_classes: int, device):
    from vitfeat.deep.vmtl.model import build_model

    model = build_model(cfg, n_classes).to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="artifacts/bench_vmtl")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--size", type=int, default=256, help="synth image size")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--pipelines", default="logreg,rf,lgbm,svm")
    ap.add_argument("--backbone", default="convnextv2_atto")
    ap.add_argument("--weights", default="random")
    ap.add_argument("--imgsz", type=int, default=96)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--focal-gamma", type=float, default=None, help="focal loss gamma (default: VMTLConfig's)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cpu-imgsz", type=int, default=96, help="image size for the CPU throughput figure")
    ap.add_argument("--throughput-only", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from vitfeat.deep.runtime import select_device

    device = select_device(args.device, mps=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"device": torch.cuda.get_device_name(0) if device.type == "cuda"
              else f"cpu x{torch.get_num_threads()} threads"}

    if not args.throughput_only:
        from vitfeat.deep.vmtl import VMTLConfig, train_vmtl
        from vitfeat.featurize import extract
        from vitfeat.evaluation.metrics import score_oof
        from vitfeat.pipelines.select import FitConfig, fit_run
        from vitfeat.synth import generate

        manifest = out / "synth" / "manifest.csv"
        if not manifest.exists():
            generate(out / "synth", n=args.n, seed=0, size=args.size, jobs=args.jobs)
        features = out / "features.parquet"
        if not features.exists():
            t = time.perf_counter()
            extract(manifest, features, jobs=args.jobs)
            print(f"extract: {time.perf_counter() - t:.0f} s")
        fit = out / "fit"
        if not (fit / "run.json").exists():
            fit_run(features, fit, FitConfig(pipelines=args.pipelines.split(","), folds=args.folds, jobs=args.jobs))
        cfg = VMTLConfig(backbone=args.backbone, weights=args.weights, imgsz=args.imgsz, batch=args.batch,
                         epochs=args.epochs, patience=args.patience, lr=args.lr, device=args.device,
                         threads=args.threads, warmup_epochs=1)
        suffix = ""
        if args.focal_gamma is not None:
            cfg.focal_gamma = args.focal_gamma
            suffix = f"_g{args.focal_gamma:g}"
        vmtl = out / f"vmtl_{args.backbone}_{args.imgsz}{suffix}"
        t = time.perf_counter()
        train_vmtl(manifest, vmtl, fit / "folds.csv", cfg, resume=vmtl.exists())
        wall = time.perf_counter() - t
        epochs = [h for f in sorted(vmtl.glob("r*_f*")) for h in json.loads((f / "history.json").read_text())]

        oof = pd.concat([pd.read_csv(fit / "oof_predictions.csv"), pd.read_csv(vmtl / "oof_predictions.csv")])
        best = json.loads((fit / "run.json").read_text())["targets"]["label"]["pipeline"]
        classes = sorted(oof["y_true"].astype(str).unique())
        rows = {}
        for name in (best, cfg.pipeline_name):
            s = score_oof(oof[oof["pipeline"] == name], classes, n_boot=1000)
            rows[name] = {"balanced_accuracy": s["balanced_accuracy"], "auroc": s["auroc"]}
        both = fit_run(features, out / "fit_with_vmtl", FitConfig(pipelines=[best], folds_from=str(fit / "folds.csv"),
                                                                   include=[str(vmtl)], jobs=args.jobs), progress=False)
        print(f"\n{args.n} synth cases, {args.folds} patient-grouped folds (the same plan for both)")
        print(f"{'pipeline':<34} {'balanced accuracy [95% CI]':<28} AUROC [95% CI]")
        for name, r in rows.items():
            label = f"{name} (best features)" if name == best else name
            print(f"{label:<34} {_ci(r['balanced_accuracy']):<28} {_ci(r['auroc'])}")
        secs = [h["epoch_seconds"] for h in epochs]
        print(f"VMTL {cfg.pipeline_name} (focal gamma {cfg.focal_gamma:g}) @ {args.imgsz}px on {report['device']}: "
              f"{len(epochs)} epochs over "
              f"{args.folds} folds, median epoch {np.median(secs):.1f} s "
              f"(~{int(np.median([h['n_train'] for h in epochs]))} training images + validation), "
              f"training wall {wall / 60:.1f} min")
        print(f"report with VMTL in the leaderboard: {both / 'report.html'}")
        report.update(scores={k: {m: v for m, v in r.items()} for k, r in rows.items()},
                      epoch_seconds_median=float(np.median(secs)), n_epochs=len(epochs), train_wall_s=wall)

    if args.skip_throughput:
        (out / f"bench_vmtl_{device.type}{'_' + vmtl.name if not args.throughput_only else ''}.json").write_text(
            json.dumps(report, indent=1, default=float))
        return
    size = 224 if device.type == "cuda" else args.cpu_imgsz
    batch = 32 if device.type == "cuda" else 8
    full = "convnextv2_tiny"
    ips = throughput(full, size, batch, device)
    n_train = int(args.n * (1 - 1 / args.folds) * 0.8)
    print(f"throughput, full VMTL ({full}, all heads) training @ {size}px batch {batch}"
          f"{' bf16' if device.type == 'cuda' else ' fp32'} on {report['device']}: {ips:.1f} images/s "
          f"(pairs count as one image); epoch of {n_train} training pairs ~{n_train / ips:.1f} s")
    report.update(throughput={"backbone": full, "imgsz": size, "batch": batch, "images_per_s": ips,
                              "epoch_s_estimate": n_train / ips})
    (out / f"bench_vmtl_{device.type}.json").write_text(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
