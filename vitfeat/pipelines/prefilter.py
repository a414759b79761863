"""An in-fold pre-filter for wide tables: drop near-constant and near-duplicate columns.

It is a scikit-learn transformer placed first in every pipeline (after imputation) when the table
is wider than a threshold, so it is fitted on each training part only and the same rule applies to
every pipeline, keeping the leaderboard comparison fair.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

#: ``prefilter="auto"`` switches the filter on for tables with more feature columns than this.
AUTO_WIDTH = 500
MODES = ("auto", "off", "on")


def prefilter_active(mode: str, n_features: int) -> bool:
    """Whether the pre-filter runs for a table of ``n_features`` columns under ``mode``.

    Parameters
    ----------
    mode : {"auto", "off", "on"}
        ``auto`` filters tables wider than :data:`AUTO_WIDTH` columns.
    n_features : int
        Feature columns of the table.
    """
    if mode not in MODES:
        raise ValueError(f"unknown prefilter '{mode}' (use {', '.join(MODES)})")
    return mode == "on" or (mode == "auto" and n_features > AUTO_WIDTH)


class NearDuplicateFilter(TransformerMixin, BaseEstimator):
    """Drop columns that are (nearly) constant or (nearly) duplicate an earlier kept column.

    Parameters
    ----------
    max_mode_fraction : float
        A column whose most frequent value covers more than this fraction of the training rows
        is near-constant and dropped.
    max_abs_correlation : float
        A column whose absolute Pearson correlation with an earlier kept column exceeds this is
        a near-duplicate and dropped (the earlier column is kept, so the result does not depend
        on anything but column order).

    Attributes
    ----------
    support_ : ndarray of bool
        Kept columns.
    n_near_constant_, n_near_duplicate_ : int
        How many columns each rule dropped.
    """

    def __init__(self, max_mode_fraction: float = 0.95, max_abs_correlation: float = 0.98):
        self.max_mode_fraction = max_mode_fraction
        self.max_abs_correlation = max_abs_correlation

    def fit(self, X, y=None):
        """Find the near-constant and near-duplicate columns of the training rows ``X``.

        Parameters
        ----------
        X : array-like of shape (n, p)
            Training rows (NaN allowed).
        y : None
            Ignored.

        Returns
        -------
        NearDuplicateFilter
        """
        X = validate_data(self, X, dtype=float, ensure_all_finite="allow-nan")
        constant, duplicate = _filtered_columns(X, self.max_mode_fraction, self.max_abs_correlation)
        self.support_ = ~(constant | duplicate)
        if not self.support_.any():  # never hand an empty table to the classifier
            self.support_[np.flatnonzero(~constant)[:1] if (~constant).any() else [0]] = True
        self.n_near_constant_ = int(constant.sum())
        self.n_near_duplicate_ = int(duplicate.sum())
        return self

    def transform(self, X):
        """``X`` without the columns :meth:`fit` dropped.

        Parameters
        ----------
        X : array-like of shape (n, p)
            Rows with the fitted columns.

        Returns
        -------
        numpy.ndarray
        """
        check_is_fitted(self, "support_")
        X = validate_data(self, X, dtype=float, ensure_all_finite="allow-nan", reset=False)
        return X[:, self.support_]

    def get_support(self, indices: bool = False):
        """Mask (or indices) of the kept columns, like scikit-learn's selectors.

        Parameters
        ----------
        indices : bool, default False
            Indices instead of a boolean mask.

        Returns
        -------
        numpy.ndarray
        """
        check_is_fitted(self, "support_")
        return np.flatnonzero(self.support_) if indices else self.support_.copy()

    def get_feature_names_out(self, input_features=None):
        """Names of the kept columns.

        Parameters
        ----------
        input_features : array-like of str, optional
            The input's names (default: those seen in ``fit``, else ``x0, x1, ...``).

        Returns
        -------
        numpy.ndarray of str
        """
        check_is_fitted(self, "support_")
        names = np.asarray(input_features if input_features is not None
                           else getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)]))
        return names[self.support_]


#: Results of recent fits in this process. Every pipeline of a CV fold fits the filter on the same
#: imputed training rows, so a worker computes it once per training part instead of once per pipeline.
_RECENT: OrderedDict = OrderedDict()
_RECENT_SIZE = 32


def _filtered_columns(X: np.ndarray, max_mode_fraction: float, max_abs_correlation: float):
    """``(near-constant, near-duplicate)`` column masks of ``X``, remembered by content."""
    key = (hashlib.blake2b(np.ascontiguousarray(X).view(np.uint8), digest_size=16).hexdigest(), X.shape,
           max_mode_fraction, max_abs_correlation)
    if key in _RECENT:
        _RECENT.move_to_end(key)
        constant, duplicate = _RECENT[key]
        return constant.copy(), duplicate.copy()
    constant = _near_constant(X, max_mode_fraction)
    duplicate = _near_duplicate(X, constant, max_abs_correlation)
    _RECENT[key] = (constant.copy(), duplicate.copy())
    if len(_RECENT) > _RECENT_SIZE:
        _RECENT.popitem(last=False)
    return constant, duplicate


def _near_constant(X: np.ndarray, max_mode_fraction: float) -> np.ndarray:
    constant = np.zeros(X.shape[1], dtype=bool)
    for j in range(X.shape[1]):
        column = X[:, j][~np.isnan(X[:, j])]
        if len(column) == 0:
            constant[j] = True
            continue
        _, counts = np.unique(column, return_counts=True)
        constant[j] = counts.max() > max_mode_fraction * len(column)
    return constant


def _near_duplicate(X: np.ndarray, constant: np.ndarray, max_abs_correlation: float) -> np.ndarray:
    duplicate = np.zeros(X.shape[1], dtype=bool)
    candidates = np.flatnonzero(~constant)
    if len(candidates) > 1:
        filled = X[:, candidates]
        filled = np.where(np.isnan(filled), np.nanmean(filled, axis=0), filled)
        centred = filled - filled.mean(axis=0)
        norms = np.linalg.norm(centred, axis=0)
        norms[norms == 0] = 1.0
        corr = np.abs((centred / norms).T @ (centred / norms))
        kept: list[int] = []
        for position in range(len(candidates)):
            if kept and corr[position, kept].max() > max_abs_correlation:
                duplicate[candidates[position]] = True
            else:
                kept.append(position)
    return duplicate
