"""Calibration metrics against scikit-learn and hand computations (issue #14)."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss

from vitfeat.evaluation import calibration as cal
from vitfeat.evaluation.metrics import _metrics, fast_metrics, score_oof

CLASSES = ["non-stable", "stable"]
POS = "non-stable"


def _binary(n=300, seed=0, distort=1.0):
    rng = np.random.default_rng(seed)
    true_p = rng.uniform(0.02, 0.98, n)
    y = np.where(rng.uniform(size=n) < true_p, POS, "stable")
    logit = np.log(true_p / (1 - true_p)) * distort
    p = 1 / (1 + np.exp(-logit))
    return y, np.column_stack([p, 1 - p])


def test_brier_and_log_loss_match_sklearn_binary():
    y, proba = _binary()
    y_bin = (y == POS).astype(int)
    assert cal.brier(y, proba, CLASSES, POS) == pytest.approx(brier_score_loss(y_bin, proba[:, 0]))
    assert cal.log_loss(y, proba, CLASSES, POS) == pytest.approx(sk_log_loss(y, proba, labels=CLASSES))


def test_multiclass_brier_and_log_loss():
    classes = ["a", "b", "c"]
    y = np.array(["a", "b", "c", "a"])
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.2, 0.5, 0.3]])
    # by hand: row sums of squared error, averaged
    hand = np.mean([0.09 + 0.04 + 0.01, 0.01 + 0.04 + 0.01, 0.09 + 0.09 + 0.36, 0.64 + 0.25 + 0.09])
    assert cal.brier(y, proba, classes) == pytest.approx(hand)
    assert cal.log_loss(y, proba, classes) == pytest.approx(sk_log_loss(y, proba, labels=classes))


def test_ece_from_calibration_curve_bins():
    y, proba = _binary(distort=2.0)
    y_bin = (y == POS).astype(int)
    observed, predicted = calibration_curve(y_bin, proba[:, 0], n_bins=10, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], proba[:, 0], side="right"), minlength=10)
    counts = counts[counts > 0]
    expected = np.sum(counts / counts.sum() * np.abs(observed - predicted))
    assert cal.ece(y, proba, CLASSES, POS) == pytest.approx(expected)
    mean_p, obs, n = cal.reliability_points(y, proba, CLASSES, POS)
    np.testing.assert_allclose(obs, observed)
    np.testing.assert_allclose(mean_p, predicted)
    assert n.sum() == len(y)


def test_ece_hand_example():
    y = np.array([POS, "stable", POS, POS])
    p = np.array([0.05, 0.05, 0.95, 0.85])
    proba = np.column_stack([p, 1 - p])
    # bin 0: predicted 0.05 mean, observed 0.5 -> gap .45, share .5; bin 8 (0.85): gap .15, share .25;
    # bin 9 (0.95): gap .05, share .25
    assert cal.ece(y, proba, CLASSES, POS) == pytest.approx(0.5 * 0.45 + 0.25 * 0.15 + 0.25 * 0.05)


@pytest.mark.parametrize("distort", [0.5, 1.0, 2.0])
def test_slope_intercept_match_unpenalised_logistic_regression(distort):
    y, proba = _binary(n=2000, seed=1, distort=distort)
    slope, intercept = cal.slope_intercept(y, proba, CLASSES, POS)
    logit = np.log(proba[:, 0] / (1 - proba[:, 0]))
    lr = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(logit[:, None], (y == POS).astype(int))
    assert slope == pytest.approx(lr.coef_[0, 0], rel=1e-5)
    # the intercept is calibration-in-the-large: the slope fixed at 1 (logit(p) as an offset)
    offset_only = sm.GLM((y == POS).astype(float), np.ones((len(y), 1)), family=sm.families.Binomial(),
                         offset=logit).fit(tol=1e-12)
    assert intercept == pytest.approx(offset_only.params[0], abs=1e-6)
    # predictions made too extreme by the factor `distort` get slope about 1/distort
    assert slope == pytest.approx(1 / distort, rel=0.2)


def test_slope_nan_for_one_class_and_multiclass():
    proba = np.array([[0.2, 0.8], [0.4, 0.6]])
    assert np.isnan(cal.slope_intercept(np.array(["stable", "stable"]), proba, CLASSES, POS)[0])
    assert np.isnan(cal.slope_intercept(np.array(["a", "b"]), np.eye(3)[:2], ["a", "b", "c"])[0])


def test_scoring_reports_calibration_with_fold_sd_and_patient_ci():
    y, proba = _binary(n=200, seed=3)
    frame = pd.DataFrame({"y_true": y, "y_pred": np.where(proba[:, 0] >= 0.5, POS, "stable"),
                          "proba_non-stable": proba[:, 0], "proba_stable": proba[:, 1],
                          "repeat": 0, "fold": np.arange(200) % 5, "patient_id": np.arange(200) // 2})
    scores = score_oof(frame, CLASSES, positive=POS, n_boot=50)
    for name in cal.CALIBRATION:
        assert np.isfinite(scores[name]["value"]) and np.isfinite(scores[name]["sd"])
        # ECE is biased upward under resampling, so the pooled value need not sit inside its CI
        assert scores[name]["ci_low"] < scores[name]["ci_high"]
    assert scores["brier"]["value"] == pytest.approx(brier_score_loss((y == POS).astype(int), proba[:, 0]))
    # the bootstrap's fast path gives the same calibration numbers as the validated path
    slow = _metrics(y, frame["y_pred"].to_numpy(), proba, CLASSES, POS)
    fast = fast_metrics(y, frame["y_pred"].to_numpy(), proba, CLASSES, POS)
    for name in cal.CALIBRATION:
        assert fast[name] == pytest.approx(slow[name])
