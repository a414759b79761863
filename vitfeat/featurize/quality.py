"""Image-quality measurements and the gates built on them (the first half of a run's
applicability check; the second half, a distance in feature space, is in
:mod:`vitfeat.pipelines.applicability`).

Each photo is summarised by a handful of cheap, scale-free numbers (:func:`image_quality`):
its size, sharpness, exposure, colour and a dermoscopy tell (dark vignette corners). A
:class:`QualityGates` learns, from the training cases only, a band per number and modality; a
photo outside a band fails that gate with a plain-language reason. The bands are deliberately
wide (the training range widened by its own spread, see :data:`WIDEN`): the gates are meant to
catch gross mismatches — a blank or noise image, a thumbnail, a Wood's-lamp photo given as the
clinical one, a dermoscopy image, a grey image — not to trim the tails of the training data
(that is the feature-space distance's job).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Longest side the measurements are taken at (px); larger photos are shrunk first, so the numbers
#: do not depend on the camera's resolution (sharpness is measured on the same scale for all).
MEASURE_SIDE = 256
#: Photos whose longest side is more than this factor below the smallest or above the largest
#: training photo fail the size gate.
SIZE_FACTOR = 2.0
#: Below this longest side (px) no photo is assessed, whatever the training photos were.
MIN_SIDE = 32
#: A band is [q_lo - WIDEN * spread, q_hi + WIDEN * spread] with q_lo/q_hi the 1st/99th percentiles
#: of the training cases and spread = q_hi - q_lo (never below the stat's FLOOR).
WIDEN = 0.5
LOW_Q, HIGH_Q = 0.01, 0.99

#: name -> (plain-language description, which sides are gated, smallest spread)
STATS: dict[str, tuple[str, str, float]] = {
    "sharpness": ("sharpness (log variance of the Laplacian)", "both", 0.5),
    "lightness": ("mean lightness (L*)", "both", 5.0),
    "contrast": ("spread of lightness (SD of L*)", "both", 2.0),
    "clipped": ("share of black or blown-out pixels", "high", 0.05),
    "chroma": ("colourfulness (mean CIELAB chroma)", "both", 3.0),
    "yellow_blue": ("yellow-blue balance (mean b*; Wood's-lamp photos are blue-violet)", "both", 4.0),
    "red_green": ("red-green balance (mean a*)", "both", 4.0),
    "skin": ("share of skin-coloured pixels", "low", 0.1),
    "corner_dark": ("darkness of the corners against the centre (dermoscopy vignette)", "both", 5.0),
}


def image_quality(rgb: np.ndarray) -> dict[str, float]:
    """Cheap quality measurements of one photo.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(H, W, 3)`` uint8 photo (a grey ``(H, W)`` array is accepted).

    Returns
    -------
    dict
        ``height``, ``width`` (px, as given) and the :data:`STATS` measured after shrinking the
        photo to :data:`MEASURE_SIDE` px: all floats, NaN where undefined (e.g. an empty photo).
    """
    arr = np.asarray(rgb)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"image_quality: expected an (H, W, 3) photo, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr[..., :3]).astype(np.uint8, copy=False)
    h, w = arr.shape[:2]
    out = {"height": float(h), "width": float(w)} | {k: math.nan for k in STATS}
    if h == 0 or w == 0:
        return out
    scale = MEASURE_SIDE / max(h, w)
    if scale < 1:
        arr = cv2.resize(arr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(arr, cv2.COLOR_RGB2LAB).astype(np.float32)
    L = lab[..., 0] * (100.0 / 255.0)
    a, b = lab[..., 1] - 128.0, lab[..., 2] - 128.0
    grey = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    out["sharpness"] = float(np.log1p(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F).var()))
    out["lightness"] = float(L.mean())
    out["contrast"] = float(L.std())
    out["clipped"] = float(((grey <= 3) | (grey >= 252)).mean())
    out["chroma"] = float(np.hypot(a, b).mean())
    out["yellow_blue"] = float(b.mean())
    out["red_green"] = float(a.mean())
    hsv = cv2.cvtColor(arr, cv2.COLOR_RGB2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    out["skin"] = float((((hue <= 25) | (hue >= 165)) & (sat >= 15) & (val >= 40)).mean())
    hh, ww = L.shape
    ch, cw = max(1, hh // 8), max(1, ww // 8)
    corners = np.concatenate([L[:ch, :cw].ravel(), L[:ch, -cw:].ravel(), L[-ch:, :cw].ravel(), L[-ch:, -cw:].ravel()])
    centre = L[hh // 4: hh - hh // 4 or None, ww // 4: ww - ww // 4 or None]
    out["corner_dark"] = float(centre.mean() - corners.mean()) if centre.size else math.nan
    return out


class QualityGates:
    """Bands per modality and :data:`STATS` entry, learnt from training photos.

    Parameters
    ----------
    widen : float
        How far beyond the 1st-99th percentile range a band reaches, in units of that range.
    """

    def __init__(self, widen: float = WIDEN):
        self.widen = float(widen)
        self.bands: dict[str, dict[str, list[float]]] = {}
        self.sides: dict[str, list[float]] = {}

    def fit(self, stats: dict[str, list[dict]]) -> "QualityGates":
        """Learn the bands.

        Parameters
        ----------
        stats : dict
            ``{modality: [image_quality(...) of each training photo of that modality]}``.

        Returns
        -------
        QualityGates
        """
        for modality, rows in stats.items():
            rows = [r for r in rows if r]
            if not rows:
                continue
            sides = np.array([max(r["height"], r["width"]) for r in rows], dtype=float)
            self.sides[modality] = [float(np.nanmin(sides)), float(np.nanmax(sides))]
            bands = {}
            for name, (_, side, floor) in STATS.items():
                vals = np.array([r.get(name, math.nan) for r in rows], dtype=float)
                vals = vals[np.isfinite(vals)]
                if not len(vals):
                    continue
                lo, hi = np.quantile(vals, [LOW_Q, HIGH_Q])
                spread = max(hi - lo, floor)
                bands[name] = [float(lo - self.widen * spread) if side in ("both", "low") else -math.inf,
                               float(hi + self.widen * spread) if side in ("both", "high") else math.inf]
            self.bands[modality] = bands
        return self

    def check(self, modality: str, quality: dict[str, float]) -> list[str]:
        """Reasons (plain words) why this photo fails the gates; empty when it passes.

        Parameters
        ----------
        modality : str
            ``clinical`` or ``wood``.
        quality : dict
            :func:`image_quality` of the photo.
        """
        photo = "clinical photo" if modality == "clinical" else "Wood's-lamp photo"
        side = max(quality.get("height", 0.0), quality.get("width", 0.0))
        if side < MIN_SIDE:
            return [f"the {photo} is {int(quality.get('width', 0))}x{int(quality.get('height', 0))} px, too small to "
                    f"assess (at least {MIN_SIDE} px needed)"]
        reasons = []
        seen = self.sides.get(modality)
        if seen and not (seen[0] / SIZE_FACTOR <= side <= seen[1] * SIZE_FACTOR):
            reasons.append(f"the {photo}'s longest side is {side:.0f} px; the training photos had "
                           f"{seen[0]:.0f}-{seen[1]:.0f} px")
        for name, (lo, hi) in self.bands.get(modality, {}).items():
            v = quality.get(name, math.nan)
            if not np.isfinite(v):
                continue
            if v < lo or v > hi:
                where = "below" if v < lo else "above"
                reasons.append(f"the {photo}'s {STATS[name][0]} is {v:.2f}, {where} the training range "
                               f"({_fmt(lo)} to {_fmt(hi)})")
        return reasons

    def to_dict(self) -> dict:
        """Plain JSON types (infinite band ends as None)."""
        def clean(v):
            return None if not np.isfinite(v) else float(v)

        return {"widen": self.widen, "sides": self.sides,
                "bands": {m: {k: [clean(v[0]), clean(v[1])] for k, v in b.items()} for m, b in self.bands.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "QualityGates":
        """Inverse of :meth:`to_dict`.

        Parameters
        ----------
        data : dict
            ``widen``, ``sides`` and ``bands`` as written by :meth:`to_dict` (None bounds are infinite).

        Returns
        -------
        QualityGates
        """
        gates = cls(data.get("widen", WIDEN))
        gates.sides = {m: [float(a), float(b)] for m, (a, b) in (data.get("sides") or {}).items()}
        gates.bands = {m: {k: [-math.inf if v[0] is None else float(v[0]), math.inf if v[1] is None else float(v[1])]
                           for k, v in b.items()} for m, b in (data.get("bands") or {}).items()}
        return gates


def _fmt(v: float) -> str:
    return "-inf" if v == -math.inf else "inf" if v == math.inf else f"{v:.2f}"
