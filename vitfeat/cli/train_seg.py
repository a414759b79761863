"""`vitfeat train seg`: train a lesion segmenter (UNet, DeepLabV3(+), UltraLight VM-UNet)."""

from __future__ import annotations

from vitfeat.cli._common import add_command

DESCRIPTION = """\
Train a lesion segmenter on the images and masks of a manifest (rows lacking the modality's image or
mask are skipped and listed in DIR/failures.csv). Patients are split whole into train/val/test
(70/15/15, saved as DIR/split.csv); the epoch with the lowest validation loss is kept (DIR/best.pt)
and scored once on the test split (DIR/segmenter.json, DIR/test_metrics.json: Dice, IoU, accuracy,
precision, recall, specificity, F1, pooled over pixels and as per-image means). AdamW; the learning
rate follows a cosine from LR to LR*LRF, or is halved on validation plateaus. Every epoch is logged
(DIR/log.csv, DIR/log.json) and checkpointed (DIR/last.pt): --resume continues an interrupted run.

Recipes: --recipe vitfeat (default; described above) or --recipe original: UltraLight VM-UNet's
published recipe point by point (BCE + per-image Dice with smooth 1; AdamW 1e-3, weight decay 1e-2;
CosineAnnealingLR(T_max 50, eta_min 1e-5) stepped per epoch, periodic over the run; 250 epochs,
batch 8, seed 42; validation and test at batch 1; the epoch of minimum validation loss; its
augmentation; bilinear resizing with soft masks; split-level z-score then per-image [0, 255]).
Under it only --epochs, --imgsz, --batch, --seed, --split and --device may be changed.
--split ordered:1250,150,600 takes the manifest's usable rows in order (the paper's ISIC 2017 folders).
See docs/segmentation.md for the table original / vitfeat / why.

--recipe vitiligo: for small vitiligo sets. Its default (--arch pixel-gbm, the best measured under
patient-grouped CV) is a LightGBM pixel classifier on colour-contrast features (CIELAB against the
photo's own skin, local texture, superpixels): trains in about a minute on 2 CPU cores, early
stopping and the mask threshold on the validation patients; --epochs caps its boosting rounds,
--imgsz is its working size (longest side, default 160). With a network (--arch ultralight / unet):
pretrains on the masks of --pretrain (manifests, or dataset folders with labels.csv such as
shared/data/ph2 shared/data/isic2017) for --pretrain-epochs into DIR/pretrain, then fine-tunes on
MANIFEST with strong augmentation (flips, rotations, scale, elastic, colour and hue jitter), Dice +
BCE, early stopping on the patient-grouped validation split (8 epochs without improvement) and
test-time augmentation (flips averaged; also as a mask source).

The finished DIR is a mask source:  vitfeat extract MANIFEST --masks model:DIR

Architectures: unet, deeplabv3, deeplabv3plus (segmentation-models-pytorch, any smp/timm encoder,
resnet34 default) and ultralight (UltraLight VM-UNet, 49,457 parameters, pure-PyTorch Mamba).

Examples:
  vitfeat train seg data/synth/manifest.csv -o runs/seg_unet --arch unet --epochs 30 --imgsz 256
  vitfeat train seg m.csv -o runs/seg_ul --arch ultralight --epochs 250 --lr 1e-3 --lrf 0.01
  vitfeat train seg m.csv -o runs/seg_dl --arch deeplabv3 --split-from runs/seg_unet/split.csv
  vitfeat train seg m.csv -o runs/seg_ul --arch ultralight --epochs 300 --resume   # continue, extend
  vitfeat train seg isic.csv -o runs/ul_paper --arch ultralight --recipe original --split ordered:1250,150,600
  vitfeat train seg m.csv -o runs/seg_mc --masks multiclass --loss ce+dice   # grey value -> class
  vitfeat train seg m.csv -o runs/seg_w --modality wood --encoder-weights weights/resnet34.pth
  vitfeat train seg vit.csv -o runs/vit --recipe vitiligo        # pixel-gbm, about a minute on a CPU
  vitfeat train seg vit.csv -o runs/vit --recipe vitiligo --arch ultralight --imgsz 128 --pretrain ph2 isic2017
  vitfeat train seg vit.csv -o runs/vitu --recipe vitiligo --arch unet --encoder tu-resnet18 \
      --encoder-weights resnet18_imagenet.pth --pretrain ph2 isic2017 --device cuda
"""


