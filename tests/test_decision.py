"""Decision curves by hand computation (issue #14)."""

import numpy as np
import pytest

from vitfeat.evaluation.decision import decision_curve, net_benefit, treat_all


def test_net_benefit_by_hand():
    y = np.array([1, 1, 0, 0, 0])
    s = np.array([0.9, 0.4, 0.6, 0.2, 0.1])
    # t = 0.5: called 0.9 (TP) and 0.6 (FP): 1/5 - 1/5 * 1 = 0
    # t = 0.25: called 0.9, 0.4 (TP), 0.6 (FP): 2/5 - 1/5 * (1/3)
    nb = net_benefit(y, s, [0.5, 0.25])
    assert nb == pytest.approx([0.0, 0.4 - 0.2 / 3])
    # treat all at t = 0.25: 2/5 - 3/5 * 1/3 = 0.2; a model calling everyone equals treat-all
    assert treat_all(y, [0.25]) == pytest.approx([0.2])
    assert net_benefit(y, np.ones(5), [0.25]) == pytest.approx(treat_all(y, [0.25]))
    with pytest.raises(ValueError):
        net_benefit(y, s, [0.0])


def test_perfect_model_gets_prevalence_and_bands_cover_it():
    rng = np.random.default_rng(0)
    y = rng.uniform(size=200) < 0.3
    curve = decision_curve(y, y.astype(float), np.arange(200) // 2, n_boot=50)
    np.testing.assert_allclose(curve["net_benefit"], y.mean())
    assert (curve["nb_low"] <= curve["net_benefit"] + 1e-12).all()
    assert (curve["nb_high"] >= curve["net_benefit"] - 1e-12).all()
    assert (curve["net_benefit"] >= curve["treat_all"]).all() and (curve["treat_none"] == 0).all()
