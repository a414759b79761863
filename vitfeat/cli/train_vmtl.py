"""`vitfeat train vmtl`: train the VMTL multi-task model on a fold plan."""

from __future__ import annotations

from vitfeat.cli._common import add_command

DESCRIPTION = """\
Train the VMTL multi-task model (paired clinical + Wood's photos, shared timm encoder, clinical<->
Wood's cross-attention; heads for stage, lesion mask, lesion box and masked-patch reconstruction)
on the SAME folds as the feature pipelines: one model per outer fold of --folds-from, early
stopping on an inner patient-grouped validation split of the training part (never the test fold),
out-of-fold predictions in fit's format. Cases without a Wood's photo are handled.

Variants (`vitfeat vmtl info --variant NAME` lists parameters and FLOPs):
  original  the published VMTL exactly (45,004,053 parameters): one cross-attention module, fused
            6x6 map, its losses, the 6-stage curriculum (--stage-epochs), P*S*R selection on the
            inner validation split
  vmtl      vitfeat's redesign, all tasks jointly (default backbone convnextv2_tiny)
  vmsl      the redesign on lesion crops (--roi), stage + contrastive terms only
  baseline  a fine-tuned single backbone (default resnet50; also vit_base_patch16_224,
            convnext_tiny, any timm model): both photos' pooled features, one linear head per
            --target (several --target: seed 002's multi-task classifier, scored per target)

Writes DIR/oof_predictions.csv, folds.csv, metrics.json (metrics with CIs), leaderboard.csv,
config.yaml, run.json (kind "vmtl") and r<repeat>_f<fold>/best.pt. Interrupted? Re-run with
--resume: finished folds are kept and the interrupted one continues from its last epoch.

Examples:
  vitfeat fit features.parquet -o runs/fit                       # writes runs/fit/folds.csv
  vitfeat train vmtl data/manifest.csv -o runs/vmtl --folds-from runs/fit/folds.csv
  vitfeat train vmtl data/manifest.csv -o runs/vmtl --folds-from runs/fit/folds.csv --resume
  vitfeat fit features.parquet -o runs/fit2 --folds-from runs/fit/folds.csv --include runs/vmtl
  vitfeat predict runs/vmtl new_cases.csv -o predictions.csv      # probability, mask, box
  vitfeat extract data/manifest.csv -o f.parquet --families deep:vmtl@runs/vmtl
  vitfeat train vmtl m.csv -o runs/base --folds-from runs/fit/folds.csv --variant baseline --backbone resnet50
  vitfeat train vmtl m.csv -o runs/orig --folds-from runs/fit/folds.csv --variant original
  vitfeat train vmtl m.csv -o runs/grades --folds-from runs/fit/folds.csv --variant baseline \\
      --target grade_a --target grade_b --oversample
  vitfeat train vmtl m.csv -o runs/vmsl --folds-from runs/fit/folds.csv --variant vmsl \\
      --roi clinical=model:runs/yolo/best.pt,wood=masks

Weights: --weights hub (timm pretrained; needs the hub cache when offline), a local
.pth/.safetensors file, or random (for tests only: random features mean little).
"""


def register(kinds) -> None:
    """Add the command to ``vitfeat``'s parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subcommands of ``vitfeat`` (or of its parent command).
    """
    p = add_command(kinds, "vmtl", "train the VMTL multi-task model on a fold plan", DESCRIPTION)
    p.add_argument("manifest", help="manifest CSV/Parquet with clinical (and wood, masks) and the target")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="run directory to write")
    p.add_argument("--folds-from", required=True, metavar="FOLDS_CSV", help="fold plan (folds.csv of a fit run)")
    from vitfeat.deep.vmtl.config import VARIANTS

    p.add_argument("--variant", choices=VARIANTS.names(), default="vmtl")
    p.add_argument("--backbone", help="timm model name (default convnextv2_tiny; resnet50 for baseline)")
    p.add_argument("--weights", help="hub | random | PATH to .pth/.safetensors (default hub)")
    p.add_argument("--target", action="append", help="target column (default label); repeat it for several "
                                                      "targets, one head each (baseline only)")
    p.add_argument("--positive", metavar="CLASS", help="the positive (non-stable) class of the first target, when "
                                                       "its name is not a known stage name (default: minority class)")
    p.add_argument("--oversample", action="store_true", help="oversample the smaller classes of the first target, "
                                                             "inside the training part of each fold only")
    p.add_argument("--stage-epochs", help="original: epochs of the six curriculum stages, comma separated "
                                          "(default 80,30,30,30,100,120)")
    p.add_argument("--epochs", type=int, help="maximum epochs per fold (default 30)")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (default 10)")
    p.add_argument("--imgsz", type=int, help="input size in pixels (default 224)")
    p.add_argument("--batch", type=int, help="batch size (default 8)")
    p.add_argument("--lr", type=float, help="backbone learning rate; new layers use 10x (default 1e-4)")
    p.add_argument("--tasks", help="comma list of cls,seg,box,recon,con (default: all for vmtl)")
    p.add_argument("--roi", help="VMSL crops per modality, e.g. clinical=model:yolo.pt,wood=masks "
                                 "(sources: masks, whole, model:PATH)")
    p.add_argument("--focal-gamma", type=float, help="focal-loss gamma of the stage loss (default 3, as the original "
                                                     "VMTL; 0 = label-smoothed cross-entropy)")
    p.add_argument("--no-augment", action="store_true", help="switch training augmentation off")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--device", help="auto | cpu | cuda (default auto)")
    p.add_argument("--workers", type=int, help="data-loader workers (default 0)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice; 1 is often "
                                               "fastest for small models on a busy machine)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in DIR (its saved config is used)")
    p.set_defaults(func=run, output_check=[("out", "dir")])


