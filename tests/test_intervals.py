"""Intervals and paired tests (issue #28) against published worked examples and direct formulas.

References:
- Wilson intervals: Newcombe RG (1998) Two-sided confidence intervals for the single proportion: comparison of
  seven methods. Stat Med 17:857-872, Table II, method 3 (81/263: 0.2553-0.3662; 15/148: 0.0624-0.1605;
  0/20: 0.0000-0.1611).
- AUROC: Hanley JA, McNeil BJ (1982) Radiology 143:29-36, Table 1 (CT ratings of 58 normal and 51
  abnormal cases): area 0.893.
- DeLong's variance: DeLong ER, DeLong DM, Clarke-Pearson DL (1988) Biometrics 44:837-845, eqs. for the
  placement values V10/V01 computed here directly over all positive-negative pairs (O(mn)), against the
  mid-rank algorithm of Sun X, Xu W (2014) IEEE Signal Process Lett 21:1389-1393 used by vitfeat.
- Corrected resampled t-test: Nadeau C, Bengio Y (2003) Machine Learning 52:239-281, eq. for the corrected
  variance (1/J + n2/n1) s^2.
"""

import numpy as np
import pytest
from scipy import stats

from vitfeat.evaluation.intervals import (
    bootstrap_ci,
    delong,
    delong_covariance,
    delong_paired,
    holm,
    nadeau_bengio,
    wilson,
)


@pytest.mark.parametrize("k,n,low,high", [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605),
                                          (0, 20, 0.0, 0.1611)])
def test_wilson_matches_newcombe_1998(k, n, low, high):
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(low, abs=5e-5) and hi == pytest.approx(high, abs=5e-5)


def _hanley_mcneil():
    neg = np.repeat([1, 2, 3, 4, 5], [33, 6, 6, 11, 2])
    pos = np.repeat([1, 2, 3, 4, 5], [3, 2, 2, 11, 33])
    return np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)], np.r_[pos, neg].astype(float)


def _direct_placements(y, s):
    """DeLong 1988 by definition: psi(x, z) = 1, 1/2, 0 over every (positive, negative) pair."""
    pos, neg = s[y], s[~y]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return psi.mean(), psi.mean(1), psi.mean(0)


def test_delong_auc_matches_hanley_mcneil_and_the_direct_variance():
    y, s = _hanley_mcneil()
    result = delong(y, s)
    assert result["auc"] == pytest.approx(0.893, abs=5e-4)
    auc, v10, v01 = _direct_placements(y, s)
    se = np.sqrt(v10.var(ddof=1) / len(v10) + v01.var(ddof=1) / len(v01))
    assert result["auc"] == pytest.approx(auc)
    assert result["se"] == pytest.approx(se, rel=1e-10)
    assert result["ci_low"] == pytest.approx(auc - 1.959964 * se, abs=1e-6)


def test_paired_delong_matches_the_direct_covariance():
    rng = np.random.default_rng(0)
    y = rng.uniform(size=120) < 0.4
    a = y + rng.normal(0, 1, 120)
    b = 0.6 * a + rng.normal(0, 1, 120)
    res = delong_paired(y, a, b)
    (auc_a, x_a, y_a), (auc_b, x_b, y_b) = _direct_placements(y, a), _direct_placements(y, b)
    var = (np.var(x_a - x_b, ddof=1) / len(x_a) + np.var(y_a - y_b, ddof=1) / len(y_a))
    assert res["difference"] == pytest.approx(auc_a - auc_b)
    assert res["p_value"] == pytest.approx(2 * stats.norm.sf(abs(auc_a - auc_b) / np.sqrt(var)), rel=1e-8)
    # a score against itself: no difference, p = 1
    assert delong_paired(y, a, a)["p_value"] == 1.0
    # repeats: the same cases twice give the same interval as once
    _, cov1 = delong_covariance(y, a)
    _, cov2 = delong_covariance(np.r_[y, y], np.r_[a, a], repeats=2)
    assert cov2[0, 0] == pytest.approx(cov1[0, 0], rel=0.05)


