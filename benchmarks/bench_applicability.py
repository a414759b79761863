"""How often the applicability check flags in-distribution cases, and how often it flags probes.

Goal (issue #27): <= 5 % of held-out in-distribution cases flagged, >= 95 % of out-of-domain probes
flagged. A run is fitted on part of a data set; the held-out rest (other patients) is predicted and
its flag rate printed, with the run's own out-of-fold flag rate; then probes are predicted: blank,
noise, 1x1 and 8x8 images, normal skin (vitiligo-cls "normal" photos; not a probe for a
vitiligo-cls model, where normal skin is a class), dermoscopy (PH2, ISIC 2017) and a Wood's-lamp
photo given as the clinical one.

    .venv/bin/python benchmarks/bench_applicability.py --data synth --quick
    .venv/bin/python benchmarks/bench_applicability.py --data vitiligo-cls --quick

``--quick``: fewer cases and probes, two cheap pipelines (a minute on one core).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED = Path(os.environ.get("VITFEAT_SHARED_DATA", "/work/shared/data"))


def _synth_sets(root: Path, quick: bool):
    from vitfeat.synth import generate

    n_train, n_test = (60, 30) if quick else (200, 100)
    train = generate(root / "train", n=n_train, seed=1, size=256, jobs=1, progress=False)
    test = generate(root / "test", n=n_test, seed=2, size=256, jobs=1, progress=False)
    return train, test, ["shape", "pair", "wood", "color", "border"] if quick else None, "given"


def _cls_sets(root: Path, quick: bool):
    import numpy as np

    from vitfeat.importers import import_folder

    man = import_folder(SHARED / "vitiligo-cls")
    man["clinical"] = [str(Path(p).relative_to(SHARED / "vitiligo-cls")) for p in man["clinical"]]
    man["data_root"] = str(SHARED / "vitiligo-cls")
    man = man[["case_id", "clinical", "label", "data_root"]]
    rng = np.random.default_rng(0)
    test_mask = rng.random(len(man)) < 0.25
    man[~test_mask].to_csv(root / "train.csv", index=False)
    man[test_mask].to_csv(root / "test.csv", index=False)
    return root / "train.csv", root / "test.csv", ["shape", "color", "firstorder", "border"] if quick else None, "auto"


def _probes(root: Path, quick: bool, paired: bool, wood_photo: Path | None, vitiligo_cls_model: bool):
    """A manifest of probe cases: (manifest path, {case_id: kind})."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    folder = root / "probes"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows, kinds = [], {}

    if wood_photo is not None:
        shutil.copy(wood_photo, folder / "wood.jpg")

    def add(kind, path):
        cid = f"{kind}_{sum(k == kind for k in kinds.values())}".replace(" ", "_").replace("'", "")
        if Path(path).parent != folder:  # the manifest's paths must lie under its folder
            shutil.copy(path, folder / f"{cid}{Path(path).suffix}")
            path = folder / f"{cid}{Path(path).suffix}"
        row = {"case_id": cid, "clinical": Path(path).name}
        if paired and wood_photo is not None:
            row["wood"] = "wood.jpg"
        rows.append(row)
        kinds[cid] = kind

    n_each = 3 if quick else 10
    for i in range(n_each):
        p = folder / f"blank{i}.png"
        Image.new("RGB", (256, 256), tuple(int(v) for v in rng.integers(0, 256, 3))).save(p)
        add("blank", p)
        p = folder / f"noise{i}.png"
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(p)
        add("noise", p)
    for side in (1, 8):
        p = folder / f"tiny{side}.png"
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(p)
        add(f"{side}x{side}", p)
    if not vitiligo_cls_model:
        labels = pd.read_csv(SHARED / "vitiligo-cls" / "labels.csv")
        for img in labels.loc[labels["label"] == "normal", "image"].head(n_each * 2):
            add("normal skin", SHARED / "vitiligo-cls" / img)
    for ds in ("ph2", "isic2017"):
        labels = pd.read_csv(SHARED / ds / "labels.csv")
        for img in labels["image"].head(n_each * 2):
            add("dermoscopy", SHARED / ds / img)
    if wood_photo is not None:
        add("Wood's as clinical", wood_photo)
    man = pd.DataFrame(rows)
    man.to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv", kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["synth", "vitiligo-cls"], default="synth")
    parser.add_argument("--quick", action="store_true", help="small sets, two cheap pipelines")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import pandas as pd

    from vitfeat.featurize import extract
    from vitfeat.pipelines.predict import predict_run
    from vitfeat.pipelines.select import FitConfig, fit_run

    with tempfile.TemporaryDirectory(prefix="bench-applicability-") as tmp:
        root = Path(tmp)
        if args.data == "synth":
            train, test, families, masks = _synth_sets(root, args.quick)
            wood_photo = Path(train).parent / pd.read_csv(train)["wood"].iloc[0]
        else:
            train, test, families, masks = _cls_sets(root, args.quick)
            from vitfeat.synth import generate

            wood_photo = generate(root / "woodsrc", n=2, seed=5, size=256, jobs=1, progress=False).parent
            wood_photo = wood_photo / pd.read_csv(wood_photo / "manifest.csv")["wood"].iloc[0]
        kw = {"families": families} if families else {}
        extract(train, root / "train.parquet", masks=masks, progress=False, **kw)
        pipelines = ["logreg", "rf"] if args.quick else ["all"]
        run = fit_run(root / "train.parquet", root / "run",
                      FitConfig(pipelines=pipelines, folds=5, n_boot=50, nested=False), progress=False)
        meta = json.loads((run / "run.json").read_text())
        scope = meta["applicability"]
        held = predict_run(run, test, root / "held.csv")
        paired = "wood" in scope["needs"]["modalities"]
        probes, kinds = _probes(root, args.quick, paired, wood_photo, args.data == "vitiligo-cls")
        out = predict_run(run, probes, root / "probes.csv")

        print(f"data {args.data}{' (quick)' if args.quick else ''}: {scope['n_reference']} training cases, "
              f"model needs {'+'.join(scope['needs']['modalities'])}, masks {scope['needs']['mask_source']}, "
              f"k={scope['k']}, threshold {scope['threshold']:.2f}")
        print(f"out of fold (in-fold fitted check): {scope['oof_flagged']}/{scope['oof_assessed']} flagged "
              f"({scope['oof_flagged'] / max(1, scope['oof_assessed']):.1%})")
        for target, eff in scope["oof_effect"].items():
            print(f"  {target}: balanced accuracy all {eff['all']['balanced_accuracy']:.3f} (n={eff['all']['n']}), "
                  f"in scope {eff['in_scope']['balanced_accuracy']:.3f} (n={eff['in_scope']['n']})")
        for target, c in meta["conformal"].items():
            print(f"  {target}: conformal coverage {c['empirical_coverage']:.3f} (target {c['coverage']}), "
                  f"two-class sets {c['two_class_share']:.1%}")
        flagged = ~held["in_scope"].astype(bool)
        print(f"held-out in-distribution cases: {int(flagged.sum())}/{len(held)} flagged ({flagged.mean():.1%}; "
              "goal <= 5 %)")
        for reason in held.loc[flagged, "scope_reason"].head(3):
            print(f"  e.g. {reason[:150]}")
        out["kind"] = out["case_id"].map(kinds)
        total = ~out["in_scope"].astype(bool)
        print(f"probes: {int(total.sum())}/{len(out)} flagged ({total.mean():.1%}; goal >= 95 %)")
        for kind, part in out.groupby("kind", sort=False):
            f = ~part["in_scope"].astype(bool)
            example = part.loc[f, "scope_reason"].iloc[0][:150] if f.any() else "-"
            print(f"  {kind:<20} {int(f.sum())}/{len(part)}  e.g. {example}")
        missed = out.loc[~total, ["case_id", "kind"]]
        if len(missed):
            print("not flagged: " + ", ".join(missed["case_id"]))


if __name__ == "__main__":
    main()
