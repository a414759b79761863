"""Physical units (issue #29): _mm/_mm2 versions of length and area features from pixels_per_mm."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from vitfeat.dataset import ManifestError
from vitfeat.featurize import describe_column, extract
from vitfeat.featurize.units import PIXEL_UNITS


def _render(folder, size: int) -> None:
    """The same irregular lesion (60 px radius at 200 px) with a soft edge, at ``size`` px."""
    s = size / 200
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    theta, r = np.arctan2(yy - size / 2, xx - size / 2), np.hypot(yy - size / 2, xx - size / 2)
    inside = r < (60 + 8 * np.cos(3 * theta) + 5 * np.sin(5 * theta)) * s
    soft = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 2 * s)[..., None]
    img = (np.array([170, 120, 90]) * (1 - soft) + np.array([235, 215, 200]) * soft).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "img.png"), img[..., ::-1])
    cv2.imwrite(str(folder / "mask.png"), inside.astype(np.uint8) * 255)


def _manifest(tmp_path, scales: dict):
    """Cases ``s<size>`` rendered at ``size`` px with their ``pixels_per_mm``; the manifest's path."""
    rows = []
    for case, scale in scales.items():
        _render(tmp_path / case, int(case[1:]))
        rows.append({"case_id": case, "clinical": f"{case}/img.png", "clinical_mask": f"{case}/mask.png",
                     "pixels_per_mm": scale})
    path = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_mm_features_agree_across_resolutions(tmp_path):
    man = _manifest(tmp_path, {"s200": 4.0, "s400": 8.0})  # the same lesion, 5 cm across, at two resolutions
    frame = extract(man, None, families=["shape", "border"], progress=False).frame.set_index("case_id")
    shape_mm = [c for c in frame.columns if c.startswith("clinical_shape_") and c.endswith(("_mm", "_mm2"))]
    assert sorted(shape_mm) == sorted(f"clinical_shape_{f}_mm{'2' if k == 'area' else ''}"
                                      for f, k in PIXEL_UNITS["shape"].items())
    for col in shape_mm + ["clinical_border_crossing_width_mm"]:
        a, b = frame.at["s200", col], frame.at["s400", col]
        assert abs(a - b) / abs(a) < 0.03, (col, a, b)
        px = col.rsplit("_mm", 1)[0]  # while the pixel values differ by the resolution (squared for areas)
        assert frame.at["s400", px] / frame.at["s200", px] > (3.5 if col.endswith("_mm2") else 1.8)
    assert 2.5 < frame.at["s200", "clinical_shape_max_diameter_mm"] / 10 < 4.0  # ~3.4 cm across
    # the scale is of the stored photo: shrinking it with max_side keeps the millimetres
    shrunk = extract(man, None, families=["shape"], progress=False, max_side=200).frame.set_index("case_id")
    assert abs(shrunk.at["s400", "clinical_shape_perimeter_mm"] / frame.at["s400", "clinical_shape_perimeter_mm"]
               - 1) < 0.03
    assert "in mm²" in describe_column("clinical_shape_mesh_area_mm2")


def test_flag_fills_rows_without_a_scale_and_no_scale_adds_nothing(tmp_path):
    man = _manifest(tmp_path, {"s200": 4.0, "s100": np.nan})
    frame = extract(man, None, families=["shape"], progress=False).frame.set_index("case_id")
    assert np.isnan(frame.at["s100", "clinical_shape_perimeter_mm"])
    flagged = extract(man, None, families=["shape"], progress=False, pixels_per_mm=2.0).frame.set_index("case_id")
    assert abs(flagged.at["s100", "clinical_shape_perimeter_mm"] - frame.at["s200", "clinical_shape_perimeter_mm"]) \
        / frame.at["s200", "clinical_shape_perimeter_mm"] < 0.03
    pd.read_csv(man).drop(columns=["pixels_per_mm"]).to_csv(man, index=False)
    plain = extract(man, None, families=["shape"], progress=False).frame
    assert not [c for c in plain.columns if c.endswith(("_mm", "_mm2"))]


@pytest.mark.parametrize("bad, message", [("abc", "'abc' is not a number"), ("0", "must be a positive"),
                                          ("-2.5", "must be a positive")])
def test_bad_pixels_per_mm_in_manifest_is_named(tmp_path, bad, message):
    man = _manifest(tmp_path, {"s100": 4.0, "s120": 4.0})
    frame = pd.read_csv(man, dtype=str)
    frame.loc[1, "pixels_per_mm"] = bad
    frame.to_csv(man, index=False)
    with pytest.raises(ManifestError, match=rf"row 2, column 'pixels_per_mm': .*{message}"):
        extract(man, None, families=["shape"], progress=False)


@pytest.mark.parametrize("bad", [0, -1.0, "x", float("nan")])
def test_bad_pixels_per_mm_argument_is_named(tmp_path, bad):
    man = _manifest(tmp_path, {"s100": np.nan})
    with pytest.raises(ValueError, match="--pixels-per-mm: pixels_per_mm"):
        extract(man, None, families=["shape"], progress=False, pixels_per_mm=bad)


def test_predict_extracts_with_the_recorded_scale(tmp_path):
    from vitfeat.featurize import read_features
    from vitfeat.pipelines.predict import extract_like_run

    man = _manifest(tmp_path, {"s100": np.nan})
    first = extract(man, tmp_path / "train.parquet", families=["shape"], progress=False, pixels_per_mm=2.0)
    assert first.provenance["pixels_per_mm"] == 2.0
    again, _ = read_features(extract_like_run(man, first.provenance, tmp_path / "new.parquet"))
    assert again["clinical_shape_perimeter_mm"].iloc[0] == first.frame["clinical_shape_perimeter_mm"].iloc[0]