def _parse_roi(text: str | None):
    if not text:
        return None
    roi = {}
    for part in text.split(","):
        mod, sep, source = part.partition("=")
        if not sep:
            from vitfeat.cli._common import CLIError

            raise CLIError(f"--roi: expected MODALITY=SOURCE, got '{part}'")
        roi[mod.strip()] = source.strip()
    return roi


RUNTIME = ("device", "num_workers", "threads")  # may change when a run is resumed


def run(args) -> int:
    """Run ``vitfeat train vmtl`` with the parsed arguments (a thin shell over the library).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        Exit status.
    """
    import dataclasses
    from pathlib import Path

    import yaml

    from vitfeat.cli._common import CLIError
    from vitfeat.dataset import ManifestError
    from vitfeat.deep.embedders import WeightsUnavailableError
    from vitfeat.deep.vmtl import VMTLConfig, preset, train_vmtl

    targets = args.target or []
    given = dict(backbone=args.backbone, weights=args.weights, target=targets[0] if len(targets) == 1 else None,
                 targets=tuple(targets) if len(targets) > 1 else None, oversample=True if args.oversample else None,
                 stage_epochs=tuple(int(v) for v in args.stage_epochs.split(",")) if args.stage_epochs else None,
                 positive_class=args.positive, epochs=args.epochs,
                 patience=args.patience, imgsz=args.imgsz, batch=args.batch, lr=args.lr,
                 tasks=tuple(t.strip() for t in args.tasks.split(",")) if args.tasks else None,
                 roi=_parse_roi(args.roi), focal_gamma=args.focal_gamma, augment=False if args.no_augment else None,
                 seed=args.seed,
                 device=args.device, num_workers=args.workers, threads=args.threads)
    given = {k: v for k, v in given.items() if v is not None}
    saved = Path(args.out) / "config.yaml"
    try:
        if args.resume and saved.is_file():
            cfg = VMTLConfig.from_dict(yaml.safe_load(saved.read_text()))
            differ = [k for k, v in given.items() if k not in RUNTIME and getattr(cfg, k) != v]
            if differ or args.variant != cfg.variant and args.variant != "vmtl":
                raise CLIError("--resume continues the run with its saved configuration (config.yaml); "
                               f"these options differ from it: {', '.join(differ) or 'variant'}. "
                               "Use a new run directory to train with other settings.")
            cfg = dataclasses.replace(cfg, **{k: v for k, v in given.items() if k in RUNTIME})
        else:
            cfg = preset(args.variant, **given)
        out = train_vmtl(args.manifest, args.out, args.folds_from, cfg, resume=args.resume)
    except (ValueError, FileNotFoundError, FileExistsError, ManifestError, WeightsUnavailableError) as exc:
        raise CLIError(str(exc)) from None
    import json

    doc = json.loads((out / "metrics.json").read_text())
    for target, block in (doc.get("targets") or {cfg.target: doc}).items():
        metrics = block["metrics"]
        line = ", ".join(f"{k} {metrics[k]['value']:.3f} [{metrics[k]['ci_low']:.3f}, {metrics[k]['ci_high']:.3f}]"
                         for k in ("balanced_accuracy", "auroc") if k in metrics)
        original = (block.get("original_metrics") or {}).get("pooled")
        if original:
            line += (f"; original's set: P {original['precision']:.3f} S {original['specificity']:.3f} "
                     f"R {original['recall']:.3f} P*S*R {original['psr']:.3f} (published 0.910 / 0.934 / 0.909 "
                     "on its own validation split, see metrics.json)")
        print(f"{cfg.pipeline_name} [{target}]: {line}")
    print(f"run written to {out} (include it with `vitfeat fit ... --include {out}`)")
    return 0
