"""Applicability check: is a new case like the cases the model learnt from?

Fitted by ``fit`` on the training cases only (and, for the out-of-fold flags in the report, on the
training part of each outer fold), saved in the run (``run.json`` key ``applicability`` plus
``applicability.npz``: plain JSON and numpy arrays, nothing pickled), used by ``predict`` and the app.
Two parts, both must pass for a case to be ``in_scope``:

1. **Image-quality gates** (:mod:`vitfeat.featurize.quality`): size, sharpness, exposure, colour,
   skin share, dermoscopy vignette, per modality, with bands learnt from the training photos; and
   a gate on the share of the model's features that could not be measured.
2. **Distance in feature space**: the distance from the case to its ``k``-th nearest training case
   on the model's feature table, robust-standardised (median, IQR) and median-imputed with the
   training statistics. The threshold is the 95th percentile of the same distance of the training
   cases to the *other patients'* training cases, so about 5 % of in-distribution cases are flagged.

Why k-NN rather than Mahalanobis: Sun et al. (2022, "Out-of-distribution detection with deep
nearest neighbors", ICML) show the k-th nearest-neighbour distance on normalised features is a
strong, distribution-free OOD score that needs no density or covariance model; Lee et al. (2018,
"A simple unified framework for detecting out-of-distribution samples and adversarial attacks")
use a Mahalanobis distance, which assumes one Gaussian per class and a covariance estimate. Our
tables have hundreds of correlated, skewed handcrafted features and often fewer cases than
features, where a (even shrunk or minimum-covariance-determinant) covariance is ill-conditioned
or undefined; the k-NN score has no such requirement, and robust standardisation (median/IQR) keeps
heavy-tailed features from dominating. The reason text names the feature group (``<modality>_<family>``)
lying furthest outside its usual spread in the training cases.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vitfeat.featurize.quality import QualityGates, image_quality

log = logging.getLogger(__name__)

#: Share of in-distribution (training) cases the distance threshold leaves outside.
FLAG_RATE = 0.05
#: Neighbours of the k-NN distance (fewer when the training part is small).
K_NEIGHBOURS = 5
#: Standardised values are clipped here so that one absurd feature cannot make a distance infinite.
Z_CLIP = 1e3
#: A case may miss this much more of its features than the worst training case before it is flagged.
MISSING_MARGIN = 0.1
NPZ_NAME = "applicability.npz"
MODALITIES = ("clinical", "wood")


def feature_group(column: str) -> str:
    """``<modality>_<family>`` of a feature column (``clinical_color_L_mean`` -> ``clinical_color``).

    Parameters
    ----------
    column : str
        A feature column name.

    Returns
    -------
    str
        Its first two ``_``-separated parts; a name with fewer than three parts is returned whole.
    """
    parts = str(column).split("_")
    return "_".join(parts[:2]) if len(parts) > 2 else str(column)


def _group_words(group: str) -> str:
    modality, _, family = group.partition("_")
    where = {"clinical": "clinical-photo", "wood": "Wood's-photo", "pair": "clinical-to-Wood's"}.get(modality, modality)
    return f"{where} {family or 'other'} features"


def photo_quality(manifest_frame: pd.DataFrame, case_ids, modalities=MODALITIES) -> dict[str, list[dict | None]]:
    """:func:`~vitfeat.featurize.quality.image_quality` of each case's photos.

    Parameters
    ----------
    manifest_frame : pandas.DataFrame
        A validated manifest frame (absolute paths), with ``case_id``.
    case_ids : sequence
        The cases, in the order wanted.
    modalities : sequence of str
        Photo columns to measure.

    Returns
    -------
    dict
        ``{modality: [quality dict, or None when the case has no such photo or it is unreadable]}``.
    """
    from vitfeat.dataset import read_image

    by_id = manifest_frame.drop_duplicates("case_id").set_index(manifest_frame["case_id"].astype(str)
                                                                .drop_duplicates())
    out = {}
    for modality in modalities:
        rows = []
        for cid in map(str, case_ids):
            path = by_id[modality].get(cid) if modality in by_id.columns and cid in by_id.index else None
            if path is None or (isinstance(path, float) and math.isnan(path)) or not str(path).strip():
                rows.append(None)
                continue
            try:
                rows.append(image_quality(read_image(path)))
            except (OSError, ValueError) as exc:
                log.warning("case %s: %s photo %s unreadable for the quality gates: %s", cid, modality, path, exc)
                rows.append(None)
        out[modality] = rows
    return out


@dataclass
class Applicability:
    """A fitted applicability check (see the module docstring). Build with :meth:`fit`.

    Attributes
    ----------
    features : list of str
        The model's feature columns.
    used : numpy.ndarray
        Bool per feature: observed in training and not constant (only these enter the distance).
    center, scale : numpy.ndarray
        Training median and IQR of the used features (robust standardisation).
    reference : numpy.ndarray
        Standardised, imputed training rows (float32), the k-NN reference set.
    k : int
        Neighbours of the k-NN distance.
    threshold : float
        Distance above which a case is out of scope (``inf``: no distance check).
    group_names : list of str
        The ``<modality>_<family>`` groups of the used features.
    group_of : numpy.ndarray
        Index into ``group_names`` per used feature.
    group_limit : numpy.ndarray
        95th percentile of each group's RMS z over the training cases (names the reason).
    missing_max : float
        Largest share of unmeasured features a case may have.
    gates : QualityGates
        Image-quality bands learnt from the training photos.
    flag_rate : float
        Share of training cases the distance threshold leaves outside.
    """

    features: list[str]
    used: np.ndarray  # bool per feature: observed in training and not constant
    center: np.ndarray
    scale: np.ndarray
    reference: np.ndarray  # standardised, imputed training rows (float32)
    k: int
    threshold: float
    group_names: list[str]
    group_of: np.ndarray  # index into group_names per used feature
    group_limit: np.ndarray  # 95th percentile of each group's RMS z over training cases
    missing_max: float
    gates: QualityGates = field(default_factory=QualityGates)
    flag_rate: float = FLAG_RATE

    # ---- fitting -----------------------------------------------------------------------------
    @classmethod
    def fit(cls, X: np.ndarray, features: list[str], groups=None, quality: dict | None = None, *,
            k: int = K_NEIGHBOURS, flag_rate: float = FLAG_RATE) -> "Applicability":
        """Fit on training cases.

        Parameters
        ----------
        X : numpy.ndarray
            ``(n, p)`` training feature rows (NaN = missing).
        features : list of str
            The ``p`` column names.
        groups : array-like, optional
            Patient of each row: a training case's own distance skips its patient's other cases,
            as a new patient's would.
        quality : dict, optional
            :func:`photo_quality` of the training rows; without it there are no image gates.
        k : int
            Neighbours.
        flag_rate : float
            Share of training cases beyond the distance threshold.

        Returns
        -------
        Applicability
        """
        X = np.asarray(X, dtype=float)
        n = len(X)
        if n < 3:
            raise ValueError(f"applicability: {n} training case(s); at least 3 are needed")
        groups = np.arange(n) if groups is None else pd.factorize(np.asarray(groups).astype(str))[0]
        with np.errstate(all="ignore"):
            observed = np.isfinite(X).any(axis=0)
            center = np.where(observed, np.nanmedian(np.where(observed, X, 0.0), axis=0), 0.0)
            q75, q25 = np.nanpercentile(np.where(observed, X, 0.0), [75, 25], axis=0)
            scale = (q75 - q25) / 1.349
            sd = np.nanstd(np.where(observed, X, 0.0), axis=0)
        scale = np.where(scale > 1e-12, scale, sd)
        used = observed & (scale > 1e-12)
        if not used.any():
            raise ValueError("applicability: no feature varies across the training cases")
        self = cls(features=list(features), used=used, center=center, scale=np.where(used, scale, 1.0),
                   reference=np.empty((0, 0), np.float32), k=1, threshold=math.inf, group_names=[],
                   group_of=np.empty(0, int), group_limit=np.empty(0), missing_max=1.0, flag_rate=flag_rate)
        Z = self._standardise(X)
        self.reference = Z.astype(np.float32)
        self.k = int(max(1, min(k, n - _largest_group(groups))))
        own = _knn_distance(Z, Z, self.k, groups_ref=groups, groups_query=groups)
        # the conformal quantile (rank ceil((n + 1)(1 - rate))): a new exchangeable case exceeds it with
        # probability <= rate (conformal outlier detection, Bates et al. 2023, Ann. Statist.)
        from vitfeat.pipelines.conformal import conformal_quantile

        self.threshold = conformal_quantile(own, 1 - flag_rate)
        names = [feature_group(c) for c, u in zip(features, used) if u]
        self.group_names = sorted(set(names))
        self.group_of = np.array([self.group_names.index(g) for g in names], dtype=int)
        self.group_limit = np.quantile(self._group_rms(Z), 0.95, axis=0)
        self.missing_max = float(np.mean(~np.isfinite(X[:, used]), axis=1).max())
        self.gates = QualityGates().fit({m: [q for q in rows if q] for m, rows in (quality or {}).items()})
        return self

    # ---- scoring ---------------------------------------------------------------------------
    def _standardise(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)[:, self.used]
        Z = (X - self.center[self.used]) / self.scale[self.used]
        Z[~np.isfinite(Z)] = 0.0  # missing -> the training median
        return np.clip(Z, -Z_CLIP, Z_CLIP)

    def _group_rms(self, Z: np.ndarray) -> np.ndarray:
        out = np.zeros((len(Z), len(self.group_names)))
        for g in range(len(self.group_names)):
            out[:, g] = np.sqrt(np.mean(Z[:, self.group_of == g] ** 2, axis=1))
        return out

    def distance(self, X: np.ndarray) -> np.ndarray:
        """k-NN distance of each row of ``X`` to the training cases.

        Parameters
        ----------
        X : numpy.ndarray
            ``(n, p)`` rows in the order of :attr:`features`.
        """
        return _knn_distance(self._standardise(X), self.reference.astype(float), self.k)

    def assess(self, X: np.ndarray, quality: dict | None = None, errors=None) -> tuple[np.ndarray, list[str]]:
        """Which rows are in scope, and why not.

        Parameters
        ----------
        X : numpy.ndarray
            ``(n, p)`` feature rows in the order of :attr:`features`.
        quality : dict, optional
            :func:`photo_quality` of the rows (without it the image gates are not checked).
        errors : sequence of str, optional
            Extraction errors per row (a failed case is out of scope).

        Returns
        -------
        (numpy.ndarray, list of str)
            ``in_scope`` (bool per row) and ``scope_reason`` (empty when in scope).
        """
        X = np.asarray(X, dtype=float)
        n = len(X)
        reasons: list[list[str]] = [[] for _ in range(n)]
        if errors is not None:
            for i, e in enumerate(errors):
                if str(e or "").strip() and str(e) != "nan":
                    reasons[i].append(f"the photos could not be analysed ({e})")
        for modality, rows in (quality or {}).items():
            for i, q in enumerate(rows):
                if q:
                    reasons[i] += self.gates.check(modality, q)
        missing = np.mean(~np.isfinite(X[:, self.used]), axis=1) if n else np.zeros(0)
        dist = self.distance(X) if n else np.zeros(0)
        Z = self._standardise(X) if n else np.zeros((0, 0))
        rms = self._group_rms(Z) if n else np.zeros((0, 0))
        for i in range(n):
            if missing[i] > self.missing_max + MISSING_MARGIN:
                reasons[i].append(f"{missing[i]:.0%} of the model's features could not be measured "
                                  f"(training cases: at most {self.missing_max:.0%})")
            if dist[i] > self.threshold:
                ratio = rms[i] / np.maximum(self.group_limit, 1e-9)
                worst = [self.group_names[g] for g in np.argsort(-ratio)[:2] if ratio[g] > 1]
                where = (" — " + " and ".join(f"{_group_words(g)} lie far outside the training cases "
                                              f"({ratio[self.group_names.index(g)]:.1f}x their usual spread)"
                                              for g in worst)) if worst else ""
                reasons[i].append(f"unlike the training cases (distance {dist[i]:.1f} to its nearest training "
                                  f"cases; {1 - self.flag_rate:.0%} of training cases lie within "
                                  f"{self.threshold:.1f}){where}")
        return np.array([not r for r in reasons], dtype=bool), ["; ".join(r) for r in reasons]

    # ---- persistence -----------------------------------------------------------------------
    def to_json(self) -> dict:
        """Plain JSON part (the arrays go to :data:`NPZ_NAME`)."""
        return {"method": "k-NN distance on robust-standardised, median-imputed features + image-quality gates",
                "k": self.k, "threshold": self.threshold if np.isfinite(self.threshold) else None,
                "flag_rate": self.flag_rate, "missing_max": self.missing_max, "group_names": self.group_names,
                "n_reference": int(len(self.reference)), "gates": self.gates.to_dict()}

    def arrays(self) -> dict[str, np.ndarray]:
        """The numpy part, saved as :data:`NPZ_NAME`."""
        return {"used": self.used, "center": self.center, "scale": self.scale, "reference": self.reference,
                "group_of": self.group_of, "group_limit": self.group_limit}

    def save(self, run_dir) -> Path:
        """Write :data:`NPZ_NAME` into ``run_dir`` (atomically); the JSON part goes into run.json.

        Parameters
        ----------
        run_dir : path-like
            The run directory.

        Returns
        -------
        pathlib.Path
            The written ``.npz`` file.
        """
        from vitfeat.atomic import atomic_path

        path = Path(run_dir) / NPZ_NAME
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **self.arrays())
        return path

    @classmethod
    def load(cls, run_dir, meta: dict) -> "Applicability | None":
        """The check of a run (``meta``: its run.json), or None when it has none.

        Parameters
        ----------
        run_dir : path-like
            The run directory holding :data:`NPZ_NAME`.
        meta : dict
            The run's run.json (keys ``applicability`` and ``feature_columns``).

        Returns
        -------
        Applicability or None
            None when run.json has no ``applicability`` entry or the ``.npz`` file is missing.
        """
        info = (meta or {}).get("applicability")
        path = Path(run_dir) / NPZ_NAME
        if not info or not path.is_file():
            return None
        stat = path.stat()
        arr = _read_npz(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        thr = info.get("threshold")
        return cls(features=list(meta.get("feature_columns") or []), used=arr["used"].astype(bool),
                   center=arr["center"], scale=arr["scale"], reference=arr["reference"], k=int(info["k"]),
                   threshold=math.inf if thr is None else float(thr), group_names=list(info["group_names"]),
                   group_of=arr["group_of"].astype(int), group_limit=arr["group_limit"],
                   missing_max=float(info["missing_max"]), gates=QualityGates.from_dict(info.get("gates") or {}),
                   flag_rate=float(info.get("flag_rate", FLAG_RATE)))


@functools.lru_cache(maxsize=8)
def _read_npz(path: str, mtime_ns: int, size: int) -> dict:
    """The arrays of an ``applicability.npz``, read once per file version (the app and a notebook's
    ``load_run`` predict case after case with the same run); read-only, since calls share them."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for a in arrays.values():
        a.flags.writeable = False
    return arrays


