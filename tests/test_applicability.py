"""The applicability check (image-quality gates, k-NN distance with an in-fold threshold) and the
conformal prediction sets: the library functions, then fit -> run -> predict on a small synthetic run."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vitfeat.featurize.quality import QualityGates, image_quality
from vitfeat.pipelines.applicability import Applicability
from vitfeat.pipelines.conformal import conformal_quantile, cross_conformal, lac_scores, prediction_sets


def _skin_photo(rng, size=160, tone=(205, 150, 120)):
    """A textured skin-coloured photo with a lighter (depigmented) patch."""
    img = np.clip(np.array(tone, float) + rng.normal(0, 12, (size, size, 3)), 0, 255)
    img = np.asarray(Image.fromarray(img.astype(np.uint8)).resize((size, size)))
    img = img.astype(float)
    c = size // 2 + rng.integers(-10, 10)
    yy, xx = np.mgrid[:size, :size]
    img[(yy - c) ** 2 + (xx - c) ** 2 < (size // 5) ** 2] += 35
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def gates():
    rng = np.random.default_rng(0)
    return QualityGates().fit({"clinical": [image_quality(_skin_photo(rng, tone=(200 + rng.integers(-25, 25),
                                                                                 145 + rng.integers(-20, 20), 120)))
                                            for _ in range(40)]})


def test_quality_gates_pass_a_photo_like_training_and_name_what_fails(gates):
    rng = np.random.default_rng(1)
    assert gates.check("clinical", image_quality(_skin_photo(rng))) == []
    blank = np.full((160, 160, 3), 200, np.uint8)
    assert any("sharpness" in r for r in gates.check("clinical", image_quality(blank)))
    noise = rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)
    assert any("sharpness" in r and "above" in r for r in gates.check("clinical", image_quality(noise)))
    grey = np.repeat(np.mean(_skin_photo(rng), axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    assert any("colourfulness" in r and "below" in r for r in gates.check("clinical", image_quality(grey)))
    wood_like = _skin_photo(rng, tone=(90, 70, 190))  # blue-violet, as under a Wood's lamp
    assert any("yellow-blue" in r for r in gates.check("clinical", image_quality(wood_like)))
    tiny = gates.check("clinical", image_quality(_skin_photo(rng, size=8)))
    assert tiny and "too small" in tiny[0]
    big = gates.check("clinical", image_quality(_skin_photo(rng, size=400)))
    assert any("longest side is 400 px" in r for r in big)
    again = QualityGates.from_dict(json.loads(json.dumps(gates.to_dict())))
    assert again.check("clinical", image_quality(grey)) == gates.check("clinical", image_quality(grey))


def _table(rng, n, p=12, shift=0.0):
    X = rng.normal(size=(n, p)) * np.linspace(1, 50, p)  # features on very different scales
    X[:, :4] += shift
    return X


FEATURES = [f"clinical_color_f{i}" for i in range(4)] + [f"clinical_shape_f{i}" for i in range(4)] + \
           [f"wood_texture_f{i}" for i in range(4)]


def test_distance_threshold_flags_about_five_percent_of_new_in_distribution_cases():
    rng = np.random.default_rng(0)
    check = Applicability.fit(_table(rng, 300), FEATURES)
    ins, _ = check.assess(_table(rng, 2000))
    assert 0.02 <= 1 - ins.mean() <= 0.08
    far, why = check.assess(_table(rng, 50, shift=12.0))
    assert (~far).all()
    assert all("clinical-photo color features lie far outside" in w for w in why)


def test_a_patients_other_cases_do_not_count_as_its_neighbours():
    """With every patient photographed six times, a threshold from plain leave-one-out distances
    (the 5th neighbour is a twin) would be near zero and flag most new patients; the patient-aware one does not."""
    rng = np.random.default_rng(1)
    base = _table(rng, 60)
    X = np.repeat(base, 6, axis=0) + rng.normal(scale=0.01, size=(360, 12))
    patients = np.repeat(np.arange(60), 6)
    new = _table(rng, 1000)
    grouped = 1 - Applicability.fit(X, FEATURES, patients).assess(new)[0].mean()
    naive = 1 - Applicability.fit(X, FEATURES).assess(new)[0].mean()
    assert grouped <= 0.1 < 0.5 < naive


def test_missing_features_and_failed_cases_are_out_of_scope_and_the_check_round_trips(tmp_path):
    rng = np.random.default_rng(2)
    X = _table(rng, 60)
    X[:, -1] = np.nan  # a feature the training cases never had is ignored
    check = Applicability.fit(X, FEATURES)
    new = _table(rng, 3)
    new[1, :8] = np.nan
    ins, why = check.assess(new, errors=["", "", "image unreadable"])
    assert not ins[1] and "could not be measured" in why[1]
    assert not ins[2] and "image unreadable" in why[2]
    check.save(tmp_path)
    meta = {"applicability": json.loads(json.dumps(check.to_json())), "feature_columns": FEATURES}
    again = Applicability.load(tmp_path, meta)
    np.testing.assert_allclose(again.distance(new), check.distance(new), rtol=1e-5)
    assert list(again.assess(new)[0]) == list(check.assess(new)[0])


def test_conformal_quantile_rank_and_sets():
    scores = np.arange(1, 11) / 10
    assert conformal_quantile(scores, 0.9) == 1.0  # rank ceil(11 * 0.9) = 10
    assert conformal_quantile(scores, 0.5) == 0.6  # rank ceil(11 * 0.5) = 6
    assert conformal_quantile(scores[:5], 0.9) == np.inf  # too few scores: every class
    member = prediction_sets(np.array([[0.9, 0.1], [0.55, 0.45], [np.nan, np.nan]]), 0.6)
    assert member.tolist() == [[True, False], [True, True], [False, False]]
    np.testing.assert_allclose(lac_scores(np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([0, 0])), [0.1, 0.7])


def test_cross_conformal_covers_at_the_target_rate_and_matches_mapie():
    from mapie.classification import SplitConformalClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    n = 3000
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] + rng.normal(scale=1.0, size=n) > 0).astype(int)
    model = LogisticRegression().fit(x[:500], y[:500])
    proba = model.predict_proba(x[500:])
    classes = ["a", "b"]
    oof = pd.DataFrame({"repeat": 0, "fold": np.arange(n - 500) % 5, "case_id": np.arange(n - 500).astype(str),
                        "y_true": np.array(classes)[y[500:]], "proba_a": proba[:, 0], "proba_b": proba[:, 1]})
    res = cross_conformal(oof, classes, 0.9)
    assert 0.88 <= res["empirical_coverage"] <= 0.93
    assert 0 < res["two_class_share"] < 1
    # same sets as MAPIE's split-conformal LAC on the same calibration cases (ours never empty)
    cal, test = slice(500, 2000), slice(2000, n)
    mapie = SplitConformalClassifier(model, confidence_level=0.9, conformity_score="lac", prefit=True)
    mapie.conformalize(x[cal], y[cal])
    theirs = mapie.predict_set(x[test])[1][:, :, 0]
    q = conformal_quantile(lac_scores(model.predict_proba(x[cal]), y[cal]), 0.9)
    ours = prediction_sets(model.predict_proba(x[test]), q)
    nonempty = theirs.any(axis=1)
    assert nonempty.mean() > 0.5
    np.testing.assert_array_equal(ours[nonempty], theirs[nonempty])


# ---- fit -> run -> predict -------------------------------------------------------------------

@pytest.fixture(scope="module")
def synth_run(tmp_path_factory):
    from tests.test_app import make_synth_run

    root = tmp_path_factory.mktemp("scope")
    manifest, run = make_synth_run(root)
    return manifest, run


def test_fit_records_the_check_and_predict_flags_a_blank_photo(synth_run, tmp_path):
    from vitfeat.pipelines.predict import predict_run

    manifest, run = synth_run
    meta = json.loads((run / "run.json").read_text())
    scope = meta["applicability"]
    assert scope["needs"] == {"modalities": ["clinical", "wood"], "wood_share": 1.0, "mask_source": "given"}
    assert scope["oof_assessed"] == 40 and 0 <= scope["oof_flagged"] <= 8
    assert set(scope["oof_effect"]["label"]) == {"all", "in_scope"}
    assert meta["conformal"]["label"]["coverage"] == 0.9
    assert (run / "applicability.npz").is_file()
    flags = pd.read_csv(run / "applicability_oof.csv")
    assert len(flags) == 40 and (~flags["in_scope"]).sum() == scope["oof_flagged"]
    report = (run / "report.md").read_text()
    assert "When the model cannot answer" in report and f"{scope['oof_flagged']} of 40 cases" in report

    data = manifest.parent
    first = pd.read_csv(manifest).iloc[0]
    Image.new("RGB", (128, 128), (200, 160, 140)).save(data / "blank.png")
    cases = pd.DataFrame([{"case_id": "same", "clinical": first["clinical"], "wood": first["wood"]},
                          {"case_id": "blank", "clinical": "blank.png", "wood": first["wood"]}])
    cases.to_csv(data / "probe.csv", index=False)
    out = predict_run(run, data / "probe.csv", tmp_path / "pred.csv").set_index("case_id")
    assert bool(out.at["same", "in_scope"]) and out.at["same", "scope_reason"] == ""
    assert not out.at["blank", "in_scope"] and "sharpness" in out.at["blank", "scope_reason"]
    assert out.at["blank", "label_pred"] in ("active", "stable")  # still written; the flag says not to trust it
    assert out.at["same", "label_prediction_set"] in ("{active}", "{stable}", "{active, stable}")


def test_a_swapped_applicability_file_is_refused(synth_run, tmp_path):
    import shutil

    from vitfeat.pipelines.predict import predict_run

    manifest, run = synth_run
    copy = shutil.copytree(run, tmp_path / "run")
    with np.load(copy / "applicability.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["reference"] = arrays["reference"] * 0  # every case would look like the training cases' centre
    with open(copy / "applicability.npz", "wb") as fh:
        np.savez_compressed(fh, **arrays)
    with pytest.raises(ValueError, match="applicability.npz"):
        predict_run(copy, manifest, tmp_path / "pred.csv")


def test_a_run_s_check_is_read_once_and_again_when_its_file_changes(tmp_path):
    rng = np.random.default_rng(5)
    check = Applicability.fit(_table(rng, 40), FEATURES)
    check.save(tmp_path)
    meta = {"applicability": json.loads(json.dumps(check.to_json())), "feature_columns": FEATURES}
    first, second = Applicability.load(tmp_path, meta), Applicability.load(tmp_path, meta)
    assert first.reference is second.reference  # predictions case after case do not re-read the file
    with pytest.raises(ValueError):
        first.reference[0, 0] = 1.0  # shared between calls, so read-only
    other = Applicability.fit(_table(rng, 40) + 5.0, FEATURES)
    other.save(tmp_path)
    os.utime(tmp_path / "applicability.npz", ns=(1, 1))  # a new version even within the clock's resolution
    again = Applicability.load(tmp_path, meta)
    np.testing.assert_allclose(again.center, other.center)
