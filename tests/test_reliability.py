"""Reliability suite: malformed and unusual inputs. Each one either gets a message of the expected
category (ERROR = fatal, warning = non-fatal) naming its row/column and file, or is read correctly."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vitfeat.dataset import (ManifestEncodingError, MaskWarning, load_manifest, read_image, read_mask,
                             read_table, validate_manifest)

W, H = 48, 40


def _photo(path, size=(W, H), mode="RGB"):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (size[1], size[0], 3), np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def _lesion(size=(W, H)) -> np.ndarray:
    m = np.zeros(size[::-1], np.uint8)
    m[10:30, 12:36] = 255
    return m


def _save(path, arr):
    Image.fromarray(arr).save(path)
    return path


def _check(tmp_path, bad: dict, **kwargs):
    """Row 1 is a good case; row 2 is the case under test (columns given in ``bad``)."""
    good = {"case_id": "good", "clinical": _photo(tmp_path / "good.jpg").name,
            "clinical_mask": _save(tmp_path / "good.png", _lesion()).name, "label": "a"}
    row = {"case_id": "bad", "clinical": _photo(tmp_path / "other.jpg").name, "label": "b"} | bad
    path = tmp_path / "m.csv"
    pd.DataFrame([good, row]).to_csv(path, index=False)
    frame, _, problems = validate_manifest(path, folds=1, **kwargs)
    return frame, problems


def _only(problems, fatal: bool, row=2):
    """The problems of the case under test, which must all be of one category (and none elsewhere)."""
    assert all(p.row == row for p in problems), [str(p) for p in problems]
    assert problems and all(p.fatal == fatal for p in problems), [str(p) for p in problems]
    return " | ".join(str(p) for p in problems)


# ---------------------------------------------------------------------------------------------
# Image files: named errors for what cannot be used
# ---------------------------------------------------------------------------------------------


def _truncated_jpeg(path):
    buf = io.BytesIO()
    Image.fromarray(np.full((H, W, 3), 120, np.uint8)).save(buf, format="JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def _bomb_png(path):
    """A valid PNG header that declares 100000 x 100000 px (a decompression bomb), no pixel data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


BROKEN_IMAGES = {
    "truncated.jpg": (_truncated_jpeg, "runcated"),  # "Truncated File Read" or "truncated JPEG"
    "zero.jpg": (lambda p: p.write_bytes(b""), "not an image file"),
    "text.jpg": (lambda p: p.write_text("this is a text file\n"), "not an image file"),
    "bomb.png": (_bomb_png, "decompression-bomb"),
    "missing.jpg": (lambda p: None, "file not found"),
}


@pytest.mark.parametrize("name", sorted(BROKEN_IMAGES))
def test_broken_image_is_an_error_naming_row_column_and_file(tmp_path, name):
    make, words = BROKEN_IMAGES[name]
    make(tmp_path / name)
    _, problems = _check(tmp_path, {"clinical": name})
    text = _only(problems, fatal=True)
    assert words in text and name in text and "column 'clinical'" in text


@pytest.mark.parametrize("size", [(1, 1), (2, 400)])
def test_tiny_image_is_a_warning(tmp_path, size):
    _photo(tmp_path / "tiny.png", size=size)
    _, problems = _check(tmp_path, {"clinical": "tiny.png"})
    text = _only(problems, fatal=False)
    assert f"only {size[0]}x{size[1]} px" in text and "tiny.png" in text