def register(kinds) -> None:
    """Add ``vitfeat train seg`` to ``vitfeat train``'s parser.

    Parameters
    ----------
    kinds : argparse._SubParsersAction
        The subcommands of ``vitfeat train``.
    """
    p = add_command(kinds, "seg", "train a lesion segmenter (UNet, DeepLabV3, UltraLight VM-UNet)", DESCRIPTION)
    p.add_argument("manifest", help="manifest CSV/Parquet with image and mask columns")
    p.add_argument("-o", "--out", required=True, help="output directory (created)")
    p.add_argument("--arch", default=None, metavar="ARCH",
                   help="segmentation architecture: unet (default), deeplabv3, deeplabv3plus, ultralight, pixel-gbm "
                        "(default of --recipe vitiligo), or any other registered one (`vitfeat list segmentation`)")
    p.add_argument("--modality", default="clinical", choices=["clinical", "wood"])
    p.add_argument("--recipe", default="vitfeat", choices=["vitfeat", "original", "vitiligo"],
                   help="vitfeat's own recipe (default), UltraLight's published one (original), or "
                        "pretrain + strong augmentation + early stopping + TTA (vitiligo)")
    p.add_argument("--pretrain", nargs="+", default=[], metavar="PATH",
                   help="--recipe vitiligo: manifests or dataset folders (labels.csv) to pretrain on")
    p.add_argument("--pretrain-epochs", type=int, default=10, help="--recipe vitiligo: pretraining epochs")
    p.add_argument("--epochs", type=int, help="default 50 (vitfeat), 250 (original)")
    p.add_argument("--imgsz", type=int, default=None,
                   help="square training size, a multiple of 32 (default 256; pixel-gbm: longest side, default 160)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, help="initial learning rate (default 1e-3)")
    p.add_argument("--lrf", type=float, help="final learning rate = lr * lrf (default 0.01)")
    p.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 1e-2)")
    p.add_argument("--loss", choices=["bce+dice", "bce+jaccard", "ce+dice"],
                   help="default: bce+dice (binary), ce+dice (multiclass)")
    p.add_argument("--scheduler", choices=["cosine", "plateau"], help="default cosine")
    p.add_argument("--patience", type=int, help="plateau scheduler: epochs before halving the lr (default 5)")
    p.add_argument("--encoder", default="resnet34", help="smp/timm encoder of unet/deeplab (default resnet34)")
    p.add_argument("--encoder-weights", default="none",
                   help="none (random), hub (ImageNet, downloaded once), or a local state_dict file")
    p.add_argument("--masks", dest="mask_mode", default="binary", choices=["binary", "multiclass"],
                   help="binary: lesion where grey >= 128; multiclass: each grey value is a class")
    p.add_argument("--split", help="ordered:TRAIN,VAL,TEST: the usable manifest rows in order (default: "
                   "whole patients 70/15/15, seeded)")
    p.add_argument("--split-from", help="reuse another run's split.csv (compare architectures on equal terms)")
    p.add_argument("--no-augment", action="store_true", help="no flips/rotations/colour jitter")
    p.add_argument("--seed", type=int, help="default 0 (vitfeat), 42 (original)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice; 1 is often "
                   "faster on a busy machine with small images)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (epochs may grow)")
    p.add_argument("--allow-outside-root", action="store_true", help="allow paths outside the manifest folder")
    p.set_defaults(func=run, output_check=[("out", "dir")])


