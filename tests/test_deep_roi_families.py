"""ROI crops and the `deep:` feature family (spec parsing, columns, missing Wood's, cache version)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vitfeat.deep.families import DeepFeatures, parse_spec  # noqa: E402
from vitfeat.deep.roi import bbox_from_mask, crop_roi, expand_box, select_roi  # noqa: E402
from vitfeat.featurize.registry import CaseArrays, get_family  # noqa: E402

SPEC = "deep:test_vit@random"


def test_bbox_and_square_margin():
    mask = np.zeros((100, 200), bool)
    mask[40:60, 50:90] = True  # 40 wide, 20 high
    assert bbox_from_mask(mask) == (50, 40, 90, 60)
    assert bbox_from_mask(np.zeros((5, 5), bool)) is None
    x0, y0, x1, y1 = expand_box((50, 40, 90, 60), mask.shape, margin=0.25, square=True)
    assert x1 - x0 == y1 - y0 == 60  # 40 + 2*10 wide, grown to a square
    assert (x0 + x1) / 2 == 70 and (y0 + y1) / 2 == 50  # centred on the lesion
    # Near the border the square shifts inwards and stays inside the image.
    assert expand_box((0, 0, 30, 10), (100, 200), margin=0.0) == (0, 0, 30, 30)


def test_roi_fallbacks_to_full_image():
    img = np.zeros((80, 120, 3), np.uint8)
    assert select_roi(img.shape, None).source == "full"
    assert select_roi(img.shape, np.zeros((80, 120), bool)).source == "full"
    tiny = np.zeros((80, 120), bool)
    tiny[10:15, 10:15] = True  # under the 32 px minimum: a detector artefact, not a lesion region
    assert select_roi(img.shape, tiny).box == (0, 0, 120, 80)
    with pytest.raises(ValueError, match="mask shape"):
        select_roi(img.shape, np.ones((10, 10), bool))


def test_crop_roi_takes_the_lesion():
    img = np.zeros((120, 160, 3), np.uint8)
    mask = np.zeros((120, 160), bool)
    mask[30:90, 50:110] = True
    img[mask] = 255
    crop, roi = crop_roi(img, mask, margin=0.0, size=32)
    assert crop.shape == (32, 32, 3) and roi.source == "mask"
    assert crop.min() == 255  # only lesion pixels: the crop is the lesion, not the whole image
    full, _ = crop_roi(img, None, size=32)
    assert full.mean() < crop.mean()


def test_parse_spec():
    s = parse_spec("deep:resnet50@C:/data/w,eights.safetensors:roi=full:margin=0.3")
    assert (s.backbone, s.weights, s.options["roi"], s.options["margin"]) == \
        ("resnet50", "C:/data/w,eights.safetensors", "full", 0.3)
    assert parse_spec("deep:convnextv2_tiny").weights == "hub"
    assert parse_spec("deep:resnet50:roi=yolo:runs/y").roi_model == "runs/y"
    with pytest.raises(ValueError, match="unknown option"):
        parse_spec("deep:resnet50@random:colour=1")
    with pytest.raises(ValueError, match="roi must be"):
        parse_spec("deep:resnet50@random:roi=boxes")


def _case(case_id, with_wood=True, seed=0):
    rng = np.random.default_rng(seed)
    clinical = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    mask = np.zeros((96, 96), bool)
    mask[20:70, 30:80] = True
    wood = rng.integers(0, 256, (90, 100, 3), dtype=np.uint8) if with_wood else None
    return CaseArrays(case_id=case_id, clinical=clinical, wood=wood, clinical_mask=mask,
                      wood_mask=None)


def test_deep_family_through_registry():
    family = get_family(SPEC)
    assert family.batch_func is not None and "random" in family.version
    with pytest.warns(UserWarning, match="RANDOM"):
        single = family(_case("a"))
    clinical = sorted(k for k in single if k.startswith("clinical_deep_test_vit_"))
    wood = sorted(k for k in single if k.startswith("wood_deep_test_vit_"))
    assert len(clinical) == len(wood) == 64 and len(single) == 128
    assert clinical[0] == "clinical_deep_test_vit_000" and clinical[-1] == "clinical_deep_test_vit_063"
    assert np.isfinite(list(single.values())).all()
    rows = family.batch_func([_case("a"), _case("b", with_wood=False, seed=1)])
    np.testing.assert_allclose([rows[0][k] for k in clinical], [single[k] for k in clinical], rtol=1e-5, atol=1e-5)
    assert all(np.isnan(rows[1][k]) for k in wood)  # no Wood's photo: missing values, not an error
    assert np.isfinite([rows[1][k] for k in clinical]).all()


def test_version_tracks_weights_roi_and_size(tmp_path):
    import timm

    path = tmp_path / "w.pth"
    torch.save(timm.create_model("test_vit").state_dict(), path)
    base = DeepFeatures(parse_spec(f"deep:test_vit@{path}")).version
    assert DeepFeatures(parse_spec(f"deep:test_vit@{path}:roi=full")).version != base
    assert DeepFeatures(parse_spec(f"deep:test_vit@{path}:size=96")).version != base
    torch.manual_seed(5)
    torch.save(timm.create_model("test_vit").state_dict(), path)
    assert DeepFeatures(parse_spec(f"deep:test_vit@{path}")).version != base


def test_same_backbone_twice_needs_a_name_and_then_writes_separate_columns():
    from vitfeat.featurize.engine import resolve_families

    with pytest.raises(ValueError, match=r"both write the columns clinical_deep_test_vit_\*.*:name="):
        resolve_families([SPEC, f"{SPEC}:roi=full"])
    with pytest.raises(ValueError, match="name must be"):
        parse_spec(f"{SPEC}:name=Full View")
    named = f"{SPEC}:roi=full:name=test_vit_full"
    families = resolve_families([SPEC, named])
    assert families[0][1][1] != families[1][1][1]  # versions differ: cached values are keyed by column
    with pytest.warns(UserWarning, match="RANDOM"):
        row = get_family(named)(_case("a"))
    assert "clinical_deep_test_vit_full_000" in row and not any(k.startswith("clinical_deep_test_vit_0") for k in row)


class _FixedBoxDetector:
    """Stands in for the YOLO model (trained and tested in test_deep_yolo): one known box."""

    box = (40, 8, 88, 56)

    def detect(self, image):
        from types import SimpleNamespace

        return SimpleNamespace(masks=None, best_box=lambda: self.box)


def test_yolo_roi_crops_around_the_detected_box_not_the_full_image(tmp_path):
    """roi=yolo embeds the detector's box (with margin), which a full-image embedding is not."""
    model = tmp_path / "det.pt"
    model.write_bytes(b"weights")  # hashed into the family version; the detector is stood in below
    family = get_family(f"deep:test_vit@random:roi=yolo:{model}:margin=0")
    features = family.func
    features._roi_model = _FixedBoxDetector()
    case = _case("a", with_wood=False)
    with pytest.warns(UserWarning):  # random weights are announced when the model is built
        size = features.embedder.img_size
    expected = crop_roi(case.clinical, box=_FixedBoxDetector.box, margin=0.0, size=size)[0]
    full = crop_roi(case.clinical, size=size)[0]
    np.testing.assert_array_equal(features.crop(case, "clinical"), expected)
    assert not np.array_equal(expected, full)
    row = family(case)
    vector = np.array([v for k, v in row.items() if k.startswith("clinical_")])
    np.testing.assert_allclose(vector, features.embedder.embed([expected])[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(vector, features.embedder.embed([full])[0], rtol=1e-3, atol=1e-4)
    assert np.isnan([v for k, v in row.items() if k.startswith("wood_")]).all()


def test_mask_roi_prefers_the_manifest_box_to_the_masks_bounding_box():
    """An annotated box (manifest ``clinical_box``) decides the crop; without one the mask does."""
    family = get_family(f"{SPEC}:margin=0")
    features = family.func
    case = _case("a", with_wood=False)
    with pytest.warns(UserWarning):  # random weights are announced when the model is built
        size = features.embedder.img_size
    from_mask = crop_roi(case.clinical, mask=case.clinical_mask, margin=0.0, size=size)[0]
    np.testing.assert_array_equal(features.crop(case, "clinical"), from_mask)
    case.boxes = {"clinical": (5.0, 50.0, 45.0, 90.0)}
    from_box = crop_roi(case.clinical, box=case.boxes["clinical"], margin=0.0, size=size)[0]
    assert not np.array_equal(from_box, from_mask)
    np.testing.assert_array_equal(features.crop(case, "clinical"), from_box)


def test_engine_scales_manifest_boxes_with_max_side(tmp_path):
    """Boxes are in pixels of the photo on disk; after --max-side they must follow the photo."""
    from PIL import Image

    from vitfeat.dataset import load_manifest
    from vitfeat.featurize.engine import load_case_arrays

    Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(tmp_path / "c.png")
    (tmp_path / "m.csv").write_text('case_id,clinical,clinical_box\na,c.png,"20,10,120,90"\n')
    case = next(load_manifest(tmp_path / "m.csv", require_targets=False).cases())
    arrays = load_case_arrays(case, {"clinical": "auto"}, max_side=100)
    assert arrays.clinical.shape[:2] == (50, 100)
    np.testing.assert_allclose(arrays.box("clinical"), (10, 5, 60, 45))
    assert arrays.box("wood") is None
