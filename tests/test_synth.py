"""Synthetic pairs: deterministic, and the images show the latent parameters they claim."""

from __future__ import annotations

import filecmp

import pandas as pd
import pytest

from vitfeat.cli.main import main
from vitfeat.dataset import load_manifest, read_image, read_mask
from vitfeat.synth import generate


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_same_arguments_give_identical_files(tmp_path):
    a = generate(tmp_path / "a", n=5, seed=3, size=96, jobs=1, progress=False).parent
    b = generate(tmp_path / "b", n=5, seed=3, size=96, jobs=2, progress=False).parent  # workers don't matter
    assert _files(a) == _files(b) and len(_files(a)) > 20
    for rel in _files(a):
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel
    c = generate(tmp_path / "c", n=5, seed=4, size=96, jobs=1, progress=False).parent
    assert not filecmp.cmp(a / "images/case0001_clinical.jpg", c / "images/case0001_clinical.jpg", shallow=False)


def test_outputs_are_complete_and_valid(synth_small):
    m = load_manifest(synth_small)
    truth = pd.read_csv(synth_small.parent / "truth.csv")
    assert len(m) == 24 and set(m.frame["label"]) == {"stable", "active"}
    needed = {"label", "area_ratio", "blur_px", "n_satellites", "wood_contrast", "skin_type", "patient_id"}
    assert needed <= set(truth.columns)
    assert truth["skin_type"].between(1, 6).all()
    for case in m.cases():
        assert case.wood and case.clinical_mask and case.wood_mask
        for stem in (f"{case.case_id}_clinical", f"{case.case_id}_wood"):
            assert (synth_small.parent / "labels" / f"{stem}.txt").read_text().strip()
            assert (synth_small.parent / "labels-boxes" / f"{stem}.txt").read_text().strip()


def test_masks_follow_the_recorded_geometry(synth_small):
    m = load_manifest(synth_small)
    truth = pd.read_csv(synth_small.parent / "truth.csv").set_index("case_id")
    for case in m.cases():
        t = truth.loc[case.case_id]
        clinical, wood = read_mask(case.clinical_mask), read_mask(case.wood_mask)
        assert clinical.sum() == t.clinical_area_px + t.satellite_area_px
        # the Wood's camera scaled the scene by wood_scale: areas scale by its square
        expected_wood = (t.wood_area_px + t.satellite_area_px) * t.wood_scale ** 2
        assert wood.sum() == pytest.approx(expected_wood, rel=0.04)
        assert t.wood_area_px / t.clinical_area_px == pytest.approx(t.area_ratio, rel=1e-3)
        # the photos are not pixel aligned
        iou = (clinical & wood).sum() / (clinical | wood).sum()
        assert iou < 0.97


def test_stage_signs_separate_the_classes(tmp_path):
    generate(tmp_path, n=40, seed=1, size=96, difficulty=0.0, jobs=1, progress=False)
    truth = pd.read_csv(tmp_path / "truth.csv")
    active, stable = truth[truth.label == "active"], truth[truth.label == "stable"]
    assert active.area_ratio.min() > stable.area_ratio.max()
    assert active.blur_px.min() > stable.blur_px.max()
    assert stable.n_satellites.max() == 0 and active.n_satellites.mean() > 1
    assert (stable.hyper_rim > 0).any() and (active.hyper_rim == 0).all()
    # with full difficulty the signs no longer tell the classes apart as cleanly
    generate(tmp_path / "hard", n=40, seed=1, size=96, difficulty=1.0, jobs=1, progress=False)
    hard = pd.read_csv(tmp_path / "hard" / "truth.csv")
    assert hard[hard.label == "active"].blur_px.min() < hard[hard.label == "stable"].blur_px.max()


def test_lesion_is_lighter_clinically_and_fluoresces_under_wood(synth_small):
    m = load_manifest(synth_small)
    for case in list(m.cases())[:8]:
        img, mask = read_image(case.clinical).astype(float), read_mask(case.clinical_mask)
        assert img[mask].mean() > img[~mask].mean() + 10
        wood, wmask = read_image(case.wood).astype(float), read_mask(case.wood_mask)
        assert wood[wmask].mean() > wood[~wmask].mean() + 20  # bright fluorescence on a dark field
        assert wood[~wmask][:, 2].mean() > wood[~wmask][:, 1].mean()  # violet background


def test_class_balance_patients_and_label_noise(tmp_path):
    generate(tmp_path, n=60, seed=2, size=64, active_fraction=0.2, cases_per_patient=3, label_noise=0.2,
             jobs=1, progress=False)
    truth = pd.read_csv(tmp_path / "truth.csv")
    assert truth.patient_id.nunique() < 40  # several cases per patient
    assert (truth.label == "active").mean() < 0.45
    flipped = (truth.label != truth.observed_label).mean()
    assert 0.05 < flipped < 0.4
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    assert (manifest.label == truth.observed_label).all()


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    assert main(["synth", str(tmp_path), "--n", "2", "--difficulty", "1.5"]) == 2
    assert "difficulty must be within [0, 1]" in capsys.readouterr().err
