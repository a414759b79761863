"""In-fold early stopping for the gradient-boosting classifiers (``fit --gbm-early-stopping``, issue #31).

Each model holds out a stratified share of the rows *it is fitted on* (a CV fold's training part,
after the pipeline's imputation, scaling and resampling) as its validation rows, grows trees on the
rest and keeps the trees up to the best validation log loss, stopping after :data:`PATIENCE` rounds
without improvement. The scoring fold never reaches ``fit``, so it never decides when to stop.

It is an explicit option, off by default: it saves trees, but each model learns from fewer rows and
its stopping round comes from a small validation set; ``benchmarks/ablate_fit.py`` measures both.
LightGBM and XGBoost get the subclasses below; scikit-learn's HGB its own ``early_stopping``, which
splits the same way.
"""

from __future__ import annotations

import warnings

import numpy as np
from lightgbm import LGBMClassifier, early_stopping
from sklearn.model_selection import train_test_split
from xgboost import XGBClassifier

#: Share of the training rows held out to choose the number of trees.
VALIDATION_FRACTION = 0.2
#: Rounds without a better validation log loss before the trees stop.
PATIENCE = 20


def validation_split(y, random_state) -> tuple[np.ndarray, np.ndarray]:
    """``(fit rows, validation rows)``: a stratified :data:`VALIDATION_FRACTION` of the rows of ``y``.

    Parameters
    ----------
    y : array-like
        Labels of the rows handed to ``fit``.
    random_state : int or None
        Seed of the split.

    Returns
    -------
    tuple of numpy.ndarray
        Row indices; the validation rows are drawn from these rows only.
    """
    y = np.asarray(y)
    rows = np.arange(len(y))
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 else None  # a one-row class cannot be split
    return tuple(train_test_split(rows, test_size=VALIDATION_FRACTION, stratify=stratify,
                                  random_state=random_state))


class EarlyStoppingLGBM(LGBMClassifier):
    """LightGBM that stops on a validation split of the rows it is fitted on (see the module).

    Attributes
    ----------
    validation_rows_ : numpy.ndarray
        Indices (into the rows given to ``fit``) of the validation rows.
    """

    def fit(self, X, y, **kwargs):
        """Fit on the rows outside :func:`validation_split`, stopping on the others.

        Parameters
        ----------
        X : array-like of shape (n, p)
            Training rows.
        y : array-like of shape (n,)
            Their labels.
        **kwargs
            Passed to :meth:`lightgbm.LGBMClassifier.fit`.

        Returns
        -------
        EarlyStoppingLGBM
        """
        fit_rows, self.validation_rows_ = validation_split(y, self.random_state)
        X, y = np.asarray(X), np.asarray(y)
        with warnings.catch_warnings():
            # eval_set, not LightGBM 4.7's eval_X/eval_y: LGBMClassifier label-encodes only eval_set's labels
            warnings.filterwarnings("ignore", message=".*'eval_set' is deprecated")
            return super().fit(X[fit_rows], y[fit_rows], eval_set=[(X[self.validation_rows_],
                                                                   y[self.validation_rows_])],
                               callbacks=[early_stopping(PATIENCE, verbose=False)], **kwargs)


class EarlyStoppingXGB(XGBClassifier):
    """XGBoost that stops on a validation split of the rows it is fitted on (see the module); made
    with ``early_stopping_rounds`` (:data:`PATIENCE`) by the zoo.

    Attributes
    ----------
    validation_rows_ : numpy.ndarray
        Indices (into the rows given to ``fit``) of the validation rows.
    """

    def fit(self, X, y, **kwargs):
        """Fit on the rows outside :func:`validation_split`, stopping on the others.

        Parameters
        ----------
        X : array-like of shape (n, p)
            Training rows.
        y : array-like of shape (n,)
            Their labels.
        **kwargs
            Passed to :meth:`xgboost.XGBClassifier.fit`.

        Returns
        -------
        EarlyStoppingXGB
        """
        fit_rows, self.validation_rows_ = validation_split(y, self.random_state)
        X, y = np.asarray(X), np.asarray(y)
        return super().fit(X[fit_rows], y[fit_rows], eval_set=[(X[self.validation_rows_], y[self.validation_rows_])],
                           verbose=False, **kwargs)
