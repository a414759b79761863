"""Calibration slope/intercept that converge for extreme and separable predictions (issue #28): checked
against statsmodels' Logit and GLM with an offset, on well-calibrated, over- and under-confident and
LightGBM-like predictions (many at or near 0 and 1)."""

import numpy as np
import pytest
import statsmodels.api as sm

from vitfeat.evaluation.calibration import ALT_CLIP, CLIP, clip_sensitivity, recalibration


def _predictions(kind: str, n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    true_p = rng.uniform(0.02, 0.98, n)
    y = rng.uniform(size=n) < true_p
    logit = np.log(true_p / (1 - true_p))
    if kind == "calibrated":
        p = 1 / (1 + np.exp(-logit))
    elif kind == "overconfident":
        p = 1 / (1 + np.exp(-3 * logit))
    elif kind == "underconfident":
        p = 1 / (1 + np.exp(-0.4 * logit))
    elif kind == "lightgbm-like":  # boosted trees: most outputs within 1e-4 of 0 or 1, some exactly 0/1
        p = 1 / (1 + np.exp(-9 * logit + rng.normal(0, 2, n)))
        p[rng.uniform(size=n) < 0.05] = 1.0
        p[rng.uniform(size=n) < 0.05] = 0.0
    else:  # "extreme": float64 probabilities below 1e-12
        p = 1 / (1 + np.exp(-30 * logit))
    return y, p


def _reference(y, p, clip):
    z = np.log(np.clip(p, clip, 1 - clip)) - np.log(np.clip(1 - p, clip, 1 - clip))
    yf = y.astype(float)
    logit = sm.Logit(yf, sm.add_constant(z)).fit(disp=0, method="newton", tol=1e-12, maxiter=500)
    glm = sm.GLM(yf, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=z).fit(tol=1e-12)
    return logit.params[1], glm.params[0]


@pytest.mark.parametrize("kind", ["calibrated", "overconfident", "underconfident", "lightgbm-like", "extreme"])
@pytest.mark.parametrize("clip", [CLIP, ALT_CLIP])
def test_slope_and_intercept_match_statsmodels(kind, clip):
    y, p = _predictions(kind)
    fit = recalibration(y, p, clip)
    slope, intercept = _reference(y, p, clip)
    assert fit["status"] == "ok"
    assert fit["slope"] == pytest.approx(slope, abs=1e-4)
    assert fit["intercept"] == pytest.approx(intercept, abs=1e-4)


def test_overconfident_predictions_get_a_slope_below_one():
    assert recalibration(*_predictions("overconfident", n=3000))["slope"] == pytest.approx(1 / 3, rel=0.15)
    assert recalibration(*_predictions("underconfident", n=3000))["slope"] == pytest.approx(2.5, rel=0.15)


def test_separable_predictions_are_reported_not_nan_silently():
    y = np.array([0, 0, 0, 1, 1, 1], bool)
    p = np.array([0.0, 0.1, 0.2, 0.8, 0.9, 1.0])
    fit = recalibration(y, p)
    assert fit["status"] == "separated" and np.isnan(fit["slope"])
    assert np.isfinite(fit["intercept"])  # calibration-in-the-large still exists
    assert recalibration(y[:3], p[:3])["status"] == "one class"


def test_the_clip_is_flagged_when_one_case_at_one_moves_the_slope():
    y, p = _predictions("calibrated", n=200, seed=4)
    p = p.copy()
    wrong = np.flatnonzero(~y)[0]
    p[wrong] = 1.0  # a confident error: logit 13.8 at the 1e-6 clip, 34.5 at 1e-15
    flagged = clip_sensitivity(y, p)
    assert flagged["n_clipped"] == 1 and flagged["clip_matters"]
    assert flagged["slope_alt"] < flagged["slope"]
    assert not clip_sensitivity(*_predictions("calibrated", n=200, seed=4))["clip_matters"]


def test_single_calibration_is_one_model_and_ensemble_one_per_inner_fold():
    from sklearn.linear_model import LogisticRegression

    from vitfeat.pipelines.operating import GroupedCalibratedClassifier, parse_calibrate

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] + rng.normal(0, 1, 120) > 0).astype(int)
    groups = np.arange(120) // 2
    single = GroupedCalibratedClassifier(LogisticRegression(), "sigmoid").fit(X, y, groups=groups)
    ensemble = GroupedCalibratedClassifier(LogisticRegression(), "sigmoid:ensemble").fit(X, y, groups=groups)
    assert len(single.calibrated_.calibrated_classifiers_) == 1
    assert len(ensemble.calibrated_.calibrated_classifiers_) == 3
    assert parse_calibrate("sigmoid") == "sigmoid:single"
    assert parse_calibrate("isotonic:ensemble") == "isotonic:ensemble"
    with pytest.raises(ValueError, match="use sigmoid or isotonic"):
        parse_calibrate("sigmoid:bagged")