def _largest_group(groups: np.ndarray) -> int:
    return int(np.bincount(groups).max()) if len(groups) else 1


def _knn_distance(Zq: np.ndarray, Zr: np.ndarray, k: int, groups_ref=None, groups_query=None) -> np.ndarray:
    """k-th smallest Euclidean distance of each query row to the reference rows (skipping the
    reference rows of the query's own group when groups are given); inf when too few remain."""
    from sklearn.metrics import pairwise_distances_chunked

    out = np.empty(len(Zq))
    start = 0
    for chunk in pairwise_distances_chunked(Zq, Zr, metric="euclidean"):
        rows = slice(start, start + len(chunk))
        if groups_ref is not None:
            chunk = np.where(groups_query[rows, None] == groups_ref[None, :], np.inf, chunk)
        kk = min(k, chunk.shape[1])
        out[rows] = np.partition(chunk, kk - 1, axis=1)[:, kk - 1] if kk else np.inf
        start += len(chunk)
    return out


# ---- fit-time helpers (called by select.compute_fit) ----------------------------------------

def needs_of(frame: pd.DataFrame, features: list[str], extraction: dict) -> dict:
    """What the model needs, from its training cases: the modalities they had and the mask source.

    Parameters
    ----------
    frame : pandas.DataFrame
        The training feature table.
    features : list of str
        The model's feature columns.
    extraction : dict
        The table's provenance.
    """
    wood_cols = [c for c in features if str(c).startswith("wood_")]
    share = float(frame[wood_cols].notna().any(axis=1).mean()) if wood_cols and len(frame) else 0.0
    return {"modalities": ["clinical", "wood"] if share >= 0.5 else ["clinical"], "wood_share": round(share, 3),
            "mask_source": str((extraction or {}).get("masks") or "given")}


