"""Manifest validation: every bad input gets its message, all at once, with row numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vitfeat.cli.main import main
from vitfeat.dataset import (ImageReadError, ManifestError, MAX_IMAGE_PIXELS, load_manifest, read_image, read_mask,
                             validate_manifest)


def _rgb(path, size=(40, 30), color=(200, 150, 120)):
    Image.new("RGB", size, color).save(path)
    return path.name


def _mask(path, size=(40, 30)):
    arr = np.zeros(size[::-1], np.uint8)
    arr[5:15, 5:20] = 255
    Image.fromarray(arr).save(path)
    return path.name


@pytest.fixture()
def good(tmp_path):
    rows = []
    for i in range(3):
        rows.append(dict(case_id=f"c{i}", patient_id=f"p{i // 2}", clinical=_rgb(tmp_path / f"c{i}.jpg"),
                         wood=_rgb(tmp_path / f"w{i}.jpg", color=(60, 30, 110)),
                         clinical_mask=_mask(tmp_path / f"c{i}.png"), label=["stable", "active"][i % 2]))
    return tmp_path, pd.DataFrame(rows)


def _write(tmp_path, frame, name="manifest.csv"):
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("name", ["manifest.csv", "manifest.parquet"])
def test_good_manifest_loads_with_absolute_paths(good, name):
    tmp_path, frame = good
    m = load_manifest(_write(tmp_path, frame, name))
    assert len(m) == 3 and m.targets == ["label"]
    cases = list(m.cases())
    assert cases[0].clinical == tmp_path / "c0.jpg" and cases[0].clinical.is_absolute()
    assert cases[0].wood_mask is None and cases[2].patient_id == "p1"
    assert cases[1].targets == {"label": "active"}


def test_patient_defaults_to_case(good):
    tmp_path, frame = good
    m = load_manifest(_write(tmp_path, frame.drop(columns="patient_id")))
    assert list(m.frame["patient_id"]) == list(m.frame["case_id"])


def test_every_problem_is_reported_at_once(good):
    tmp_path, frame = good
    (tmp_path / "notes.jpg").write_text("this is not an image")
    _rgb(tmp_path / "big.jpg", size=(50, 50))
    _mask(tmp_path / "wrong.png", size=(10, 10))
    Image.frombytes("RGB", (40, 30), bytes(40 * 30 * 3)).save(tmp_path / "trunc.jpg")
    (tmp_path / "trunc.jpg").write_bytes((tmp_path / "trunc.jpg").read_bytes()[:20])
    bad = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)  # row 4 duplicates row 1
    bad.loc[1, "clinical"] = "missing.jpg"
    bad.loc[2, "wood"] = "notes.jpg"
    bad.loc[0, "clinical_mask"] = "wrong.png"
    bad.loc[2, "label"] = None
    bad.loc[3, "wood"] = "../outside.jpg"
    bad.loc[3, "clinical"] = "trunc.jpg"
    with pytest.raises(ManifestError) as err:
        load_manifest(_write(tmp_path, bad))
    text = str(err.value)
    expected = [
        ("row 1, column 'case_id'", "duplicate case_id 'c0' (rows 1, 4)"),
        ("row 2, column 'clinical'", "file not found"),
        ("row 3, column 'wood'", "not an image file"),
        ("row 1, column 'clinical_mask'", "mask size 10x10 differs from image size 40x30"),
        ("row 3, column 'label'", "empty or NaN value"),
        ("row 4, column 'wood'", "escapes the dataset root"),
    ]
    for where, what in expected:
        assert any(where in line and what in line for line in text.splitlines()), (where, what, text)
    assert len(err.value.problems) >= len(expected)


def test_outside_root_allowed_with_flag(good, tmp_path_factory):
    tmp_path, frame = good
    other = tmp_path_factory.mktemp("elsewhere")
    _rgb(other / "x.jpg")
    frame.loc[0, "clinical"] = str(other / "x.jpg")
    path = _write(tmp_path, frame)
    with pytest.raises(ManifestError, match="escapes the dataset root"):
        load_manifest(path)
    assert load_manifest(path, allow_outside_root=True).frame.loc[0, "clinical"] == str(other / "x.jpg")


def test_missing_required_column_and_target(good):
    tmp_path, frame = good
    with pytest.raises(ManifestError, match="required column 'clinical' is missing"):
        load_manifest(_write(tmp_path, frame.drop(columns="clinical")))
    with pytest.raises(ManifestError, match="target column 'stage' is missing"):
        load_manifest(_write(tmp_path, frame), targets=["stage"])
    # prediction input needs no labels
    m = load_manifest(_write(tmp_path, frame.drop(columns="label")), require_targets=False)
    assert m.targets == []


def test_decompression_bomb_refused(good):
    tmp_path, frame = good
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 100
    Image.new("1", (side, side)).save(tmp_path / "bomb.png")  # tiny file, huge canvas
    frame.loc[0, "clinical"] = "bomb.png"
    frame.loc[0, "clinical_mask"] = None
    with pytest.raises(ManifestError, match="decompression-bomb"):
        load_manifest(_write(tmp_path, frame))


def test_read_image_modes(tmp_path):
    gray = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (5, 1))
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (5, 25, 3) and out.dtype == np.uint8 and (out[..., 0] == gray).all()

    deep = (gray.astype(np.uint16) * 257)
    Image.fromarray(deep).save(tmp_path / "g16.png")
    out16 = read_image(tmp_path / "g16.png")
    assert np.abs(out16[..., 0].astype(int) - gray).max() <= 1  # scaled, not clipped to white

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, :, 3] = 255  # top half opaque red, bottom transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out_a = read_image(tmp_path / "a.png")
    assert tuple(out_a[0, 0]) == (255, 0, 0) and tuple(out_a[3, 0]) == (255, 255, 255)


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = 255  # left half white
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW when displayed
    img.save(tmp_path / "o.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "o.jpg")
    assert out.shape == (20, 10, 3)
    assert out[:10].mean() > 200 and out[10:].mean() < 50  # white half now on top


def test_read_mask_thresholds(tmp_path):
    """Several grey values: half the maximum, with a warning naming the file; or the given threshold."""
    from vitfeat.dataset import MaskWarning

    arr = np.array([[0, 127, 128, 255]], np.uint8)
    Image.fromarray(arr).save(tmp_path / "m.png")
    with pytest.warns(MaskWarning, match="m.png: mask has 4 grey values"):
        assert read_mask(tmp_path / "m.png").tolist() == [[False, False, True, True]]
    assert read_mask(tmp_path / "m.png", threshold=100).tolist() == [[False, True, True, True]]
    Image.fromarray(np.array([[0, 0, 1, 1]], np.uint8)).save(tmp_path / "01.png")
    assert read_mask(tmp_path / "01.png").tolist() == [[False, False, True, True]]  # 0/1 is binary


def test_cli_check_exit_status(good, capsys):
    tmp_path, frame = good
    assert main(["manifest", "check", str(_write(tmp_path, frame))]) == 0
    frame.loc[0, "clinical"] = "gone.jpg"
    assert main(["manifest", "check", str(_write(tmp_path, frame))]) == 1
    assert "row 1, column 'clinical'" in capsys.readouterr().out


def test_validate_never_raises_for_data_problems(good):
    tmp_path, frame = good
    frame["case_id"] = "same"
    _, _, problems = validate_manifest(_write(tmp_path, frame))
    assert sum("duplicate case_id" in p.message for p in problems) == 1


def test_non_image_message_survives_ultralytics_pil_patch(tmp_path):
    """Importing ultralytics wraps PIL.Image.open to pip-install a HEIF plugin on unknown files;
    vitfeat imports it in one place (vitfeat.deep.yolo), which puts PIL's own opener back."""
    from vitfeat.deep.yolo import _ultralytics

    _ultralytics()

    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(ImageReadError, match="not an image file PIL can read"):
        read_image(tmp_path / "notes.jpg")
