"""The vitiligo segmentation recipe under patient-grouped cross-validation, against ``--masks auto``.

Each fold holds out whole patients (the ``group`` column of shared/data vitiligo-seg: augmented
copies of one photo), trains ``train seg --recipe vitiligo`` on the rest (one pretraining on PH2 +
ISIC 2017, shared by the folds; validation patients for early stopping come from the training part)
and scores the held-out photos with ``seg evaluate``. Prints the wall-clock time, the pooled Dice
over all held-out photos of the trained model and of ``auto`` on the same photos, and each fold's
Dice-against-training-time curve (``log.csv``) so a GPU figure can be projected.

    python benchmarks/bench_seg_vitiligo.py --quick        # synthetic data, 2 folds, 1 epoch (~1 min)
    python benchmarks/bench_seg_vitiligo.py --folds 5 --epochs 40 --pretrain-epochs 10 --imgsz 128
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vitfeat.deep.segmentation.evaluate import evaluate_masks  # noqa: E402
from vitfeat.deep.segmentation.train import SegConfig  # noqa: E402
from vitfeat.deep.segmentation.vitiligo_recipe import train_vitiligo  # noqa: E402

DATA = REPO.parent / "shared" / "data"


def vitiligo_manifest(path: Path, data: Path = DATA) -> Path:
    root = data / "vitiligo-seg"
    labels = pd.read_csv(root / "labels.csv", dtype=str)
    pd.DataFrame({"case_id": [p.split("/")[-1].rsplit(".", 1)[0] for p in labels["image"]],
                  "patient_id": labels["group"], "clinical": labels["image"], "clinical_mask": labels["mask"],
                  "label": "vitiligo", "data_root": str(root)}).to_csv(path, index=False)
    return path


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="synthetic data, 2 folds, 1 epoch at 32 px")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--arch", default="ultralight")
    parser.add_argument("--out", help="working folder (default: a temporary one)")
    parser.add_argument("--data", default=str(DATA), help=f"the shared data folder (default {DATA})")
    args = parser.parse_args(argv)
    work = Path(args.out or tempfile.mkdtemp(prefix="bench_seg_vitiligo_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.quick:
        from vitfeat.synth import generate

        manifest = generate(work / "synth", n=16, seed=1, size=64, jobs=1, progress=False)
        pretrain = [manifest]
        args.folds, args.epochs, args.pretrain_epochs, args.imgsz = 2, 1, 1, 32
    else:
        data = Path(args.data)
        manifest = vitiligo_manifest(work / "vitiligo-seg.csv", data)
        pretrain = [data / "ph2", data / "isic2017"]
    frame = pd.read_csv(manifest, dtype=str)
    if "patient_id" not in frame.columns:
        frame["patient_id"] = frame["case_id"]
    start = time.perf_counter()
    trained, auto, curves = [], [], []
    for k, split in fold_splits(frame, args.folds):
        fold_dir = work / f"fold{k}"
        fold_dir.mkdir(exist_ok=True)
        split.to_csv(fold_dir / "split_in.csv", index=False)
        config = SegConfig(arch=args.arch, epochs=args.epochs, imgsz=args.imgsz, batch=8, device="cpu")
        if k == 0:
            train_vitiligo(manifest, fold_dir, config, pretrain=pretrain, pretrain_epochs=args.pretrain_epochs,
                           split_from=fold_dir / "split_in.csv", progress=False, allow_outside_root=True)
            init = (fold_dir / "pretrain" / "best.pt").resolve()
        else:
            from vitfeat.deep.segmentation.train import train_segmenter

            config.recipe, config.init_weights = "vitiligo", str(init)
            train_segmenter(manifest, fold_dir, config, split_from=fold_dir / "split_in.csv", progress=False,
                            allow_outside_root=True)
        held_out = Path(manifest).parent / f"fold{k}_test.csv"  # beside the manifest: same relative paths
        frame[frame["case_id"].isin(split.loc[split["split"] == "test", "case_id"])].to_csv(held_out, index=False)
        trained.append(evaluate_masks(held_out, f"model:{fold_dir}", n_boot=0, allow_outside_root=True).per_image)
        auto.append(evaluate_masks(held_out, "auto", n_boot=0, allow_outside_root=True).per_image)
        log = pd.read_csv(fold_dir / "log.csv")
        log["fold"], log["seconds"] = k, log["epoch_seconds"].cumsum()
        curves.append(log[["fold", "epoch", "seconds", "val_pooled_dice"]])
    elapsed = time.perf_counter() - start

    def pooled(parts):
        t = pd.concat(parts)
        return 2 * t["tp"].sum() / (2 * t["tp"].sum() + t["fp"].sum() + t["fn"].sum()), len(t)

    (dice, n), (dice_auto, _) = pooled(trained), pooled(auto)
    print(f"{args.folds}-fold patient-grouped CV, {n} held-out photos, {elapsed:.0f} s in all "
          f"(pretraining {args.pretrain_epochs} epochs once, up to {args.epochs} epochs per fold, {args.imgsz} px, "
          f"{args.arch})")
    print(f"pooled Dice: recipe vitiligo {dice:.3f}, auto {dice_auto:.3f}")
    print("validation Dice against training time (per fold):")
    print(pd.concat(curves).round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
