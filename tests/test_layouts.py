"""Each dataset layout, built from synth cases, imports by auto-detection into a manifest that passes
`manifest check` wherever it is written, extracts without errors and recovers the masks and boxes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from vitfeat.cli.main import main
from vitfeat.dataset import load_manifest, parse_box, read_mask
from vitfeat.importers import detect_layout, read_labelme

STAGE = {"stable": "stable", "active": "non-stable"}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from vitfeat.synth import generate

    path = generate(tmp_path_factory.mktemp("synth"), n=8, seed=11, size=160, jobs=1, progress=False)
    return list(load_manifest(path).cases())


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _labelme(path: Path, mask: np.ndarray, kind: str, label: str = "1", scale: float = 1.0) -> None:
    """A LabelMe file as the annotation tool writes it, optionally for a copy resized by ``scale``."""
    h, w = mask.shape
    if kind == "polygon":
        shapes = [{"label": label, "shape_type": "polygon", "points": (poly * scale).tolist()}
                  for poly in _contours(mask)]
        # a "normal skin" polygon (label 0 in the VMTL data) that must not become lesion
        shapes.append({"label": "0", "shape_type": "polygon", "points": [[0, 0], [6, 0], [6, 6], [0, 6]]})
    else:
        x0, y0, x1, y1 = _bbox(mask)
        corners = [[x0 * scale, y0 * scale], [x1 * scale, y1 * scale]]
        shapes = [{"label": "0", "shape_type": "rectangle", "points": corners}]
    path.write_text(json.dumps({"shapes": shapes, "imagePath": "x.jpg", "imageWidth": round(w * scale),
                                "imageHeight": round(h * scale)}))


def _contours(mask: np.ndarray) -> list[np.ndarray]:
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return [c.reshape(-1, 2).astype(float) for c in contours if len(c) >= 3]


def _vmtl_photos(root: Path, cases) -> dict:
    """ROOT/<stage>/ with clinical `photo_<n>.jpg` and Wood's `UV-<n>x.jpeg`: no shared stem or suffix;
    pair ids restart at 1 in each class. Returns case id -> (stage, pair id)."""
    rows, counters, where = [], {}, {}
    for i, case in enumerate(cases):
        stage = STAGE[case.targets["label"]]
        pair_id = counters[stage] = counters.get(stage, 0) + 1
        (root / stage).mkdir(parents=True, exist_ok=True)
        clinic, wood = f"{stage}/photo_{i}.jpg", f"{stage}/UV-{100 + i}x.jpeg"
        shutil.copy(case.clinical, root / clinic)
        shutil.copy(case.wood, root / wood)
        rows += [f"{pair_id},{stage},clinic,{clinic}", f"{pair_id},{stage},wood,{wood}"]
        where[case.case_id] = (stage, pair_id, Path(clinic).stem, Path(wood).stem)
    (root / "data.csv").write_text("pair_id,stability,image_type,image_path\n" + "\n".join(rows) + "\n")
    return where


def build_vmtl_labelme(root: Path, cases) -> dict:
    where = _vmtl_photos(root, cases)
    (root / "segmentation_json").mkdir()
    (root / "detection_json").mkdir()
    for i, case in enumerate(cases):
        _, _, clinic_stem, wood_stem = where[case.case_id]
        _labelme(root / "segmentation_json" / f"{wood_stem}.json", read_mask(case.wood_mask), "polygon")
        # boxes annotated on a half-size copy: the importer rescales them
        _labelme(root / "detection_json" / f"{clinic_stem}.json", read_mask(case.clinical_mask), "rectangle",
                 scale=0.5 if i % 2 else 1.0)
    return where


def build_vmtl_yolo(root: Path, cases) -> dict:
    from vitfeat.synth import yolo_label_lines

    where = _vmtl_photos(root, cases)
    for sub in ("segmentation/labels/train", "detection/labels/val"):
        (root / sub).mkdir(parents=True)
    for case in cases:
        _, _, clinic_stem, wood_stem = where[case.case_id]
        seg = "\n".join(yolo_label_lines(read_mask(case.wood_mask), "polygon")) + "\n"
        (root / "segmentation/labels/train" / f"{wood_stem}.txt").write_text(seg)
        mask = read_mask(case.clinical_mask)
        (x0, y0, x1, y1), (h, w) = _bbox(mask), mask.shape
        det = f"0 {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}\n"
        (root / "detection/labels/val" / f"{clinic_stem}.txt").write_text(det)
    return where


def build_yolo_splits(root: Path, cases) -> dict:
    from vitfeat.synth import yolo_label_lines

    where = {}
    for i, case in enumerate(cases):
        split = "train" if i < 6 else "val"
        for sub in ("images", "labels"):
            (root / sub / split).mkdir(parents=True, exist_ok=True)
        shutil.copy(case.clinical, root / "images" / split / f"img{i}.jpg")
        lines = yolo_label_lines(read_mask(case.clinical_mask), "polygon")
        (root / "labels" / split / f"img{i}.txt").write_text("\n".join(lines) + "\n")
        where[case.case_id] = (split, f"img{i}")
    (root / "data.yaml").write_text(yaml.safe_dump({"path": ".", "train": "images/train", "val": "images/val",
                                                     "names": ["vitiligo"]}))
    return where


LAYOUTS = {"vmtl": build_vmtl_labelme, "vmtl-yolo": build_vmtl_yolo, "yolo-splits": build_yolo_splits}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("where", ["inside", "outside"])
@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_imports_checks_extracts_and_recovers_annotations(synth, tmp_path, name, where):
    root = tmp_path / "data"
    root.mkdir()
    keys = LAYOUTS[name](root, synth)
    assert detect_layout(root) == ("vmtl" if name.startswith("vmtl") else name)
    out = root / "manifest.csv" if where == "inside" else tmp_path / "runs" / "m.csv"
    assert main(["manifest", "import", str(root), "-o", str(out)]) == 0
    assert main(["manifest", "check", str(out), "--no-targets"]) == 0
    header = out.read_text().splitlines()[0].split(",")
    assert ("data_root" in header) == (where == "outside")

    manifest = load_manifest(out, require_targets=False)
    assert len(manifest) == len(synth)
    by_id = {c.case_id: c for c in manifest.cases()}
    for case in synth:
        if name == "yolo-splits":
            split, stem = keys[case.case_id]
            got = by_id[stem]
            assert manifest.frame.set_index("case_id").loc[stem, "split"] == split
            assert manifest.frame.set_index("case_id").loc[stem, "yolo_classes"] == "vitiligo"
            assert _iou(read_mask(got.clinical_mask), read_mask(case.clinical_mask)) >= 0.95
            continue
        stage, pair_id, _, _ = keys[case.case_id]
        got = by_id[f"{stage}/{pair_id}"]
        assert got.targets == {"label": stage}
        iou = _iou(read_mask(got.wood_mask), read_mask(case.wood_mask))
        assert iou >= 0.95, (case.case_id, iou)
        truth = _bbox(read_mask(case.clinical_mask))
        assert np.abs(np.array(got.box("clinical")) - truth).max() <= 2, (got.box("clinical"), truth)

    if where == "outside":
        from vitfeat.featurize.engine import extract

        result = extract(out, families=["shape"], progress=False)
        assert result.n_failed == 0 and not result.failures
        assert len(result.frame) == len(synth)


def test_labelme_rescales_and_names_broken_files(tmp_path):
    mask = np.zeros((40, 60), bool)
    mask[10:30, 20:50] = True
    _labelme(tmp_path / "half.json", mask, "polygon", scale=0.5)
    shapes = read_labelme(tmp_path / "half.json", image_size=(60, 40), labels=["1"])
    assert _iou(shapes.mask, mask) >= 0.9 and not shapes.mask[:6, :6].any()
    everything = read_labelme(tmp_path / "half.json", image_size=(60, 40))  # default: all labels
    assert everything.mask[:6, :6].any()
    _labelme(tmp_path / "box.json", mask, "rectangle")
    assert read_labelme(tmp_path / "box.json", (60, 40)).box() == (20.0, 10.0, 50.0, 30.0)
    (tmp_path / "bad.json").write_text('{"shapes": [')
    from vitfeat.importers import LayoutError

    with pytest.raises(LayoutError, match=r"bad\.json: not valid JSON \(line 1"):
        read_labelme(tmp_path / "bad.json", (60, 40))
    with pytest.raises(LayoutError, match=r"box\.json: annotated for a 60x40 image, but the photo is 60x60"):
        read_labelme(tmp_path / "box.json", (60, 60))


def test_task_json_labels_add_one_target_per_task(synth, tmp_path):
    root = tmp_path / "mt"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    records = []
    for i, case in enumerate(synth):
        shutil.copy(case.clinical, root / "images" / f"c{i}.jpg")
        shutil.copy(case.clinical_mask, root / "masks" / f"c{i}.png")
        records.append({"image": f"images/c{i}.jpg", "qd": "AB"[i % 2], "sl": "CD"[i // 4],
                        "bbox": list(_bbox(read_mask(case.clinical_mask)))})
    labels = tmp_path / "labels.jsonl"
    labels.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    out = tmp_path / "m.csv"
    assert main(["manifest", "import", str(root), "-o", str(out), "--labels-json", str(labels),
                 "--classes", "qd=A:none,B:mild"]) == 0
    manifest = load_manifest(out, targets=["qd", "sl"])
    frame = manifest.frame.set_index("case_id")
    assert list(frame.loc[[f"c{i}" for i in range(4)], "qd"]) == ["none", "mild", "none", "mild"]
    assert set(frame["sl"]) == {"C", "D"}
    assert parse_box(frame.loc["c3", "clinical_box"]) == tuple(float(v) for v in records[3]["bbox"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "images/c0.jpg", "qd": "Z"}\n')
    assert main(["manifest", "import", str(root), "-o", str(out), "--labels-json", str(bad),
                 "--classes", "qd=A:none,B:mild"]) != 0


def test_masks_drawn_outside_the_data_folder_still_give_a_valid_manifest(synth, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    build_vmtl_labelme(root, synth[:3])
    out = tmp_path / "runs" / "m.csv"
    assert main(["manifest", "import", str(root), "-o", str(out), "--masks-dir", str(tmp_path / "drawn")]) == 0
    manifest = load_manifest(out, require_targets=False)
    assert manifest.frame["wood_mask"].str.startswith(str(tmp_path / "drawn")).all()


def test_yolo_detection_export_prefers_the_annotated_box(synth, tmp_path):
    """A manifest box (e.g. from LabelMe rectangles) is the detection label, not the mask's bbox."""
    import pandas as pd

    from vitfeat.deep.yolo import export_yolo_dataset

    root = tmp_path / "data"
    root.mkdir()
    build_vmtl_labelme(root, synth)
    out = root / "m.csv"
    assert main(["manifest", "import", str(root), "-o", str(out)]) == 0
    frame = pd.read_csv(out, dtype=str)
    frame["clinical_mask"] = frame["wood_mask"]  # a mask whose bbox differs from the box
    frame.to_csv(out, index=False)
    export_yolo_dataset(out, tmp_path / "yolo", task="detect", modality="clinical")
    manifest = load_manifest(out, require_targets=False)
    split = pd.read_csv(tmp_path / "yolo" / "split.csv", dtype=str).set_index("case_id")
    for case in manifest.cases():
        from vitfeat.names import safe_filename

        label = tmp_path / "yolo" / "labels" / split.loc[case.case_id, "split"] / f"{safe_filename(case.case_id)}.txt"
        cx, cy, w, h = (float(v) for v in label.read_text().split()[1:])
        x0, y0, x1, y1 = case.box("clinical")
        assert abs(cx * 160 - (x0 + x1) / 2) < 0.01 and abs(w * 160 - (x1 - x0)) < 0.01


