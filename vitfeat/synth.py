"""Paired clinical + Wood's-lamp vitiligo photographs with known ground truth.

No public Wood's-lamp data exists, so this generator is how the toolkit is tested and demonstrated.
Each case is a lesion rendered twice from one latent description (see :class:`CaseTruth`):

* a **clinical** photo: skin of Fitzpatrick type I-VI with texture and uneven illumination, a
  depigmented macule whose border is a Gaussian-blurred step (``blur_px`` is its 10 %-90 %
  transition width), optional trichrome zone, hyperpigmented rim, confetti satellites and hair;
* a **Wood's** photo: dark violet UV-lit skin where depigmented skin fluoresces blue-white; the
  fluorescent lesion is ``area_ratio`` times the clinical one, its fluorescence is patchy in active
  lesions, and the camera moved (rotation, scale, shift) and exposed differently between the shots.

Stage signs follow DESIGN.md: *active* lesions have blurred borders, Wood's area > clinical area,
satellites, a trichrome zone and patchy fluorescence; *stable* ones are sharp, ratio ~1, uniform,
sometimes with a hyperpigmented rim. ``difficulty`` mixes each sign towards a class-independent draw
so that the classes overlap. Every case has its own random stream (``seed``, case index), so the
output is byte-identical for the same arguments whatever the number of workers.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from PIL import Image
from skimage.color import lab2rgb
from tqdm.auto import tqdm

from vitfeat.atomic import write_bytes, write_text
from vitfeat.dataset import write_manifest

LABELS = ("stable", "active")
# 10 %-90 % width of a Gaussian-blurred step edge is 2 * z(0.9) * sigma.
TRANSITION_PER_SIGMA = 2 * 1.2815515655446004

# Typical constitutive skin colour (CIELAB L*, a*, b*) per Fitzpatrick type.
#: Manifest column ``fitzpatrick`` (the skin type that sets the photos' skin colour and the Wood's photo's
#: darkness), so ``fit --subgroup fitzpatrick`` can report results per skin type.
FITZPATRICK = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI"}
SKIN_LAB = {1: (72, 9, 14), 2: (66, 10, 16), 3: (59, 11, 18), 4: (51, 12, 19), 5: (42, 12, 17), 6: (33, 10, 13)}
DEPIGMENTED_LAB = (86, 6, 8)
WOOD_BACKGROUND = np.array([0.20, 0.10, 0.36], np.float32)
WOOD_FLUORESCENCE = np.array([0.78, 0.86, 1.0], np.float32)


@dataclass
class SynthConfig:
    """What :func:`generate` makes (written to ``synth.yaml``).

    Attributes
    ----------
    n : int
        Cases.
    seed : int
        Random seed (the data set is a function of the configuration).
    size : int
        Photo side in pixels (>= 64).
    difficulty : float
        0 (stages far apart) to 1 (overlapping).
    active_fraction : float
        Share of active cases.
    cases_per_patient : float
        Mean cases per patient (>= 1).
    label_noise : float
        Share of manifest labels flipped (``truth.csv`` keeps the true ones).
    hair : float
        Share of photos with hair.
    jpeg_quality : tuple of int
        Range of JPEG qualities.
    """

    n: int = 200
    seed: int = 0
    size: int = 512
    difficulty: float = 0.3
    active_fraction: float = 0.5
    cases_per_patient: float = 1.0
    label_noise: float = 0.0
    hair: float = 0.25
    jpeg_quality: tuple[int, int] = (80, 95)

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.size < 64:
            raise ValueError(f"size must be >= 64 px, got {self.size}")
        for name in ("difficulty", "active_fraction", "label_noise", "hair"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.cases_per_patient < 1:
            raise ValueError(f"cases_per_patient must be >= 1, got {self.cases_per_patient}")


@dataclass
class CaseTruth:
    """The generator's latent parameters for one case (one row of truth.csv).

    Attributes
    ----------
    case_id, patient_id : str
        Ids.
    label, observed_label : str
        The true stage and what the manifest says (they differ under label noise).
    area_ratio, blur_px, n_satellites, wood_contrast, patchiness, trichrome_px, hyper_rim : number
        The clinical signals the features should recover (see the field comments).
    """

    case_id: str
    patient_id: str
    label: str  # true stage
    observed_label: str  # what the manifest says (differs under label noise)
    skin_type: int
    area_ratio: float  # Wood's / clinical area of the main lesion, canonical frame (pixel-exact)
    blur_px: float  # 10-90 % border transition width in the clinical photo, px
    wood_blur_px: float
    n_satellites: int
    satellite_area_px: float  # total, clinical frame
    wood_contrast: float  # fluorescence mixing strength, 0-1
    patchiness: float  # 0 = uniform fluorescence
    trichrome_px: float  # width of the intermediate-tone zone, 0 = none
    hyper_rim: float  # darkening of a perilesional rim, 0 = none
    elongation: float
    clinical_area_px: int
    wood_area_px: int  # canonical frame (before the Wood's camera moved)
    wood_rotation_deg: float
    wood_scale: float
    wood_shift_x: float
    wood_shift_y: float
    wood_exposure: float
    hair: bool
    jpeg_quality: int


# ---------------------------------------------------------------------------------------------
# Small array helpers
# ---------------------------------------------------------------------------------------------


def _lab_to_rgb(lab) -> np.ndarray:
    return lab2rgb(np.array(lab, np.float64).reshape(1, 1, 3)).reshape(3).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-ish smooth random field (bicubic upsampling of a coarse grid)."""
    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)