def fit_for_run(frame: pd.DataFrame, X: np.ndarray, features: list[str], plan: pd.DataFrame, provenance: dict,
                oof: pd.DataFrame, models: dict, *, coverage: float = 0.9) -> dict:
    """Everything ``fit`` records about applicability and conformal sets.

    Parameters
    ----------
    frame : pandas.DataFrame
        The training feature table (rows of ``X``), with ``case_id`` and ``patient_id``.
    X : numpy.ndarray
        Its feature matrix.
    features : list of str
        Feature columns of ``X``.
    plan : pandas.DataFrame
        The fold plan (``case_id``, ``repeat``, ``fold``).
    provenance : dict
        The feature table's provenance (for the manifest and mask source).
    oof : pandas.DataFrame
        Out-of-fold predictions of all pipelines.
    models : dict
        ``{target: {"pipeline", "classes", ...}}`` of the saved model.
    coverage : float
        Conformal coverage.

    Returns
    -------
    dict
        ``check`` (:class:`Applicability` on all cases), ``oof_flags`` (frame: case_id, fold,
        in_scope, scope_reason, distance), ``conformal`` ({target: summary}), ``conformal_oof``
        (frame), ``run_json`` (the plain part for run.json).
    """
    from vitfeat.pipelines.conformal import cross_conformal

    conformal, conformal_oof = {}, []
    for target, m in models.items():
        part = oof[(oof["target"] == target) & (oof["pipeline"] == m["pipeline"])]
        if len(part):
            res = cross_conformal(part, m["classes"], coverage)
            conformal_oof.append(res.pop("sets").assign(target=target))
            conformal[target] = res
    conformal_oof = pd.concat(conformal_oof, ignore_index=True) if conformal_oof else None
    manifest = (provenance or {}).get("manifest")
    quality = None
    if manifest and Path(manifest).is_file():
        try:
            from vitfeat.dataset import load_manifest

            quality = photo_quality(load_manifest(manifest, require_targets=False).frame, frame["case_id"])
        except (ValueError, OSError) as exc:
            log.warning("applicability: the training photos could not be read for the image gates: %s", exc)
    note = None if quality else "image gates not fitted: the training photos (the table's manifest) were not found"
    patients = frame["patient_id"].astype(str).to_numpy()
    try:
        check = Applicability.fit(X, features, patients, quality)
    except ValueError as exc:  # too few cases, or no feature varies: the run goes on without a check
        log.warning("applicability check not fitted: %s", exc)
        return {"check": None, "oof_flags": None, "conformal": conformal, "conformal_oof": conformal_oof,
                "run_json": None}

    first = plan[plan["repeat"] == plan["repeat"].min()]
    first = first.drop_duplicates("case_id")
    fold_of = pd.Series(first["fold"].to_numpy(), index=first["case_id"].astype(str))
    folds = frame["case_id"].astype(str).map(fold_of).to_numpy(dtype=float)
    flags = []
    for k in sorted(np.unique(folds[np.isfinite(folds)])):
        test = folds == k
        train = ~test & np.isfinite(folds)
        sub_q = None if quality is None else {m: [r for r, t in zip(rows, train) if t] for m, rows in quality.items()}
        try:
            fold_check = Applicability.fit(X[train], features, patients[train], sub_q)
        except ValueError as exc:
            log.warning("applicability check not fitted in fold %d (its test cases stay unflagged): %s", k, exc)
            continue
        test_q = None if quality is None else {m: [r for r, t in zip(rows, test) if t] for m, rows in quality.items()}
        ins, why = fold_check.assess(X[test], test_q)
        flags.append(pd.DataFrame({"case_id": frame.loc[test, "case_id"].astype(str).to_numpy(), "fold": int(k),
                                   "in_scope": ins, "scope_reason": why,
                                   "distance": fold_check.distance(X[test])}))
    oof_flags = pd.concat(flags, ignore_index=True) if flags else pd.DataFrame(
        columns=["case_id", "fold", "in_scope", "scope_reason", "distance"])

    effect = {}
    for target, m in models.items():
        part = oof[(oof["target"] == target) & (oof["pipeline"] == m["pipeline"])]
        if len(part):
            effect[target] = scope_effect(part, oof_flags, m["classes"], m.get("positive"))
    run_json = check.to_json() | {
        "needs": needs_of(frame, features, provenance),
        "oof_flagged": int((~oof_flags["in_scope"].astype(bool)).sum()), "oof_assessed": int(len(oof_flags)),
        "oof_effect": effect, "note": note}
    return {"check": check, "oof_flags": oof_flags, "conformal": conformal, "run_json": run_json,
            "conformal_oof": conformal_oof}


