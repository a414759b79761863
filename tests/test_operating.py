"""Operating points chosen inside training folds (issue #14)."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import StratifiedGroupKFold

from vitfeat.pipelines.operating import (
    choose_threshold,
    operating_metrics,
    out_of_fold_operating_point,
    parse_rule,
    threshold_from_scores,
)

POS = "non-stable"


def _data(n=160, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.arange(n) // 2
    y = np.where(rng.uniform(size=n) < 0.4, POS, "stable")
    X = rng.normal(size=(n, 3)) + (y == POS)[:, None] * 1.0
    return X, y, groups


def test_parse_rule():
    assert parse_rule("sensitivity=0.90") == ("sensitivity", 0.9)
    assert parse_rule("Youden") == ("youden", None)
    for bad in ["sensitivity", "specificity=1.5", "accuracy=0.9"]:
        with pytest.raises(ValueError):
            parse_rule(bad)


def test_threshold_rules_by_hand():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.6, 0.5, 0.7, 0.4, 0.2, 0.1])
    # sensitivity >= 0.75: calling 0.9, 0.8, 0.6 positive (3/4) -> the highest such threshold is 0.6
    assert threshold_from_scores(y, s, "sensitivity=0.75") == 0.6
    # specificity >= 0.75: at most one of four negatives (0.7) called -> the lowest threshold is 0.5
    assert threshold_from_scores(y, s, "specificity=0.75") == 0.5
    # Youden: at 0.5 sensitivity 1, false positive rate 0.25 -> 0.75, the unique maximum
    assert threshold_from_scores(y, s, "youden") == 0.5
    m = operating_metrics(np.where(y == 1, POS, "stable"), s, 0.6, POS)
    tn, fp, fn, tp = confusion_matrix(y, (s >= 0.6).astype(int)).ravel()
    assert m["sensitivity"] == tp / (tp + fn) and m["specificity"] == tn / (tn + fp)
    assert m["ppv"] == tp / (tp + fp) and m["npv"] == tn / (tn + fn)


def test_in_fold_threshold_never_sees_its_test_fold():
    X, y, groups = _data()
    splits = list(StratifiedGroupKFold(n_splits=4, shuffle=True, random_state=0).split(X, y, groups))
    est = LogisticRegression()
    thresholds, _, _ = out_of_fold_operating_point(est, X, y, groups, POS, "sensitivity=0.9", splits)
    # scramble every test fold's features and labels in turn: its own threshold must not move
    for k, (train, test) in enumerate(splits):
        X2, y2 = X.copy(), y.copy()
        X2[test] = np.random.default_rng(k).normal(size=(len(test), 3)) * 10
        y2[test] = y2[test][::-1]
        again = choose_threshold(est, X2[train], y2[train], groups[train], POS, "sensitivity=0.9")
        assert again == thresholds[k]
    # and a change in the training part does move it (the check above is not vacuous)
    train = splits[0][0]
    X3 = X.copy()
    X3[train[:20]] += 3
    assert choose_threshold(est, X3[train], y[train], groups[train], POS, "sensitivity=0.9") != thresholds[0]


def test_out_of_fold_sensitivity_near_target():
    X, y, groups = _data(n=400, seed=1)
    splits = list(StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0).split(X, y, groups))
    _, score, called = out_of_fold_operating_point(LogisticRegression(), X, y, groups, POS,
                                                   "sensitivity=0.9", splits)
    sens = np.mean(called[y == POS])
    assert 0.8 <= sens <= 0.98
    youden_sens = np.mean(out_of_fold_operating_point(LogisticRegression(), X, y, groups, POS, "youden",
                                                      splits)[2][y == POS])
    assert youden_sens < sens  # asking for 90 % sensitivity moves the threshold down


def test_grouped_calibration_folds_keep_patients_apart_and_improve_calibration():
    from sklearn.svm import SVC

    from vitfeat.evaluation.calibration import ece
    from vitfeat.pipelines.operating import GroupedCalibratedClassifier

    X, y, groups = _data(n=400, seed=2)
    train, test = np.arange(300), np.arange(300, 400)
    # a deliberately over-confident model: naive Bayes on ten copies of each feature counts the same
    # evidence ten times
    from sklearn.naive_bayes import GaussianNB

    X10 = np.repeat(X, 10, axis=1)
    raw = GaussianNB().fit(X10[train], y[train])
    model = GroupedCalibratedClassifier(GaussianNB(), method="sigmoid").fit(X10[train], y[train],
                                                                            groups=groups[train])
    for inner_train, inner_test in model.splits_:
        assert not set(groups[train][inner_train]) & set(groups[train][inner_test])
    classes = list(model.classes_)
    raw_ece = ece(y[test], raw.predict_proba(X10[test]), classes, POS)
    cal_ece = ece(y[test], model.predict_proba(X10[test]), classes, POS)
    assert cal_ece < 0.5 * raw_ece
    # the SVM gets its probabilities from the grouped calibrator, not SVC's own ungrouped Platt CV
    svm = GroupedCalibratedClassifier(SVC(), method="isotonic").fit(X[train], y[train], groups=groups[train])
    proba = svm.predict_proba(X[test])
    np.testing.assert_allclose(proba.sum(1), 1.0)
    with pytest.raises(ValueError, match="sigmoid or isotonic"):
        GroupedCalibratedClassifier(SVC(), method="beta").fit(X[train], y[train], groups=groups[train])