def _simple_layout(root: Path, cases, name: str) -> list[str]:
    """The older layouts from the same synth cases; returns the extra import arguments."""
    lines = ["image,mask,label"]
    for case in cases:
        label = case.targets["label"]
        if name == "class-folders":
            (root / label).mkdir(exist_ok=True)
            shutil.copy(case.clinical, root / label / f"{case.case_id}_clinical.jpg")
            shutil.copy(case.wood, root / label / f"{case.case_id}_wood.jpg")
            continue
        (root / "images").mkdir(exist_ok=True)
        shutil.copy(case.clinical, root / "images" / f"{case.case_id}.jpg")
        if name == "yolo":
            from vitfeat.synth import yolo_label_lines

            (root / "labels").mkdir(exist_ok=True)
            lines_ = yolo_label_lines(read_mask(case.clinical_mask), "polygon")
            (root / "labels" / f"{case.case_id}.txt").write_text("\n".join(lines_) + "\n")
        else:
            (root / "masks").mkdir(exist_ok=True)
            shutil.copy(case.clinical_mask, root / "masks" / f"{case.case_id}.png")
            lines.append(f"images/{case.case_id}.jpg,masks/{case.case_id}.png,{label}")
    if name == "labels-csv":
        (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return ["--pair", "_clinical:_wood"] if name == "class-folders" else []


@pytest.mark.parametrize("where", ["inside", "outside"])
@pytest.mark.parametrize("name", ["class-folders", "images-masks", "yolo", "labels-csv"])
def test_older_layouts_pass_check_wherever_the_manifest_lies(synth, tmp_path, name, where):
    root = tmp_path / "data"
    root.mkdir()
    extra = _simple_layout(root, synth, name)
    assert detect_layout(root) == name
    out = root / "manifest.csv" if where == "inside" else tmp_path / "runs" / "m.csv"
    assert main(["manifest", "import", str(root), "-o", str(out), *extra]) == 0
    assert main(["manifest", "check", str(out), "--no-targets"]) == 0
    manifest = load_manifest(out, require_targets=False)
    assert len(manifest) == len(synth)
    truth = {c.case_id: c for c in synth}
    for case in manifest.cases():
        if name == "class-folders":
            assert case.wood is not None
        else:
            assert _iou(read_mask(case.clinical_mask), read_mask(truth[case.case_id].clinical_mask)) >= 0.95


def test_labelme_files_beside_the_photos_give_masks_and_boxes(synth, tmp_path):
    """LabelMe saves a.json next to a.jpg: class-folders with such files import masks and boxes."""
    root = tmp_path / "data"
    root.mkdir()
    for case in synth:
        folder = root / case.targets["label"]
        folder.mkdir(exist_ok=True)
        shutil.copy(case.clinical, folder / f"{case.case_id}.jpg")
        _labelme(folder / f"{case.case_id}.json", read_mask(case.clinical_mask), "polygon")
        with open(folder / f"{case.case_id}.json") as fh:
            data = json.load(fh)
        x0, y0, x1, y1 = _bbox(read_mask(case.clinical_mask))
        data["shapes"].append({"label": "1", "shape_type": "rectangle", "points": [[x0, y0], [x1, y1]]})
        (folder / f"{case.case_id}.json").write_text(json.dumps(data))
    out = tmp_path / "m.csv"
    assert main(["manifest", "import", str(root), "-o", str(out), "--labelme-labels", "1"]) == 0
    manifest = load_manifest(out)
    truth = {c.case_id: c for c in synth}
    for case in manifest.cases():
        original = truth[case.case_id]
        assert _iou(read_mask(case.clinical_mask), read_mask(original.clinical_mask)) >= 0.95
        assert np.abs(np.array(case.box("clinical")) - _bbox(read_mask(original.clinical_mask))).max() <= 2