def scope_effect(part: pd.DataFrame, flags: pd.DataFrame, classes, positive) -> dict:
    """Balanced accuracy and AUROC of one pipeline's out-of-fold predictions (first repeat) on all
    cases and on the in-scope ones only.

    Parameters
    ----------
    part : pandas.DataFrame
        One pipeline's out-of-fold rows for one target.
    flags : pandas.DataFrame
        Out-of-fold applicability flags (``case_id``, ``in_scope``).
    classes : list
        Class names.
    positive : str or None
        Positive class of a binary target.
    """
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    part = part[part["repeat"] == part["repeat"].min()]
    inscope = part["case_id"].astype(str).map(flags.set_index("case_id")["in_scope"]).fillna(True).astype(bool)
    out = {}
    for name, rows in (("all", part), ("in_scope", part[inscope.to_numpy()])):
        y = rows["y_true"].astype(str)
        entry = {"n": int(len(rows)),
                 "balanced_accuracy": float(balanced_accuracy_score(y, rows["y_pred"].astype(str)))
                 if len(rows) else None, "auroc": None}
        if positive is not None and y.nunique() == 2:
            entry["auroc"] = float(roc_auc_score(y == str(positive), rows[f"proba_{positive}"]))
        out[name] = entry
    return out


def scope_for_prediction(run_dir, meta: dict, frame: pd.DataFrame, X: np.ndarray, manifest_frame=None):
    """``in_scope`` and ``scope_reason`` of predicted cases, or None when the run has no check.

    Parameters
    ----------
    run_dir : path-like
        The run.
    meta : dict
        Its run.json.
    frame : pandas.DataFrame
        The cases' feature table (``case_id``, ``error``).
    X : numpy.ndarray
        Their rows in the model's feature order (all rows; failed ones are NaN).
    manifest_frame : pandas.DataFrame, optional
        Validated manifest of the cases, for the image gates.
    """
    check = Applicability.load(run_dir, meta)
    if check is None:
        return None
    quality = None if manifest_frame is None else photo_quality(manifest_frame, frame["case_id"])
    errors = frame["error"].fillna("").astype(str).tolist() if "error" in frame.columns else None
    return check.assess(X, quality, errors)


