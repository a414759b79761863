"""`FeatureExtractor`: the extraction engine as a scikit-learn transformer.

>>> from vitfeat import FeatureExtractor
>>> fx = FeatureExtractor(families=["shape", "pair"], masks="auto", data_root="data/synth")  # doctest: +SKIP
>>> table = fx.fit_transform(manifest_df)  # the table `vitfeat extract` writes  # doctest: +SKIP

It holds the options of ``vitfeat extract`` as estimator parameters and calls the same
:func:`vitfeat.featurize.engine.extract` on a manifest given as a DataFrame, so that its table equals
the CLI's column for column and value for value. No family learns anything from data, so ``fit``
only checks the configuration and records the output columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from vitfeat.dataset import DATA_ROOT_COLUMN, load_manifest
from vitfeat.featurize.engine import extract, resolve_families
from vitfeat.featurize.masks import parse_mask_source


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """Manifest DataFrame -> feature DataFrame, exactly as ``vitfeat extract`` computes it.

    Parameters
    ----------
    families : list of str or str, optional
        Feature families (``vitfeat list family``); default: every default handcrafted family.
    masks : str, default "given"
        Mask source: ``given``, ``auto`` or ``model:PATH``.
    family_config : dict, optional
        Per-family options, ``{family: {option: value}}`` (``extract``'s ``family_config``).
    max_side : int, optional
        Shrink photos whose longest side exceeds this many pixels first (``extract --max-side``).
    data_root : path-like, optional
        The folder the manifest's paths are relative to; default: the manifest's ``data_root`` column.
    cache_dir : path-like, optional
        Per-case cache folder (the CLI's ``--cache-dir``); None: no cache.
    n_jobs : int, default 1
        Parallel worker processes (``-1``: all cores).
    targets : list of str, optional
        Target columns carried into the table (default ``label`` when present).
    features_only : bool, default False
        Return only the numeric feature columns (for a scikit-learn pipeline) instead of the whole
        table with ``case_id``, ``patient_id``, targets and ``error``.
    batch_size : int, default 16
        Batch size of batched (deep) families.
    progress : bool, default False
        Show progress bars.

    Attributes
    ----------
    feature_names_out_ : numpy.ndarray of str
        Output columns, in order.
    families_ : dict
        ``{family: {"version", "config"}}`` as recorded in the table's provenance.
    provenance_ : dict
        The provenance of the last :meth:`transform` (what ``extract`` writes into the Parquet metadata).
    """

    def __init__(self, families=None, masks: str = "given", family_config=None, max_side=None, data_root=None,
                 cache_dir=None, n_jobs: int = 1, targets=None, features_only: bool = False, batch_size: int = 16,
                 progress: bool = False):
        self.families = families
        self.masks = masks
        self.family_config = family_config
        self.max_side = max_side
        self.data_root = data_root
        self.cache_dir = cache_dir
        self.n_jobs = n_jobs
        self.targets = targets
        self.features_only = features_only
        self.batch_size = batch_size
        self.progress = progress

    def _manifest(self, X):
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"FeatureExtractor takes a manifest DataFrame (case_id, clinical, ...), "
                            f"not {type(X).__name__}")
        if self.data_root is None and DATA_ROOT_COLUMN not in X.columns:
            raise ValueError("the manifest's paths need a folder: pass data_root=... or give a "
                             f"'{DATA_ROOT_COLUMN}' column")
        return load_manifest(X, root=self.data_root, targets=self.targets, require_targets=False)

    def fit(self, X, y=None):
        """Check the configuration and record the output columns.

        Parameters
        ----------
        X : pandas.DataFrame
            A manifest (``case_id``, ``clinical``, optional ``wood``, masks, targets).
        y : None
            Ignored.

        Returns
        -------
        FeatureExtractor
            ``self``.
        """
        if self.max_side is not None and (int(self.max_side) != self.max_side or self.max_side < 32):
            raise ValueError(f"max_side must be a whole number of pixels >= 32 (got {self.max_side!r})")
        parse_mask_source(self.masks)
        resolved = resolve_families(self.families, self.family_config)
        self.families_ = {spec[0]: {"version": spec[1], "config": spec[2]} for _, spec in resolved}
        columns = []
        for fam, (_, _, config) in resolved:
            declared = fam.columns(config) if fam.features is not None else None
            if declared is None:  # a parametric family names its columns when it runs: ask it once
                columns = None
                break
            columns += declared
        if columns is None:
            columns = [c for c in self._extract(X.head(1)).columns if c not in self._base_columns(X)]
        self.feature_columns_ = list(columns)
        base = [] if self.features_only else self._base_columns(X)
        self.feature_names_out_ = np.asarray(base + self.feature_columns_, dtype=object)
        self.n_features_in_ = len(X.columns) if isinstance(X, pd.DataFrame) else 0
        return self

    def _base_columns(self, X) -> list[str]:
        targets = self.targets if self.targets is not None else (["label"] if "label" in X.columns else [])
        return ["case_id", "patient_id"] + list(targets) + ["error"]

    def _extract(self, X):
        result = extract(self._manifest(X), None, families=self.families, masks=self.masks, jobs=self.n_jobs,
                         cache_dir=self.cache_dir, family_config=self.family_config, batch_size=self.batch_size,
                         targets=self.targets, progress=self.progress, max_side=self.max_side)
        self.provenance_ = result.provenance
        return result.frame

    def transform(self, X):
        """Extract the features of every case of the manifest ``X``.

        Parameters
        ----------
        X : pandas.DataFrame
            A manifest; paths relative to ``data_root`` (or absolute).

        Returns
        -------
        pandas.DataFrame
            The table ``vitfeat extract`` writes (or only its feature columns with ``features_only``),
            indexed like ``X``; ``attrs["vitfeat"]`` holds the provenance ``extract`` stores in the Parquet.

        Raises
        ------
        vitfeat.dataset.ManifestError
            Listing every fatal problem with its row and column (a missing file, a missing column).
        """
        check_is_fitted(self, "feature_names_out_")
        frame = self._extract(X).set_axis(X.index, axis=0)  # one row per manifest row, in order
        if self.features_only:
            frame = frame[self.feature_columns_]
        frame.attrs["vitfeat"] = self.provenance_  # how it was extracted: ModelSelector records it in the run
        return frame

    def get_feature_names_out(self, input_features=None):
        """The output columns.

        Parameters
        ----------
        input_features : ignored
            Present for scikit-learn's API.

        Returns
        -------
        numpy.ndarray of str
        """
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags


__all__ = ["FeatureExtractor"]