def _soften(mask: np.ndarray, sigma: float) -> np.ndarray:
    m = mask.astype(np.float32)
    if sigma <= 0.05:
        return m
    return cv2.GaussianBlur(m, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def _radial_shape(rng, n_harmonics=5, max_amp=0.22):
    amps = rng.uniform(0, max_amp, n_harmonics) / np.arange(1, n_harmonics + 1) ** 0.7
    phases = rng.uniform(0, 2 * np.pi, n_harmonics)
    return amps, phases


def _radius(theta, radius, amps, phases):
    k = np.arange(2, 2 + len(amps)).reshape((-1,) + (1,) * np.ndim(theta))
    wobble = (amps.reshape(k.shape) * np.cos(k * theta + phases.reshape(k.shape))).sum(0)
    return radius * (1.0 + wobble)


def _nevi(rng, size: int, s: float, keepout: np.ndarray, count: int = 14) -> np.ndarray:
    """Small pigmented naevi away from the lesion: the landmarks both photos share (soft, 0-1)."""
    layer = np.zeros((size, size), np.float32)
    for _ in range(count):
        x, y = (rng.uniform(0.08, 0.92, 2) * size).astype(int)
        r = max(1, int(round(s * rng.uniform(2.5, 5.0))))
        y0, y1, x0, x1 = max(0, y - r - 2), y + r + 3, max(0, x - r - 2), x + r + 3
        if keepout[y0:y1, x0:x1].any():
            continue
        cv2.circle(layer, (int(x), int(y)), r, 1.0, -1, lineType=cv2.LINE_AA)
    return cv2.GaussianBlur(layer, (0, 0), 1.0)


def _jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def _png_bytes(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _polygons(mask: np.ndarray) -> list[np.ndarray]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        c = cv2.approxPolyDP(c, 1.0, True).reshape(-1, 2)
        if len(c) >= 3:
            out.append(c)
    return out


def yolo_label_lines(mask: np.ndarray, kind: str, class_id: int = 0) -> list[str]:
    """YOLO label lines for each connected component: ``box`` (cx cy w h) or ``polygon``.

    Parameters
    ----------
    mask : numpy.ndarray
        (H, W) bool.
    kind : {"box", "polygon"}
        Label format.
    class_id : int, default 0
        The class written first on each line.

    Returns
    -------
    list of str
    """
    h, w = mask.shape
    lines = []
    for poly in _polygons(mask):
        if kind == "box":
            x0, y0 = poly.min(0)
            x1, y1 = poly.max(0) + 1
            vals = [(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h]
        else:
            vals = (poly / np.array([w, h])).ravel().tolist()
        lines.append(" ".join([str(class_id)] + [f"{v:.6f}" for v in vals]))
    return lines


# ---------------------------------------------------------------------------------------------
# One case
# ---------------------------------------------------------------------------------------------


def _sign(rng, active: bool, difficulty: float) -> float:
    """Strength in [0, 1] of one stage sign: the class value pulled towards a random draw."""
    return float(np.clip((1 - difficulty) * float(active) + difficulty * rng.uniform(), 0, 1))


def _draw_latents(rng, cfg: SynthConfig, active: bool) -> dict:
    s = cfg.size / 512.0  # lengths are specified at 512 px and scale with the image
    d = cfg.difficulty
    blur_sign, ratio_sign, sat_sign, tri_sign, patch_sign = (_sign(rng, active, d) for _ in range(5))
    n_sat = int(round(sat_sign * rng.uniform(2.0, 7.0))) if sat_sign > 0.35 else 0
    return dict(
        blur_px=s * (1.5 + 13.0 * blur_sign) * rng.uniform(0.9, 1.1),
        area_ratio_target=1.0 + (0.02 + 0.8 * ratio_sign) * rng.uniform(0.85, 1.15) if ratio_sign > 0.15
        else 1.0 + rng.uniform(0.0, 0.04),
        n_satellites=n_sat,
        trichrome_px=s * 14.0 * tri_sign if tri_sign > 0.5 else 0.0,
        patchiness=0.6 * patch_sign,
        hyper_rim=rng.uniform(0.10, 0.25) if (not active and rng.uniform() < 0.4) else 0.0,
        wood_contrast=float(rng.uniform(0.55, 0.95) - 0.12 * _sign(rng, active, d)),
    )


def _lesion_geometry(rng, S: int, lat: dict) -> SimpleNamespace:
    """The lesion in the canonical (clinical camera) frame: pixel grid, polar coordinates, rims, masks."""
    g = SimpleNamespace()
    g.yy, g.xx = np.mgrid[0:S, 0:S].astype(np.float32)
    g.cx, g.cy = S * (0.5 + rng.uniform(-0.05, 0.05, 2))
    g.radius = S * rng.uniform(0.10, 0.16)
    g.elong = rng.uniform(1.0, 1.5)
    tilt = rng.uniform(0, np.pi)
    dx, dy = g.xx - g.cx, g.yy - g.cy
    u = (dx * math.cos(tilt) + dy * math.sin(tilt)) / g.elong
    v = -dx * math.sin(tilt) + dy * math.cos(tilt)
    g.dist, theta = np.hypot(u, v), np.arctan2(v, u)
    amps, phases = _radial_shape(rng)
    g.rim = _radius(theta, g.radius, amps, phases)
    g.clinical_main = g.dist <= g.rim
    g.wood_main = g.dist <= g.rim * math.sqrt(lat["area_ratio_target"])
    g.area_ratio = float(g.wood_main.sum() / g.clinical_main.sum())
    return g


def _place_satellites(rng, g: SimpleNamespace, lat: dict, S: int, s: float):
    """Small macules around the Wood's lesion, apart from it and each other.

    Returns ``(satellite mask, keep-out mask, number placed, satellite area in pixels)``.
    """
    sats = np.zeros((S, S), bool)
    gap = 2 * lat["blur_px"] + 8 * s
    keepout = cv2.dilate(g.wood_main.astype(np.uint8), cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * int(gap) + 1, 2 * int(gap) + 1))) > 0
    placed, sat_area = 0, 0
    for _ in range(60 * max(lat["n_satellites"], 1)):
        if placed >= lat["n_satellites"]:
            break
        r_sat = s * rng.uniform(3.5, 7.0)
        ang = rng.uniform(0, 2 * np.pi)
        far = g.radius * math.sqrt(lat["area_ratio_target"]) * g.elong * rng.uniform(1.3, 1.9) + gap
        px, py = g.cx + far * math.cos(ang), g.cy + far * math.sin(ang)
        margin = 0.12 * S
        if not (margin < px < S - margin and margin < py < S - margin):
            continue
        disc = (g.xx - px) ** 2 + (g.yy - py) ** 2 <= r_sat ** 2
        if (disc & keepout).any():
            continue
        sats |= disc
        keepout |= cv2.dilate(disc.astype(np.uint8), np.ones((int(gap), int(gap)), np.uint8)) > 0
        placed += 1
        sat_area += int(disc.sum())
    return sats, keepout, placed, sat_area


def _clinical_photo(rng, g: SimpleNamespace, sats, keepout, skin_type: int, lat: dict, S: int, s: float):
    """The daylight photo; also returns the skin texture, naevi, hyperpigmented ring and vignette the
    Wood's photo shares (the same skin)."""
    skin = _lab_to_rgb(np.array(SKIN_LAB[skin_type]) + rng.normal(0, [2.0, 1.0, 1.5]))
    depig = _lab_to_rgb(np.array(DEPIGMENTED_LAB) + rng.normal(0, [2.0, 1.0, 1.0]))
    texture = 1 + 0.035 * _smooth_noise(rng, S, 24) + 0.02 * _smooth_noise(rng, S, 96)
    sigma = lat["blur_px"] / TRANSITION_PER_SIGMA
    alpha = np.maximum(_soften(g.clinical_main, sigma), _soften(sats, min(sigma, 1.2 * s)))
    if lat["trichrome_px"] > 0:
        grown = g.dist <= g.rim + lat["trichrome_px"]
        alpha = np.maximum(alpha, 0.45 * _soften(grown, sigma))
    img = skin * (1 - alpha[..., None]) + depig * alpha[..., None]
    ring = None
    if lat["hyper_rim"] > 0:
        ring = (g.dist <= g.rim + 10 * s) & ~g.clinical_main
        # the rim darkens skin outside the lesion only, so the border keeps its recorded blur
        rim_alpha = _soften(ring, 3 * s) * (1 - alpha)
        img *= 1 - lat["hyper_rim"] * rim_alpha[..., None]
    nevi = _nevi(rng, S, s, keepout)
    img *= 1 - 0.5 * nevi[..., None]
    phi = rng.uniform(0, 2 * np.pi)
    xx, yy = g.xx, g.yy
    ramp = ((xx - S / 2) * math.cos(phi) + (yy - S / 2) * math.sin(phi)) / S
    vignette = ((xx - S / 2) ** 2 + (yy - S / 2) ** 2) / (S / 2) ** 2
    illum = 1 + rng.uniform(0.1, 0.35) * ramp - rng.uniform(0.05, 0.2) * vignette
    img = img * texture[..., None] * illum[..., None] * rng.uniform(0.9, 1.1)
    img += rng.normal(0, 0.012, img.shape).astype(np.float32)
    clinical_rgb = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return clinical_rgb, texture, nevi, ring, vignette


def _wood_photo(rng, g: SimpleNamespace, sats, skin_type: int, lat: dict, texture, nevi, ring, vignette,
                S: int, s: float):
    """The Wood's photo in the canonical frame (float RGB), its border blur sigma and exposure."""
    darkness = 1.0 - 0.07 * (skin_type - 1)
    w_texture = 1 + 1.2 * (texture - 1)  # the same skin, seen under UV
    w_sigma = max(0.6 * lat["blur_px"], 1.0 * s) / TRANSITION_PER_SIGMA
    fl = np.maximum(_soften(g.wood_main, w_sigma), _soften(sats, 1.0 * s))
    patches = np.clip(0.5 + 0.5 * _smooth_noise(rng, S, 10), 0, 1)
    fl = fl * lat["wood_contrast"] * (1 - lat["patchiness"] * patches)
    wimg = WOOD_BACKGROUND * darkness * w_texture[..., None]
    if lat["hyper_rim"] > 0:
        wimg = wimg * (1 - 0.8 * lat["hyper_rim"] * _soften(ring, 3 * s)[..., None])
    wimg = wimg * (1 - 0.7 * nevi[..., None])  # pigmented naevi look darker under Wood's light
    wimg = wimg * (1 - fl[..., None]) + WOOD_FLUORESCENCE * fl[..., None]
    w_vignette = 1 - rng.uniform(0.25, 0.5) * vignette
    exposure = float(rng.uniform(0.75, 1.25))
    wimg = wimg * w_vignette[..., None] * exposure
    wimg += rng.normal(0, 0.015, wimg.shape).astype(np.float32)
    return wimg, w_sigma, exposure


def _add_hair(rng, clinical_rgb, wimg, S: int, s: float):
    """Draw hairs over both photos (dark on daylight, near-black under UV)."""
    hair_layer = np.zeros((S, S), np.uint8)
    for _ in range(int(rng.integers(5, 25))):
        p0 = rng.uniform(0, S, 2)
        direction = rng.uniform(0, 2 * np.pi)
        length, bend = rng.uniform(0.15, 0.5) * S, rng.uniform(-0.8, 0.8)
        t = np.linspace(0, 1, 24)
        ang = direction + bend * t
        pts = p0 + np.cumsum(np.stack([np.cos(ang), np.sin(ang)], 1) * length / 24, 0)
        cv2.polylines(hair_layer, [pts.astype(np.int32)], False, 255, max(1, int(round(1.5 * s))),
                      lineType=cv2.LINE_AA)
    hair_alpha = (hair_layer.astype(np.float32) / 255.0)[..., None] * 0.85
    hair_rgb = np.array([0.10, 0.07, 0.05], np.float32)
    clinical_rgb = ((clinical_rgb / 255.0) * (1 - hair_alpha) + hair_rgb * hair_alpha)
    clinical_rgb = (np.clip(clinical_rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    return clinical_rgb, wimg * (1 - hair_alpha) + 0.03 * hair_alpha


def _move_wood_camera(rng, wimg, wood_mask_canonical, S: int):
    """The Wood's camera moved: a similarity transform about the image centre of photo and mask."""
    rot, scale = float(rng.uniform(-8, 8)), float(rng.uniform(0.9, 1.1))
    shift = rng.uniform(-0.04, 0.04, 2) * S
    M = cv2.getRotationMatrix2D((S / 2, S / 2), rot, scale)
    M[:, 2] += shift
    wood_rgb = cv2.warpAffine((np.clip(wimg, 0, 1) * 255 + 0.5).astype(np.uint8), M, (S, S),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    wood_mask = cv2.warpAffine(wood_mask_canonical.astype(np.uint8), M, (S, S),
                               flags=cv2.INTER_NEAREST, borderValue=0) > 0
    return wood_rgb, wood_mask, rot, scale, shift


def _write_case_files(out: Path, case_id: str, quality: int, q_lo: int, clinical_rgb, wood_rgb,
                      clinical_mask, wood_mask) -> dict:
    """Photos (JPEG), masks (PNG) and YOLO labels of one case, each through vitfeat.atomic."""
    names = {
        "clinical": f"images/{case_id}_clinical.jpg", "wood": f"images/{case_id}_wood.jpg",
        "clinical_mask": f"masks/{case_id}_clinical.png", "wood_mask": f"masks/{case_id}_wood.png",
    }
    write_bytes(out / names["clinical"], _jpeg_bytes(clinical_rgb, quality))
    write_bytes(out / names["wood"], _jpeg_bytes(wood_rgb, max(q_lo, quality - 5)))
    write_bytes(out / names["clinical_mask"], _png_bytes(clinical_mask))
    write_bytes(out / names["wood_mask"], _png_bytes(wood_mask))
    for modality, mask in (("clinical", clinical_mask), ("wood", wood_mask)):
        stem = f"{case_id}_{modality}.txt"
        write_bytes(out / "labels" / stem, "\n".join(yolo_label_lines(mask, "polygon")).encode() + b"\n")
        write_bytes(out / "labels-boxes" / stem, "\n".join(yolo_label_lines(mask, "box")).encode() + b"\n")
    return names


def _render_case(index: int, case_id: str, patient_id: str, skin_type: int, active: bool,
                 observed: str, cfg: SynthConfig, out: Path) -> dict:
    """Render, write and describe one case; every random draw comes from ``rng`` in a fixed order."""
    rng = np.random.default_rng([cfg.seed, index])
    S = cfg.size
    s = S / 512.0
    lat = _draw_latents(rng, cfg, active)
    g = _lesion_geometry(rng, S, lat)
    sats, keepout, placed, sat_area = _place_satellites(rng, g, lat, S, s)
    clinical_mask = g.clinical_main | sats
    wood_mask_canonical = g.wood_main | sats
    clinical_rgb, texture, nevi, ring, vignette = _clinical_photo(rng, g, sats, keepout, skin_type, lat, S, s)
    wimg, w_sigma, exposure = _wood_photo(rng, g, sats, skin_type, lat, texture, nevi, ring, vignette, S, s)
    has_hair = bool(rng.uniform() < cfg.hair)
    if has_hair:
        clinical_rgb, wimg = _add_hair(rng, clinical_rgb, wimg, S, s)
    wood_rgb, wood_mask, rot, scale, shift = _move_wood_camera(rng, wimg, wood_mask_canonical, S)
    q_lo, q_hi = cfg.jpeg_quality
    quality = int(rng.integers(q_lo, q_hi + 1))
    names = _write_case_files(out, case_id, quality, q_lo, clinical_rgb, wood_rgb, clinical_mask, wood_mask)

    truth = CaseTruth(
        case_id=case_id, patient_id=patient_id, label=LABELS[int(active)], observed_label=observed,
        skin_type=skin_type, area_ratio=round(g.area_ratio, 5), blur_px=round(lat["blur_px"], 4),
        wood_blur_px=round(w_sigma * TRANSITION_PER_SIGMA, 4), n_satellites=placed,
        satellite_area_px=float(sat_area), wood_contrast=round(lat["wood_contrast"], 4),
        patchiness=round(lat["patchiness"], 4), trichrome_px=round(lat["trichrome_px"], 3),
        hyper_rim=round(lat["hyper_rim"], 4), elongation=round(g.elong, 4),
        clinical_area_px=int(g.clinical_main.sum()), wood_area_px=int(g.wood_main.sum()),
        wood_rotation_deg=round(rot, 4), wood_scale=round(scale, 5), wood_shift_x=round(float(shift[0]), 3),
        wood_shift_y=round(float(shift[1]), 3), wood_exposure=round(exposure, 4), hair=has_hair,
        jpeg_quality=quality,
    )
    return {"row": {"case_id": case_id, "patient_id": patient_id, **{k: str(out / v) for k, v in names.items()},
                    "label": observed, "fitzpatrick": FITZPATRICK[skin_type]}, "truth": asdict(truth)}


# ---------------------------------------------------------------------------------------------
# The data set
# ---------------------------------------------------------------------------------------------


def plan_cases(cfg: SynthConfig) -> pd.DataFrame:
    """Who is who: case ids, patients, skin types, true and observed labels (cheap, deterministic).

    Parameters
    ----------
    cfg : SynthConfig
        The configuration.

    Returns
    -------
    pandas.DataFrame
    """
    rng = np.random.default_rng([cfg.seed, 10**9])
    rows, patient = [], 0
    while len(rows) < cfg.n:
        patient += 1
        k = 1 + rng.poisson(cfg.cases_per_patient - 1) if cfg.cases_per_patient > 1 else 1
        skin_type = int(rng.integers(1, 7))
        patient_active = rng.uniform() < cfg.active_fraction
        for _ in range(min(k, cfg.n - len(rows))):
            # lesions of one patient mostly share the disease activity, not always
            active = patient_active if rng.uniform() < 0.85 or k == 1 else not patient_active
            flipped = rng.uniform() < cfg.label_noise
            rows.append(dict(case_id=f"case{len(rows) + 1:04d}", patient_id=f"p{patient:04d}",
                             skin_type=skin_type, active=bool(active),
                             observed=LABELS[int(active != flipped)]))
    return pd.DataFrame(rows)


def generate(out_dir, n: int = 200, seed: int = 0, size: int = 512, difficulty: float = 0.3,
             active_fraction: float = 0.5, cases_per_patient: float = 1.0, label_noise: float = 0.0,
             hair: float = 0.25, jobs: int = -1, progress: bool = True) -> Path:
    """Write a synthetic paired data set to ``out_dir`` and return the manifest path.

    Writes ``manifest.csv`` (paths relative to ``out_dir``), ``truth.csv`` (latent parameters per
    case), ``images/``, ``masks/`` (0/255 PNG), YOLO labels (``labels/`` polygons, ``labels-boxes/``
    boxes, one file per image stem) and ``synth.yaml`` (the arguments).

    Parameters
    ----------
    out_dir : path-like
        The folder (created).
    n, seed, size, difficulty, active_fraction, cases_per_patient, label_noise, hair
        See :class:`SynthConfig`.
    jobs : int, default -1
        Worker processes (-1: all cores).
    progress : bool, default True
        Progress bar.

    Returns
    -------
    pathlib.Path
        ``manifest.csv``.
    """
    cfg = SynthConfig(n=n, seed=seed, size=size, difficulty=difficulty, active_fraction=active_fraction,
                      cases_per_patient=cases_per_patient, label_noise=label_noise, hair=hair)
    out = Path(out_dir).resolve()
    for sub in ("images", "masks", "labels", "labels-boxes"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    plan = plan_cases(cfg)
    tasks = (delayed(_render_case)(i, r.case_id, r.patient_id, r.skin_type, r.active, r.observed, cfg, out)
             for i, r in enumerate(plan.itertuples(index=False)))
    results = Parallel(n_jobs=jobs, return_as="generator")(tasks)
    results = list(tqdm(results, total=len(plan), desc="synth", unit="case", disable=not progress))
    manifest = pd.DataFrame([r["row"] for r in results])
    truth = pd.DataFrame([r["truth"] for r in results])
    truth.insert(2, "difficulty", cfg.difficulty)
    write_text(out / "truth.csv", truth.to_csv(index=False))
    import yaml

    write_text(out / "synth.yaml", yaml.safe_dump(asdict(cfg) | {"jpeg_quality": list(cfg.jpeg_quality)},
                                                          sort_keys=True))
    return write_manifest(manifest, out / "manifest.csv")