def run(args) -> int:
    """Run ``vitfeat train seg`` with the parsed arguments (a thin shell over the library): train a
    lesion segmenter on the manifest's photos and masks.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        Exit status.

    Raises
    ------
    vitfeat.cli._common.CLIError
        When the library refuses the input, or for options the chosen recipe fixes or does not take.
    """
    from vitfeat.cli._common import CLIError
    from vitfeat.dataset import ManifestError
    from vitfeat.deep.segmentation.train import SegConfig, train_segmenter

    from vitfeat.deep.segmentation.models import get_architecture

    if args.arch is None:
        from vitfeat.deep.segmentation.vitiligo_recipe import DEFAULT_ARCH

        args.arch = DEFAULT_ARCH if args.recipe == "vitiligo" else "unet"
    if args.arch == "pixel-gbm" and args.recipe != "vitiligo":
        raise CLIError("--arch pixel-gbm is trained by --recipe vitiligo")
    gbm = None
    if args.arch == "pixel-gbm":
        from vitfeat.deep.segmentation.pixel_gbm import PixelGbmConfig

        gbm = PixelGbmConfig(**{k: v for k, v in {"imgsz": args.imgsz, "n_estimators": args.epochs,
                                                   "threads": args.threads}.items() if v})
        args.imgsz, args.epochs = None, None
    try:
        if args.arch != "pixel-gbm":  # the one segmenter that is not a registered network
            get_architecture(args.arch)  # the registry names the valid ones
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    fixed = {"--lr": args.lr, "--lrf": args.lrf, "--weight-decay": args.weight_decay, "--loss": args.loss,
             "--scheduler": args.scheduler, "--patience": args.patience}
    if args.recipe == "original":
        given = [name for name, value in fixed.items() if value is not None]
        given += ["--no-augment"] if args.no_augment else []
        if given:
            raise CLIError(f"--recipe original fixes {', '.join(given)} (UltraLight's published values); "
                           "drop them, or use --recipe vitfeat")
        if args.arch != "ultralight":
            raise CLIError(f"--recipe original is UltraLight VM-UNet's recipe; use --arch ultralight, not {args.arch}")
    chosen = {"lr": args.lr, "lrf": args.lrf, "weight_decay": args.weight_decay, "loss": args.loss,
              "scheduler": args.scheduler, "patience": args.patience}
    config = SegConfig(
        arch=args.arch, modality=args.modality, epochs=args.epochs, imgsz=args.imgsz or 256, batch=args.batch,
        encoder=args.encoder, encoder_weights=None if args.encoder_weights == "none" else args.encoder_weights,
        mask_mode=args.mask_mode, seed=args.seed, augment=not args.no_augment, device=args.device,
        recipe=args.recipe, **{k: v for k, v in chosen.items() if v is not None},
        **({"split": args.split} if args.split else {}),
    )
    if args.pretrain and args.recipe != "vitiligo":
        raise CLIError("--pretrain belongs to --recipe vitiligo")
    try:
        if args.recipe == "vitiligo":
            from vitfeat.deep.segmentation.vitiligo_recipe import train_vitiligo

            meta = train_vitiligo(args.manifest, args.out, config, pretrain=args.pretrain,
                                  pretrain_epochs=args.pretrain_epochs, split_from=args.split_from,
                                  resume=args.resume, allow_outside_root=args.allow_outside_root, gbm=gbm)
        else:
            meta = train_segmenter(args.manifest, args.out, config, split_from=args.split_from,
                                   resume=args.resume, allow_outside_root=args.allow_outside_root)
    except (ManifestError, ValueError, FileNotFoundError, FileExistsError) as exc:
        raise CLIError(str(exc)) from None
    pooled, per_image = meta["test_metrics"]["pooled"], meta["test_metrics"]["per_image"]
    trained = (f"{meta['rounds']} boosting rounds, threshold {meta['threshold']:.2f}" if meta["arch"] == "pixel-gbm"
               else f"best epoch {meta['best_epoch']}/{meta['epochs_done']}")
    print(f"{meta['arch']}: {trained}, "
          f"{meta['evaluated_on']} split ({meta['test_metrics']['n_images']} images): "
          f"Dice {pooled['dice']:.4f} pooled / {per_image['dice']:.4f} per image, "
          f"IoU {pooled['iou']:.4f} / {per_image['iou']:.4f}")
    print(f"segmenter written to {args.out} (use: --masks model:{args.out})")
    return 0