def write_scope(scope: dict, run_dir) -> None:
    """Write what :func:`fit_for_run` found into the run: :data:`NPZ_NAME`,
    ``applicability_oof.csv`` and ``conformal_oof.csv`` (run.json carries the plain part).

    Parameters
    ----------
    scope : dict
        From :func:`fit_for_run`.
    run_dir : path-like
        The run directory.
    """
    from vitfeat.atomic import write_csv

    if scope.get("check") is not None:
        scope["check"].save(run_dir)
        write_csv(Path(run_dir) / "applicability_oof.csv", scope["oof_flags"])
    if scope.get("conformal_oof") is not None:
        write_csv(Path(run_dir) / "conformal_oof.csv", scope["conformal_oof"])


def add_scope_columns(out: pd.DataFrame, run_dir, meta: dict, frame: pd.DataFrame, schema: list[str],
                      provenance: dict | None = None, *, manifest_frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Add ``in_scope``, ``scope_reason`` and ``<target>_prediction_set`` to ``predict``'s output.

    Runs fitted before the check existed get neither column. The image gates read the cases'
    photos through the manifest recorded in the table's provenance; without it only the
    feature-space check applies (the reason says so when a case is flagged).

    Parameters
    ----------
    out : pandas.DataFrame
        ``predict``'s output (``<target>_proba_<class>`` columns), changed in place and returned.
    run_dir : path-like
        The run.
    meta : dict
        Its run.json.
    frame : pandas.DataFrame
        The predicted cases' feature table.
    schema : list of str
        The model's feature columns.
    provenance : dict, optional
        The table's provenance (``manifest``).
    manifest_frame : pandas.DataFrame, optional
        The cases' loaded manifest (absolute paths) when they were given in memory.
    """
    from vitfeat.pipelines.conformal import format_set, prediction_sets

    X = frame[schema].to_numpy(dtype=float, copy=True)
    X[~np.isfinite(X)] = np.nan
    manifest = (provenance or {}).get("manifest")
    if manifest_frame is None and manifest and Path(manifest).is_file():
        try:
            from vitfeat.dataset import load_manifest

            manifest_frame = load_manifest(manifest, require_targets=False).frame
        except (ValueError, OSError) as exc:
            log.warning("%s: the photos cannot be re-read for the image gates: %s", manifest, exc)
    scope = scope_for_prediction(run_dir, meta, frame, X, manifest_frame)
    if scope is not None:
        out["in_scope"], out["scope_reason"] = scope
    for target, entry in (meta.get("conformal") or {}).items():
        classes = [str(c) for c in (meta.get("targets") or {}).get(target, {}).get("classes") or []]
        cols = [f"{target}_proba_{c}" for c in classes]
        if not classes or not all(c in out.columns for c in cols):
            continue
        q = math.inf if entry.get("q") is None else float(entry["q"])
        member = prediction_sets(out[cols].to_numpy(dtype=float), q)
        out[f"{target}_prediction_set"] = [format_set(r, classes) for r in member]
    return out


def report_section(meta: dict) -> tuple[list[str], list[str]]:
    """HTML parts and Markdown lines of the report's "When the model cannot answer" section:
    out-of-fold flags with the metrics with and without the flagged cases, and the conformal sets'
    out-of-fold coverage. Empty for runs without the check.

    Parameters
    ----------
    meta : dict
        The run's run.json.
    """
    import html

    scope, conformal = meta.get("applicability"), meta.get("conformal") or {}
    if not scope:
        return [], []
    n, flagged = scope.get("oof_assessed", 0), scope.get("oof_flagged", 0)
    lines = [f"Applicability check ({scope['method']}; k = {scope['k']}, threshold set in each training part so "
             f"that {scope['flag_rate']:.0%} of its cases lie beyond it). Out of fold, fitted on each training "
             f"part and applied to its test fold: {flagged} of {n} cases ({flagged / max(n, 1):.1%}) were flagged "
             "as outside what the model learnt."]
    needs = scope.get("needs") or {}
    lines.append(f"The model needs: {' + '.join(needs.get('modalities') or ['clinical'])} photo(s); masks: "
                 f"{needs.get('mask_source', '?')} (Wood's photos in {needs.get('wood_share', 0):.0%} of training "
                 "cases).")
    if scope.get("note"):
        lines.append(scope["note"] + ".")
    rows = []
    for target, eff in (scope.get("oof_effect") or {}).items():
        def fmt(v):
            return "n/a" if v is None else f"{v:.3f}"

        rows.append((target, eff["all"]["n"], fmt(eff["all"]["balanced_accuracy"]), fmt(eff["all"]["auroc"]),
                     eff["in_scope"]["n"], fmt(eff["in_scope"]["balanced_accuracy"]),
                     fmt(eff["in_scope"]["auroc"])))
    for target, c in conformal.items():
        cov = "n/a" if c.get("empirical_coverage") is None else f"{c['empirical_coverage']:.1%}"
        two = "n/a" if c.get("two_class_share") is None else f"{c['two_class_share']:.1%}"
        lines.append(f"Target {target}: conformal prediction sets at {c['coverage']:.0%} coverage (LAC score, "
                     f"cross-conformal on the out-of-fold predictions): empirical coverage out of fold {cov}; "
                     f"{two} of the sets hold both classes (\"the model cannot separate the stages for this lesion\").")
    head = ("target", "cases", "balanced accuracy", "AUROC", "in-scope cases", "balanced accuracy (in scope)",
            "AUROC (in scope)")
    if rows:
        lines.append("Scores of the saved model's pipeline out of fold (first repeat), on all cases and on the "
                     "cases the check left in scope:")
    parts = ["<h2>When the model cannot answer</h2>"] + [f"<p>{html.escape(t)}</p>" for t in lines]
    md = ["## When the model cannot answer\n"] + [t + "\n" for t in lines]
    if rows:
        parts.append("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows) + "</table>")
        md.append("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" + "\n".join(
            "| " + " | ".join(str(v) for v in r) + " |" for r in rows) + "\n")
    return parts, md
