"""Importers: the common folder layouts and the ../shared/data folders become valid manifests."""

from __future__ import annotations

import shutil

import pytest

from vitfeat.cli.main import main
from vitfeat.dataset import load_manifest, read_mask, write_manifest
from vitfeat.importers import LayoutError, detect_layout, import_folder

SHARED = {"ph2": 160, "isic2017": 80, "vitiligo-seg": 96, "vitiligo-cls": 256}


@pytest.mark.parametrize("name", sorted(SHARED))
def test_shared_data_labels_csv(shared_data, tmp_path, name):
    root = shared_data / name
    assert detect_layout(root) == "labels-csv"
    frame = import_folder(root)
    path = write_manifest(frame, tmp_path / "m.csv")
    m = load_manifest(path, allow_outside_root=True)
    assert len(m) == SHARED[name]
    has_masks = (root / "masks").is_dir()
    assert m.frame["clinical_mask"].notna().all() == has_masks
    if name == "vitiligo-seg":  # augmented copies of one photo share a patient (group column)
        assert m.frame["patient_id"].nunique() == 44
    if name == "ph2":
        assert set(m.frame["label"]) == {"common_nevus", "atypical_nevus", "melanoma"}
        assert "asymmetry" in m.frame.columns  # extra columns stay available as targets


def test_class_folders_with_pairing_and_patients(synth_small, tmp_path):
    src = load_manifest(synth_small)
    for case in src.cases():
        label = case.targets["label"]
        (tmp_path / label).mkdir(exist_ok=True)
        pid = case.patient_id
        shutil.copy(case.clinical, tmp_path / label / f"{pid}_{case.case_id}_clinical.jpg")
        shutil.copy(case.wood, tmp_path / label / f"{pid}_{case.case_id}_wood.jpg")
    assert main(["manifest", "import", str(tmp_path), "-o", str(tmp_path / "m.csv"),
                 "--pair", "_clinical:_wood", "--patient-regex", r"^(p\d+)_"]) == 0
    m = load_manifest(tmp_path / "m.csv")
    assert len(m) == len(src)
    assert m.frame["wood"].notna().all()
    merged = m.frame.assign(case_id=m.frame.case_id.str.split("_").str[1]).merge(src.frame, on="case_id")
    assert (merged.label_x == merged.label_y).all() and (merged.patient_id_x == merged.patient_id_y).all()


def test_yolo_layout_round_trip(synth_small, tmp_path):
    """synth writes images/ + labels/ polygons: importing them redraws the masks."""
    root = synth_small.parent
    frame = import_folder(root, "yolo", pair=("_clinical", "_wood"), masks_dir=tmp_path / "masks")
    truth = load_manifest(synth_small).frame.set_index("case_id")
    assert len(frame) == len(truth)
    for rec in frame.itertuples():
        for modality in ("clinical", "wood"):
            drawn = read_mask(getattr(rec, f"{modality}_mask"))
            given = read_mask(truth.loc[rec.case_id, f"{modality}_mask"])
            iou = (drawn & given).sum() / (drawn | given).sum()
            assert iou > 0.9, (rec.case_id, modality, iou)


def test_yolo_boxes(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (100, 50)).save(tmp_path / "images" / "a.jpg")
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n")
    frame = import_folder(tmp_path, masks_dir=tmp_path / "m")
    mask = read_mask(frame.loc[0, "clinical_mask"])
    assert mask.sum() == 20 * 20 and mask[25, 50]
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5\n")
    with pytest.raises(LayoutError, match="a.txt:1: expected 4 box values"):
        import_folder(tmp_path, masks_dir=tmp_path / "m")


def test_images_masks_layout(synth_small, tmp_path):
    src = load_manifest(synth_small)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for case in list(src.cases())[:5]:
        shutil.copy(case.clinical, tmp_path / "images" / f"{case.case_id}.jpg")
        shutil.copy(case.clinical_mask, tmp_path / "masks" / f"{case.case_id}.png")
    frame = import_folder(tmp_path)
    assert len(frame) == 5 and frame["clinical_mask"].notna().all()


def test_unknown_layout_message(tmp_path):
    with pytest.raises(LayoutError, match="no known layout"):
        import_folder(tmp_path)