def test_animated_gif_and_multipage_tiff_warn_that_the_first_frame_is_used(tmp_path):
    frames = [Image.fromarray(np.full((H, W, 3), v, np.uint8)) for v in (10, 200, 90)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    for name in ("anim.gif", "pages.tif"):
        _, problems = _check(tmp_path, {"clinical": name})
        text = _only(problems, fatal=False)
        assert "3 frames" in text and name in text
        assert read_image(tmp_path / name).shape == (H, W, 3)


# ---------------------------------------------------------------------------------------------
# Unusual images that are read correctly
# ---------------------------------------------------------------------------------------------


def test_cmyk_jpeg_is_read_as_rgb(tmp_path):
    Image.new("CMYK", (W, H), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # pure red in CMYK
    _, problems = _check(tmp_path, {"clinical": "cmyk.jpg"})
    assert problems == []
    rgb = read_image(tmp_path / "cmyk.jpg")
    assert rgb.shape == (H, W, 3) and rgb[..., 0].mean() > 200 and rgb[..., 1].mean() < 60


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    arr = np.tile(np.linspace(0, 65535, W).astype(np.uint16), (H, 1))
    Image.fromarray(arr).save(tmp_path / "deep.png")
    _, problems = _check(tmp_path, {"clinical": "deep.png"})
    assert problems == []
    img = read_image(tmp_path / "deep.png")
    assert img[0, 0, 0] == 0 and img[0, -1, 0] == 255 and 100 < img[0, W // 2, 0] < 155


def test_rgba_is_composited_over_white_and_palette_is_expanded(tmp_path):
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, : W // 2, 3] = 255  # left half opaque red, right half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    palette = Image.new("P", (W, H), 1)
    palette.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    palette.save(tmp_path / "palette.png")
    for name in ("alpha.png", "palette.png"):
        _, problems = _check(tmp_path, {"clinical": name})
        assert problems == []
    img = read_image(tmp_path / "alpha.png")
    assert tuple(img[0, 0]) == (255, 0, 0) and tuple(img[0, -1]) == (255, 255, 255)
    assert tuple(read_image(tmp_path / "palette.png")[0, 0]) == (0, 128, 0)


def test_exif_rotated_photo_matches_a_mask_of_its_displayed_size(tmp_path):
    img = Image.fromarray(np.full((H, W, 3), 90, np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display: shown as H x W
    img.save(tmp_path / "rotated.jpg", exif=exif)
    _save(tmp_path / "rotated.png", _lesion(size=(H, W)))
    _, problems = _check(tmp_path, {"clinical": "rotated.jpg", "clinical_mask": "rotated.png"})
    assert problems == []
    assert read_image(tmp_path / "rotated.jpg").shape == (W, H, 3)


# ---------------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------------


def _mask_case(tmp_path, arr, **kwargs):
    _photo(tmp_path / "photo.jpg", size=(arr.shape[1], arr.shape[0]))
    _save(tmp_path / "mask.png", arr)
    return _check(tmp_path, {"clinical": "photo.jpg", "clinical_mask": "mask.png"}, **kwargs)[1]


DEGENERATE_MASKS = {
    "empty": (np.zeros((H, W), np.uint8), "empty mask"),
    "full": (np.full((H, W), 255, np.uint8), "full mask"),
    "tiny": (np.pad(np.full((1, 3), 255, np.uint8), ((5, H - 6), (5, W - 8))), "mask of 3 px, under 16 px"),
    "inverted": (255 - _lesion(), "touches every image border"),
}


@pytest.mark.parametrize("name", sorted(DEGENERATE_MASKS))
def test_degenerate_mask_is_a_warning_naming_the_file(tmp_path, name):
    arr, words = DEGENERATE_MASKS[name]
    text = _only(_mask_case(tmp_path, arr), fatal=False)
    assert words in text and "mask.png" in text and "column 'clinical_mask'" in text


def test_inverted_mask_is_read_correctly_with_masks_inverted(tmp_path):
    problems = _mask_case(tmp_path, 255 - _lesion(), masks_inverted=True)
    assert [p for p in problems if p.row == 2] == []  # (the good row's mask, inverted, now warns)
    assert (read_mask(tmp_path / "mask.png", inverted=True) == (_lesion() > 0)).all()


def test_mask_of_wrong_size_is_an_error(tmp_path):
    _save(tmp_path / "small.png", _lesion(size=(W // 2, H)))
    _, problems = _check(tmp_path, {"clinical_mask": "small.png"})
    text = _only(problems, fatal=True)
    assert "mask size 24x40 differs from image size 48x40" in text and "small.png" in text


def test_zero_one_mask_is_binary(tmp_path):
    arr = (_lesion() > 0).astype(np.uint8)  # values 0/1: read as lesion where 1, not as empty
    assert _mask_case(tmp_path, arr) == []
    assert read_mask(tmp_path / "mask.png").sum() == (_lesion() > 0).sum()


def test_antialiased_mask_is_thresholded_at_half_maximum_with_a_warning(tmp_path):
    arr = _lesion().astype(np.float64)
    arr[9, 12:36] = arr[30, 12:36] = 100  # soft edges: grey values between 0 and 255
    arr[10:30, 11] = 200
    text = _only(_mask_case(tmp_path, arr.astype(np.uint8)), fatal=False)
    assert "4 grey values" in text and "127.5" in text
    with pytest.warns(MaskWarning, match="mask.png"):
        mask = read_mask(tmp_path / "mask.png")
    assert mask.sum() == (_lesion() > 0).sum() + 20  # the 200-valued column counts, the 100s do not
    assert read_mask(tmp_path / "mask.png", threshold=50).sum() == mask.sum() + 48


def test_rgb_mask_uses_its_maximum_channel_with_a_warning(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = _lesion()  # a red-on-black mask
    text = _only(_mask_case(tmp_path, rgb), fatal=False)
    assert "colour mask" in text
    with pytest.warns(MaskWarning):
        assert (read_mask(tmp_path / "mask.png") == (_lesion() > 0)).all()


# ---------------------------------------------------------------------------------------------
# Manifest tables
# ---------------------------------------------------------------------------------------------


def test_duplicate_ids_and_empty_labels_name_their_rows(tmp_path):
    _, problems = _check(tmp_path, {"case_id": "good", "label": None})
    texts = [str(p) for p in problems]
    assert any("duplicate case_id 'good' (rows 1, 2)" in t for t in texts)
    assert any(t.startswith("ERROR: row 2, column 'label': empty") for t in texts)


def test_one_class_target_and_classes_smaller_than_the_folds_warn(tmp_path):
    _photo(tmp_path / "x.jpg")
    one = tmp_path / "one.csv"
    pd.DataFrame({"case_id": ["a", "b"], "clinical": ["x.jpg", "x.jpg"], "label": ["s", "s"]}).to_csv(one, index=False)
    _, _, problems = validate_manifest(one)
    assert [p.fatal for p in problems] == [False] and "one class only ('s')" in str(problems[0])
    few = tmp_path / "few.csv"
    pd.DataFrame({"case_id": list("abcdefg"), "clinical": ["x.jpg"] * 7,
                  "label": ["s"] * 5 + ["n"] * 2}).to_csv(few, index=False)
    _, _, problems = validate_manifest(few, folds=5)
    assert len(problems) == 1 and not problems[0].fatal and "'n' (2) have fewer cases than 5 folds" in str(problems[0])


def _table(tmp_path, text: str, encoding: str, name="m.csv"):
    _photo(tmp_path / "x.jpg")
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_utf8_with_bom_is_read(tmp_path):
    path = _table(tmp_path, "case_id,clinical,label\nä1,x.jpg,s\n", "utf-8-sig")
    assert list(load_manifest(path).frame["case_id"]) == ["ä1"]


@pytest.mark.parametrize("encoding, text", [("latin-1", "café"), ("cp1252", "naïve “quoted”")])
def test_latin1_and_cp1252_name_the_file_encoding_and_option_then_read_with_it(tmp_path, encoding, text):
    path = _table(tmp_path, f"case_id,clinical,label\n{text},x.jpg,s\n", encoding)
    with pytest.raises(ManifestEncodingError) as info:
        read_table(path)
    message = str(info.value)
    assert str(path) in message and "--encoding" in message and "line 2" in message
    guess = message.split("pass --encoding ")[1].split(" ")[0]
    assert len(load_manifest(path, encoding=guess)) == 1  # the named encoding reads the file
    assert load_manifest(path, encoding=encoding).frame["case_id"].tolist() == [text]


def test_encoding_error_reaches_the_cli(tmp_path, capsys):
    from vitfeat.cli.main import main

    path = _table(tmp_path, "case_id,clinical,label\ncafé,x.jpg,s\n", "latin-1")
    assert main(["manifest", "check", str(path)]) != 0
    assert "--encoding" in capsys.readouterr().err
    assert main(["manifest", "check", str(path), "--encoding", "latin-1"]) == 0


def test_semicolon_separated_csv_is_read(tmp_path):
    path = _table(tmp_path, "case_id;clinical;label\na;x.jpg;s\nb;x.jpg;n\n", "utf-8")
    m = load_manifest(path, folds=1)
    assert m.frame["label"].tolist() == ["s", "n"] and m.frame["clinical"].str.endswith("x.jpg").all()


def test_paths_with_spaces_and_non_ascii_names_are_read(tmp_path):
    (tmp_path / "my photos").mkdir()
    _photo(tmp_path / "my photos" / "Lésion à gauche.jpg")
    _, problems = _check(tmp_path, {"clinical": "my photos/Lésion à gauche.jpg"})
    assert problems == []


def test_windows_backslashes_are_read_with_a_warning(tmp_path):
    (tmp_path / "imgs").mkdir()
    _photo(tmp_path / "imgs" / "a.jpg")
    frame, problems = _check(tmp_path, {"clinical": "imgs\\a.jpg"})
    assert len(problems) == 1 and not problems[0].fatal and "backslashes" in str(problems[0])
    assert frame.loc[1, "clinical"] == str(tmp_path / "imgs" / "a.jpg")


def test_symlink_leaving_the_root_is_an_error_and_not_read(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (tmp_path / "outside.jpg").write_text("not an image: an error here would mean it was opened")
    os.symlink(tmp_path / "outside.jpg", root / "link.jpg")
    _, problems = _check(root, {"clinical": "link.jpg"})
    text = _only(problems, fatal=True)
    assert len(problems) == 1 and "escapes the dataset root" in text and "not read" in text


def test_relative_path_leaving_the_root_is_not_read_unless_allowed(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (tmp_path / "secret.jpg").write_text("not an image")
    _, problems = _check(root, {"clinical": "../secret.jpg"})
    assert len(problems) == 1 and "'../secret.jpg' escapes" in str(problems[0]) and problems[0].row == 2
    _, problems = _check(root, {"clinical": "../secret.jpg"}, allow_outside_root=True)
    assert len(problems) == 1 and "not an image file" in str(problems[0])  # allowed: now opened


@pytest.mark.parametrize("box, words", [("1,2,3", "needs 4 comma-separated numbers"),
                                        ("10,5,4,20", "x0 < x1"), ("a,b,c,d", "not 4 numbers"),
                                        ("0,0,60,20", "not inside the 48x40 clinical image")])
def test_bad_boxes_are_errors(tmp_path, box, words):
    _, problems = _check(tmp_path, {"clinical_box": box})
    text = _only(problems, fatal=True)
    assert words in text and "column 'clinical_box'" in text


def test_two_data_roots_are_an_error(tmp_path):
    _photo(tmp_path / "x.jpg")
    path = tmp_path / "m.csv"
    frame = pd.DataFrame({"case_id": ["a", "b"], "clinical": ["x.jpg"] * 2, "data_root": ["/a", "/b"]})
    frame.to_csv(path, index=False)
    _, _, problems = validate_manifest(path, require_targets=False)
    assert len(problems) == 1 and problems[0].fatal and "2 different data roots" in str(problems[0])


def test_extract_skip_invalid_extracts_valid_rows_and_records_the_others(tmp_path):
    """One unreadable row does not stop the run: it is written with its reason in `error`."""
    from vitfeat.cli.main import main
    from vitfeat.featurize.engine import extract
    from vitfeat.featurize.table import read_features

    rows = [{"case_id": f"c{i}", "clinical": _photo(tmp_path / f"c{i}.jpg", size=(96, 80)).name,
             "clinical_mask": _save(tmp_path / f"c{i}.png", _lesion(size=(96, 80))).name, "label": "ab"[i % 2]}
            for i in range(3)]
    (tmp_path / "broken.jpg").write_text("not an image")
    rows.append({"case_id": "broken", "clinical": "broken.jpg", "label": "a"})
    rows.append({"case_id": "outside", "clinical": "../elsewhere.jpg", "label": "b"})
    path = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    with pytest.raises(Exception, match="broken.jpg"):
        extract(path, families=["shape"], progress=False)
    result = extract(path, families=["shape"], progress=False, skip_invalid=True)
    table = result.frame.set_index("case_id")
    assert list(table.index) == ["c0", "c1", "c2", "broken", "outside"]
    assert table.loc[["c0", "c1", "c2"], "error"].eq("").all()
    assert "not an image file" in table.loc["broken", "error"] and "escapes" in table.loc["outside", "error"]
    assert table.loc["broken", "label"] == "a" and result.n_failed == 2
    shape_cols = [c for c in table.columns if c.startswith("clinical_")]
    assert shape_cols and table.loc["c0", shape_cols].notna().any() and table.loc["broken", shape_cols].isna().all()
    out = tmp_path / "f.parquet"
    assert main(["extract", str(path), "-o", str(out), "--families", "shape", "--skip-invalid", "--no-progress"]) == 0
    assert set(read_features(out)[0]["case_id"]) == {"c0", "c1", "c2", "broken", "outside"}


def test_import_with_masks_inverted_rewrites_binary_masks_that_check_accepts(tmp_path):
    from vitfeat.cli.main import main

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    _photo(root / "images" / "a.jpg")
    _save(root / "masks" / "a.png", 255 - _lesion())  # lesion drawn black
    out = tmp_path / "m.csv"
    assert main(["manifest", "import", str(root), "-o", str(out), "--masks-inverted"]) == 0
    manifest = load_manifest(out, require_targets=False)
    assert manifest.problems == []  # no "touches every border" warning: the rewritten mask is right
    assert (read_mask(manifest.frame.loc[0, "clinical_mask"]) == (_lesion() > 0)).all()


def test_degenerate_mask_warnings_reach_the_extract_summary_and_provenance(tmp_path):
    from vitfeat.featurize.engine import extract

    _photo(tmp_path / "a.jpg", size=(96, 80))
    _save(tmp_path / "a.png", np.zeros((80, 96), np.uint8))  # empty given mask
    path = tmp_path / "m.csv"
    pd.DataFrame([{"case_id": "a", "clinical": "a.jpg", "clinical_mask": "a.png"}]).to_csv(path, index=False)
    result = extract(path, families=["shape"], progress=False)
    assert any("row 1, column 'clinical_mask'" in w and "empty mask" in w for w in result.warnings)
    assert "1 warning(s) from the manifest check" in result.summary() and "a.png: empty mask" in result.summary()
    assert result.provenance["manifest_warnings"] == result.warnings
