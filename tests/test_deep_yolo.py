"""YOLO on synthetic data: dataset export with a patient-grouped split, 1-epoch detect and segment
training (the segment one through `vitfeat train yolo`), prediction, mask source, YOLO ROI crops."""

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ultralytics")

from vitfeat.cli.main import main  # noqa: E402
from vitfeat.dataset import load_manifest, read_image  # noqa: E402
from vitfeat.deep.yolo import YoloPredictor, export_yolo_dataset, mask_to_boxes, mask_to_polygons, train_yolo  # noqa: E402

IMGSZ = 64


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from vitfeat.synth import generate

    out = tmp_path_factory.mktemp("synth")
    return generate(out, n=12, seed=3, size=96, cases_per_patient=2, jobs=1, progress=False)


@pytest.fixture(scope="module")
def seg_run(synth, yolo_config_dir, refused, tmp_path_factory):
    out = tmp_path_factory.mktemp("yolo-seg")
    rc = main(["train", "yolo", str(synth), "-o", str(out), "--task", "segment", "--modality", "wood",
               "--epochs", "1", "--imgsz", str(IMGSZ), "--batch", "4"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def det_run(synth, yolo_config_dir, refused, tmp_path_factory):
    out = tmp_path_factory.mktemp("yolo-det")
    train_yolo(synth, out, task="detect", modality="clinical", epochs=1, imgsz=IMGSZ, batch=4)
    return out


def test_mask_to_labels():
    mask = np.zeros((50, 100), bool)
    mask[10:20, 10:30] = True
    mask[30:45, 60:90] = True
    boxes = sorted(mask_to_boxes(mask))
    np.testing.assert_allclose(boxes[0], (0.2, 0.3, 0.2, 0.2), atol=1e-9)
    polys = mask_to_polygons(mask)
    assert len(polys) == 2 and all(p.min() >= 0 and p.max() <= 1 for p in polys)


def test_export_is_patient_grouped(synth, tmp_path):
    data_yaml = export_yolo_dataset(synth, tmp_path / "ds", task="segment", modality="clinical", val_fraction=0.3)
    split = pd.read_csv(tmp_path / "ds" / "split.csv")
    sides = split.groupby("patient_id")["split"].nunique()
    assert (sides == 1).all()  # no patient on both sides
    assert set(split["split"]) == {"train", "val"}
    assert len(list((tmp_path / "ds" / "images" / "train").glob("*.png"))) == (split["split"] == "train").sum()
    label = next((tmp_path / "ds" / "labels" / "train").glob("*.txt")).read_text().split()
    assert label[0] == "0" and len(label) >= 7 and len(label) % 2 == 1  # class + polygon x,y pairs
    assert "names" in data_yaml.read_text()


def test_train_segment_via_cli_and_predict(seg_run, synth, refused):
    info = json.loads((seg_run / "yolo.json").read_text())
    assert info["task"] == "segment" and info["modality"] == "wood" and info["n_val"] > 0
    assert (seg_run / "model.pt").is_file()
    predictor = YoloPredictor(seg_run, conf=0.001)  # 1 epoch: only low-confidence instances exist
    case = next(load_manifest(synth).cases())
    image = read_image(case.wood)
    det = predictor.detect(image)
    assert det.masks is not None and det.masks.shape[1:] == image.shape[:2]
    assert len(det.boxes) == len(det.conf) == len(det.masks)
    assert np.all(np.diff(det.conf) <= 0)  # most confident first
    mask = predictor.predict(image, "wood")
    assert mask.dtype == bool and mask.shape == image.shape[:2]
    assert refused == []


def test_train_detect_and_predict(det_run, synth, refused):
    from vitfeat.deep.mask_source import load_mask_predictor

    # conf 0: every candidate with a non-zero score survives, so even a 1-epoch model must return
    # boxes (sigmoid scores are > 0); what is certain is then checked, not what training reached
    predictor = load_mask_predictor(det_run / "model.pt", conf=0.0)
    assert isinstance(predictor, YoloPredictor) and predictor.task == "detect"
    case = next(load_manifest(synth).cases())
    image = read_image(case.clinical)
    det = predictor.detect(image)
    assert det.masks is None and det.boxes.shape[1] == 4 and len(det.boxes) > 0
    assert np.all(np.diff(det.conf) <= 0)  # most confident first
    mask = predictor.predict(image, "clinical")
    assert mask.shape == image.shape[:2]
    # a detect model's mask is exactly its filled boxes, the best one included
    expected = np.zeros(image.shape[:2], bool)
    for x0, y0, x1, y1 in np.round(det.boxes).astype(int):
        expected[max(y0, 0):y1, max(x0, 0):x1] = True
    np.testing.assert_array_equal(mask, expected)
    x0, y0, x1, y1 = det.best_box()
    assert mask[max(y0, 0):min(y1, image.shape[0]), max(x0, 0):min(x1, image.shape[1])].mean() > 0.5
    assert predictor.describe()["task"] == "detect"
    assert refused == []


def test_refuses_to_download_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not download"):
        train_yolo("unused.csv", tmp_path, model="yolo11n.pt")


def test_yolo_roi_crops_in_deep_family(det_run, synth):
    from vitfeat.featurize.registry import CaseArrays, get_family

    family = get_family(f"deep:test_vit@random:roi=yolo:{det_run}")
    case = next(load_manifest(synth).cases())
    arrays = CaseArrays(case_id=case.case_id, clinical=read_image(case.clinical), wood=None)
    with pytest.warns(UserWarning):
        row = family(arrays)
    assert len(row) == 128 and np.isfinite([v for k, v in row.items() if k.startswith("clinical_")]).all()
    assert "roi=yolo:" in family.version


def test_swapped_yolo_weights_are_refused(det_run, tmp_path):
    """yolo.json records model.pt's SHA-256; another file under that name is named, not loaded."""
    import shutil

    from vitfeat.artefacts import RunIntegrityError

    copy = tmp_path / "yolo"
    shutil.copytree(det_run, copy)
    with open(copy / "model.pt", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(RunIntegrityError, match="model.pt: modified after fit"):
        YoloPredictor(copy / "model.pt")