def test_nadeau_bengio_corrected_variance_by_hand():
    d = np.array([0.02, 0.05, -0.01, 0.04, 0.03])
    res = nadeau_bengio(d, n_train=80, n_test=20)
    se = np.sqrt((1 / 5 + 20 / 80) * d.var(ddof=1))
    assert res["difference"] == pytest.approx(d.mean())
    assert res["p_value"] == pytest.approx(2 * stats.t.sf(d.mean() / se, 4))
    naive = stats.ttest_1samp(d, 0).pvalue
    assert res["p_value"] > naive  # the correction widens the interval


def test_holm_by_hand():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, np.nan]), [0.03, 0.06, 0.06, np.nan])


def test_bootstrap_ci_is_withheld_below_95_percent_valid():
    samples = np.r_[np.linspace(0, 1, 4), np.full(496, np.nan)]
    out = bootstrap_ci(samples, 500)
    assert out["n_boot_valid"] == 4 and np.isnan(out["ci_low"]) and "only 4 of 500" in out["ci_note"]
    ok = bootstrap_ci(np.r_[np.linspace(0, 1, 480), np.full(20, np.nan)], 500)
    assert ok["n_boot_valid"] == 480 and ok["ci_note"] == "" and ok["ci_low"] == pytest.approx(0.025, abs=0.01)


def _oof(n=40, n_pos=2, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    y = np.array(["vitiligo"] * n_pos + ["normal"] * (n - n_pos))
    p = np.clip(rng.uniform(0, 0.5, n) + (y == "vitiligo") * 0.4, 0.01, 0.99)
    return pd.DataFrame({"y_true": y, "y_pred": np.where(p >= 0.5, "vitiligo", "normal"), "proba_normal": 1 - p,
                         "proba_vitiligo": p, "repeat": 0, "fold": np.arange(n) % 4, "patient_id": np.arange(n)})


def test_score_oof_withholds_a_bootstrap_ci_from_too_few_valid_resamples():
    from vitfeat.evaluation.metrics import score_oof
    from vitfeat.pipelines.report import _fmt
    from vitfeat.pipelines.report_review import board_cell

    scores = score_oof(_oof(), ["normal", "vitiligo"], positive="vitiligo", n_boot=200, ci="bootstrap")
    auroc = scores["auroc"]  # 2 positives in 40: about 1 resample in 7 has none
    assert auroc["n_boot_valid"] < 0.95 * 200 and np.isnan(auroc["ci_low"])
    assert f"only {auroc['n_boot_valid']} of 200" in auroc["ci_note"]
    row = {f"auroc_{k}": v for k, v in auroc.items()}
    assert "[—] CI withheld" in _fmt(row, "auroc") and "[— CI withheld" in board_cell(row, "auroc")
    # the analytic interval does not need resamples
    analytic = score_oof(_oof(), ["normal", "vitiligo"], positive="vitiligo", n_boot=200, ci="auto")
    assert analytic["auroc"]["ci_method"] == "DeLong"
    assert analytic["sensitivity"]["ci_method"] == "Wilson" and np.isfinite(analytic["sensitivity"]["ci_low"])
    assert analytic["ppv"]["ci_low"] <= analytic["ppv"]["value"] <= analytic["ppv"]["ci_high"]


def test_auto_keeps_the_patient_bootstrap_when_patients_have_several_cases():
    from vitfeat.evaluation.metrics import score_oof

    frame = _oof(n=80, n_pos=30)
    frame["patient_id"] = np.arange(80) // 2
    scores = score_oof(frame, ["normal", "vitiligo"], positive="vitiligo", n_boot=100, ci="auto")
    assert scores["auroc"]["ci_method"] == "patient bootstrap"
    assert scores["sensitivity"]["ci_method"] == "patient bootstrap"
