"""Speed options of ``fit`` that trade accuracy (issue #31): off by default, named in the report when on.

The defaults fit the models as before issue #17's speed work wherever a change cost AUROC on the
benchmark (``benchmarks/ablate_fit.py``); a user who wants the faster fits asks for them, and the
run's report says so in its Warnings section (``run.json`` records the options too).
"""

from __future__ import annotations

#: ``(FitConfig field, value that is on, what the report says)``.
TRADES = (
    ("gbm_bins", "rows", "speed option --gbm-bins rows was on: lgbm/xgb/hgb used histogram bins sized to the "
                         "training rows (31-63 bins at a few hundred rows instead of 255), faster but 0.01-0.02 "
                         "lower AUROC on the fit benchmark's tables (docs/fit.md)"),
    ("gbm_early_stopping", True, "speed option --gbm-early-stopping was on: lgbm/xgb/hgb stopped adding trees on "
                                 "a 20 % validation split of each training part (never the scoring fold), so each "
                                 "learned from fewer rows (docs/fit.md)"),
)


def speed_option_warnings(config) -> list[str]:
    """One report warning per accuracy-trading speed option that ``config`` switches on.

    Parameters
    ----------
    config : FitConfig
        The run's options.

    Returns
    -------
    list of str
    """
    return [text for field, on, text in TRADES if getattr(config, field, None) == on]
