"""Candidates for ``train seg --recipe vitiligo`` under patient-grouped cross-validation, against ``auto``.

Each fold holds out whole patients (the ``group`` column of shared/data vitiligo-seg: augmented
copies of one photo); each candidate trains on the rest (its early stopping / threshold patients
come from the training part, never the held-out fold) and predicts the held-out photos. The
held-out masks of all folds go into one folder per candidate, which ``seg evaluate``
(:func:`vitfeat.deep.segmentation.evaluate.evaluate_masks`, a folder source) scores against the
expert masks: pooled and median Dice with 95 % bootstrap intervals resampling patients. ``auto``
(training-free) is scored on the same photos.

Candidates (``--candidates``): ``pixel-gbm`` (LightGBM on colour-contrast pixel features, the
recipe's default), ``ultralight`` (UltraLight VM-UNet pretrained on PH2 + ISIC 2017, strong
augmentation, Dice + BCE, early stopping, flip TTA) and ``unet`` (smp U-Net with ``--encoder``,
the same recipe; ``--encoder-weights FILE`` starts it from a local encoder state_dict).

Writes into ``--out``: ``summary.csv`` (one row per candidate: Dice, intervals, seconds),
``curves.csv`` / ``curves.png`` (validation Dice against training time, per fold and candidate: how
far more time, or a GPU, would go), ``<candidate>/fold*/`` (each fold's segmenter) and
``<candidate>/oof_masks/`` (the held-out masks).

    python benchmarks/bench_seg_vitiligo.py --quick        # synthetic data, 2 folds, seconds per candidate
    python benchmarks/bench_seg_vitiligo.py --candidates pixel-gbm ultralight --folds 5
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vitfeat.atomic import write_csv, write_figure, write_text  # noqa: E402
from vitfeat.dataset import load_manifest, read_image, write_mask  # noqa: E402
from vitfeat.deep.segmentation import load_segmenter  # noqa: E402
from vitfeat.deep.segmentation.evaluate import evaluate_masks  # noqa: E402
from vitfeat.deep.segmentation.pixel_gbm import PixelGbmConfig  # noqa: E402
from vitfeat.deep.segmentation.train import SegConfig, train_segmenter  # noqa: E402
from vitfeat.deep.segmentation.vitiligo_recipe import train_vitiligo  # noqa: E402

DATA = REPO.parent / "shared" / "data"
CANDIDATES = ("pixel-gbm", "ultralight", "unet")


def vitiligo_manifest(path: Path, data: Path = DATA) -> Path:
    """A manifest of shared/data vitiligo-seg (``group``, the source photo, is the patient)."""
    root = data / "vitiligo-seg"
    labels = pd.read_csv(root / "labels.csv", dtype=str)
    frame = pd.DataFrame({"case_id": [p.split("/")[-1].rsplit(".", 1)[0] for p in labels["image"]],
                          "patient_id": labels["group"], "clinical": labels["image"],
                          "clinical_mask": labels["mask"], "label": "vitiligo", "data_root": str(root)})
    return write_csv(path, frame, index=False)


def fold_splits(frame: pd.DataFrame, folds: int, seed: int = 0):
    """(fold, split frame) with test = one patient group fold, val = ~15 % of the other patients."""
    from sklearn.model_selection import GroupKFold

    patients = frame["patient_id"].astype(str)
    for k, (train_idx, test_idx) in enumerate(GroupKFold(folds).split(frame, groups=patients)):
        rest = patients.iloc[train_idx].drop_duplicates().sample(frac=1.0, random_state=seed + k)
        val = set(rest.iloc[: max(1, round(0.15 * len(rest)))])
        split = pd.DataFrame({"case_id": frame["case_id"].astype(str), "patient_id": patients, "split": "train"})
        split.loc[split["patient_id"].isin(val), "split"] = "val"
        split.loc[test_idx, "split"] = "test"
        yield k, split


def _train_fold(name: str, args, manifest, fold_dir: Path, split_file: Path, pretrain, shared: dict) -> None:
    if name == "pixel-gbm":
        gbm = PixelGbmConfig(imgsz=args.gbm_imgsz, n_estimators=args.gbm_rounds, threads=args.threads)
        train_vitiligo(manifest, fold_dir, SegConfig(arch="pixel-gbm"), gbm=gbm, split_from=split_file,
                       progress=False, allow_outside_root=True)
        return
    ultra = name == "ultralight"
    config = SegConfig(arch=name, epochs=args.epochs if ultra else args.unet_epochs,
                       imgsz=args.imgsz if ultra else args.unet_imgsz,
                       batch=8, device=args.device, encoder=args.encoder,
                       encoder_weights=None if ultra else args.encoder_weights)
    if "init" not in shared:  # the first fold pretrains (once); the other folds start from its weights
        train_vitiligo(manifest, fold_dir, config, pretrain=pretrain, pretrain_epochs=args.pretrain_epochs,
                       split_from=split_file, progress=False, allow_outside_root=True)
        shared["init"] = (fold_dir / "pretrain" / "best.pt").resolve() if pretrain else None
        return
    config.recipe, config.init_weights = "vitiligo", str(shared["init"]) if shared["init"] else None
    train_segmenter(manifest, fold_dir, config, split_from=split_file, progress=False, allow_outside_root=True)


def _curve(name: str, fold_dir: Path, fold: int) -> pd.DataFrame:
    log = pd.read_csv(fold_dir / "log.csv")
    if name != "pixel-gbm":  # networks: seconds of training per epoch
        log["seconds"] = log["epoch_seconds"].cumsum()
    return pd.DataFrame({"candidate": name, "fold": fold, "seconds": log["seconds"],
                         "val_pooled_dice": log["val_pooled_dice"]})


def run_candidate(name: str, args, manifest: Path, frame: pd.DataFrame, work: Path,
                  pretrain) -> tuple[dict, pd.DataFrame]:
    """Train ``name`` on every fold, write its held-out masks, score them with ``seg evaluate``."""
    cases = {c.case_id: c for c in load_manifest(manifest, require_targets=False, allow_outside_root=True).cases()}
    oof = work / name / "oof_masks"
    oof.mkdir(parents=True, exist_ok=True)
    shared, curves, fold_seconds = {}, [], []
    start = time.perf_counter()
    for k, split in fold_splits(frame, args.folds):
        fold_dir = work / name / f"fold{k}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        split_file = write_csv(fold_dir / "split_in.csv", split, index=False)
        t = time.perf_counter()
        _train_fold(name, args, manifest, fold_dir, split_file, pretrain, shared)
        fold_seconds.append(time.perf_counter() - t)
        segmenter = load_segmenter(fold_dir, device=args.device)
        for case_id in split.loc[split["split"] == "test", "case_id"]:
            photo = cases[case_id].image("clinical")
            write_mask(oof / f"{photo.stem}.png", segmenter.predict(read_image(photo), "clinical"))
        curves.append(_curve(name, fold_dir, k))
    seconds = time.perf_counter() - start
    summary = evaluate_masks(manifest, str(oof), n_boot=args.n_boot, allow_outside_root=True).summary
    row = {"candidate": name, "n_images": summary["n_images"], "dice_pooled": summary["dice_pooled"],
           "dice_pooled_ci": summary["dice_pooled_ci"], "dice_median": summary["dice_median"],
           "dice_median_ci": summary["dice_median_ci"], "seconds": round(seconds, 1),
           "train_seconds_per_fold": round(sum(fold_seconds) / len(fold_seconds), 1)}
    return row, pd.concat(curves, ignore_index=True)


def plot_curves(curves: pd.DataFrame, path: Path) -> Path:
    """Validation Dice against training seconds: one thin line per fold, one colour per candidate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), constrained_layout=True)
    for i, (name, part) in enumerate(curves.groupby("candidate", sort=False)):
        colour = f"C{i}"
        for j, (_, fold) in enumerate(part.groupby("fold")):
            ax.plot(fold["seconds"], fold["val_pooled_dice"], color=colour, alpha=0.6, lw=1,
                    label=name if j == 0 else None, marker="." if len(fold) < 12 else None)
    ax.set_xscale("log")
    ax.set_xlabel("training time per fold (s, this machine; pixel-gbm: reading and features included)")
    ax.set_ylabel("validation Dice (pooled, held-in patients)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    return write_figure(path, fig, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="synthetic data, 2 folds, tiny settings (seconds)")
    parser.add_argument("--candidates", nargs="+", default=["pixel-gbm", "ultralight"], choices=CANDIDATES)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--gbm-imgsz", type=int, default=160, help="pixel-gbm: longest side (px)")
    parser.add_argument("--gbm-rounds", type=int, default=400, help="pixel-gbm: most boosting rounds")
    parser.add_argument("--epochs", type=int, default=40, help="networks: most epochs (early stopping after 8)")
    parser.add_argument("--pretrain-epochs", type=int, default=10, help="networks: epochs on PH2 + ISIC 2017 (0: none)")
    parser.add_argument("--imgsz", type=int, default=128, help="ultralight: input size")
    parser.add_argument("--unet-imgsz", type=int, default=192, help="unet: input size")
    parser.add_argument("--unet-epochs", type=int, default=15, help="unet: most epochs (early stopping after 8)")
    parser.add_argument("--encoder", default="resnet18", help="unet: smp/timm encoder")
    parser.add_argument("--encoder-weights", default=None, help="unet: a local encoder state_dict file")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="LightGBM and torch threads")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the intervals")
    parser.add_argument("--out", help="output folder (default: a temporary one)")
    parser.add_argument("--data", default=str(DATA), help=f"the shared data folder (default {DATA})")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)  # on a busy CPU one thread beats two (docs/segmentation.md)
    work = Path(args.out or tempfile.mkdtemp(prefix="bench_seg_vitiligo_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.quick:
        from vitfeat.synth import generate

        manifest = generate(work / "synth", n=16, seed=1, size=64, jobs=1, progress=False)
        pretrain = [manifest]
        args.folds, args.epochs, args.unet_epochs, args.pretrain_epochs = 2, 1, 1, 1
        args.imgsz, args.unet_imgsz = 32, 32
        args.gbm_imgsz, args.gbm_rounds, args.n_boot, args.encoder = 48, 20, 50, "resnet18"
    else:
        data = Path(args.data)
        manifest = vitiligo_manifest(work / "vitiligo-seg.csv", data)
        pretrain = [data / "ph2", data / "isic2017"] if args.pretrain_epochs else []
    frame = pd.read_csv(manifest, dtype=str)
    if "patient_id" not in frame.columns:
        frame["patient_id"] = frame["case_id"]
    rows, curves = [], []
    t = time.perf_counter()
    auto = evaluate_masks(manifest, "auto", n_boot=args.n_boot, allow_outside_root=True).summary
    rows.append({"candidate": "auto (training-free)", "n_images": auto["n_images"], "dice_pooled": auto["dice_pooled"],
                 "dice_pooled_ci": auto["dice_pooled_ci"], "dice_median": auto["dice_median"],
                 "dice_median_ci": auto["dice_median_ci"], "seconds": round(time.perf_counter() - t, 1),
                 "train_seconds_per_fold": 0.0})
    for name in args.candidates:
        row, curve = run_candidate(name, args, manifest, frame, work, pretrain)
        rows.append(row)
        curves.append(curve)
        print(f"{name}: pooled Dice {row['dice_pooled']:.3f}, {row['seconds']:.0f} s", flush=True)
        # written after each candidate, so that a long run keeps what it measured
        write_csv(work / "summary.csv", pd.DataFrame(rows), index=False)
        curve_table = pd.concat(curves, ignore_index=True)
        write_csv(work / "curves.csv", curve_table, index=False)
        plot_curves(curve_table, work / "curves.png")
    write_text(work / "settings.json", json.dumps({k: (str(v) if isinstance(v, Path) else v)
                                                   for k, v in vars(args).items()}, indent=2))

    def ci(v):
        return f"[{v[0]:.3f}-{v[1]:.3f}]" if v and v[0] is not None else ""

    print(f"\n{args.folds}-fold patient-grouped CV on {frame['patient_id'].nunique()} patients, "
          f"{len(frame)} photos; seg evaluate of the held-out masks (95 % CIs resample patients)")
    for r in rows:
        print(f"  {r['candidate']:<22} pooled Dice {r['dice_pooled']:.3f} {ci(r['dice_pooled_ci']):<15} "
              f"median {r['dice_median']:.3f} {ci(r['dice_median_ci']):<15} {r['seconds']:>7.1f} s in all, "
              f"{r['train_seconds_per_fold']:.1f} s training per fold")
    print(f"curves: {work / 'curves.csv'}, {work / 'curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
