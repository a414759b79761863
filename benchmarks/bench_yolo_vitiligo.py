"""YOLO-segment on real vitiligo photos: train a few epochs, score masks on held-out patients.

Data: ../shared/data/vitiligo-seg (96 web/clinical photos, ~3 augmented copies per source photo; the
``group`` column names the source photo and is used as the patient). A quarter of the groups is held
out before anything is trained (GroupShuffleSplit); ``vitfeat.deep.yolo.train_yolo`` then splits the
rest into train/val by group itself. Mask IoU and Dice (sklearn's jaccard_score / f1_score on pixels)
are computed per held-out image, averaged per group, then over groups (a group is one sample).

    .venv/bin/python benchmarks/bench_yolo_vitiligo.py --epochs 10 --imgsz 320      # CPU, minutes
    .venv/bin/python benchmarks/bench_yolo_vitiligo.py --device cuda --epochs 100 --imgsz 416
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "vitiligo-seg"


def vitiligo_manifest(data_dir: Path, out: Path, holdout: float, seed: int) -> tuple[Path, Path]:
    """Write train and held-out manifests (clinical image + clinical mask, patient = group)."""
    from sklearn.model_selection import GroupShuffleSplit

    labels = pd.read_csv(data_dir / "labels.csv")
    frame = pd.DataFrame({
        "case_id": labels["image"].map(lambda p: Path(p).stem),
        "patient_id": labels["group"].astype(str),
        "clinical": labels["image"].map(lambda p: str((data_dir / p).resolve())),
        "clinical_mask": labels["mask"].map(lambda p: str((data_dir / p).resolve())),
        "label": labels["label"],
    })
    split = GroupShuffleSplit(n_splits=1, test_size=holdout, random_state=seed)
    train_idx, test_idx = next(split.split(frame, groups=frame["patient_id"]))
    out.mkdir(parents=True, exist_ok=True)
    # Absolute paths outside the output folder: the manifests are loaded with allow_outside_root.
    train, test = out / "train.csv", out / "holdout.csv"
    frame.iloc[train_idx].to_csv(train, index=False)
    frame.iloc[test_idx].to_csv(test, index=False)
    return train, test


def score_holdout(model_path: Path, holdout_csv: Path, conf: float) -> pd.DataFrame:
    from sklearn.metrics import f1_score, jaccard_score

    from vitfeat.dataset import read_image, read_mask
    from vitfeat.deep.yolo import YoloPredictor

    predictor = YoloPredictor(model_path, conf=conf)
    rows = []
    for rec in pd.read_csv(holdout_csv).to_dict("records"):
        image, truth = read_image(rec["clinical"]), read_mask(rec["clinical_mask"])
        pred = predictor.predict(image, "clinical")
        t, p = truth.ravel(), pred.ravel()
        rows.append({"case_id": rec["case_id"], "patient_id": rec["patient_id"],
                     "iou": jaccard_score(t, p, zero_division=1.0), "dice": f1_score(t, p, zero_division=1.0),
                     "pred_fraction": float(p.mean()), "true_fraction": float(t.mean())})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default="artifacts/bench_yolo_vitiligo")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--model", default=None, help="yolo11n-seg.yaml (default, from scratch) or a local .pt")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--holdout", type=float, default=0.25, help="share of groups held out for scoring")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    data = Path(args.data)
    if not (data / "labels.csv").is_file():
        print(f"vitiligo-seg not found at {data}; nothing to do")
        return 1
    from vitfeat.dataset import load_manifest
    from vitfeat.deep.yolo import train_yolo

    out = Path(args.out)
    train_csv, holdout_csv = vitiligo_manifest(data, out, args.holdout, args.seed)
    manifest = load_manifest(train_csv, allow_outside_root=True)
    start = time.perf_counter()
    model = train_yolo(manifest, out / "yolo", task="segment", modality="clinical", epochs=args.epochs,
                       imgsz=args.imgsz, batch=args.batch, model=args.model, device=args.device, seed=args.seed,
                       patience=max(args.epochs, 50))
    train_s = time.perf_counter() - start
    per_image = score_holdout(model, holdout_csv, args.conf)
    per_group = per_image.groupby("patient_id")[["iou", "dice"]].mean()
    summary = {
        "epochs": args.epochs, "imgsz": args.imgsz, "device": args.device, "model": args.model or "yolo11n-seg.yaml",
        "train_images": int(len(manifest)), "holdout_images": int(len(per_image)),
        "holdout_groups": int(len(per_group)), "train_seconds": round(train_s, 1),
        "iou_group_mean": round(float(per_group["iou"].mean()), 4),
        "iou_group_sd": round(float(per_group["iou"].std()), 4),
        "dice_group_mean": round(float(per_group["dice"].mean()), 4),
        "dice_group_sd": round(float(per_group["dice"].std()), 4),
        "iou_image_mean": round(float(per_image["iou"].mean()), 4),
        "dice_image_mean": round(float(per_image["dice"].mean()), 4),
        "empty_predictions": int((per_image["pred_fraction"] == 0).sum()),
        # Reference: calling every pixel lesion scores IoU = lesion fraction (a model must beat it).
        "iou_all_lesion_baseline": round(float(per_image.groupby("patient_id")["true_fraction"].mean().mean()), 4),
    }
    per_image.to_csv(out / "holdout_scores.csv", index=False)
    tmp = out / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, out / "summary.json")
    for k, v in summary.items():
        print(f"{k:20s} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
