"""Named, seeded image perturbations for feature-robustness studies (Zwanenburg et al., Sci Rep 2019).

A perturbation changes one case the way a re-photograph or another annotator would: a small
rotation, shift or zoom of the camera, sensor noise, defocus, other lighting, JPEG recompression,
or a mask drawn a few pixels wider or narrower (the "contour" perturbation). It is applied to the
clinical photo, the Wood's photo and their masks together: a geometric change moves a photo and its
mask by the same transform, and both photos get the same drawn parameters, so the pair stays
registered. Parameters are drawn from a generator seeded by ``(seed, perturbation, case, repeat)``
(:func:`perturbation_rng`), so one case's version is the same whatever else runs, in any order or
process, and every drawn parameter is returned for the record.

Perturbations live in :data:`PERTURBATIONS` (a :class:`vitfeat.registry.Registry`; entry-point group
``vitfeat.perturbations``); :func:`register_perturbation` adds one.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from vitfeat.registry import Registry

MODALITIES = ("clinical", "wood")


@dataclass(frozen=True)
class Perturbation:
    """A named perturbation: ``func(images, masks, rng) -> (images, masks, params)``.

    ``images`` and ``masks`` are ``{modality: array or None}`` (RGB uint8 photos, bool masks); the
    function returns new dicts (never edits its inputs) and the parameters it drew.

    Attributes
    ----------
    name : str
        The registered name (``--perturbations`` takes it).
    description : str
        One line in plain words.
    func : callable
        ``func(images, masks, rng) -> (images, masks, params)``.
    """

    name: str
    description: str
    func: Callable


#: Every registered perturbation, by name.
PERTURBATIONS: Registry = Registry("perturbation", "vitfeat.perturbations")
#: What ``vitfeat robustness`` runs without ``--perturbations`` (the unperturbed ``none`` row is always added).
DEFAULT_PERTURBATIONS = ("rotation", "translation", "scale", "noise", "blur", "colour", "jpeg", "contour",
                         "combined")


def register_perturbation(name: str, description: str):
    """Decorator registering ``func(images, masks, rng) -> (images, masks, params)`` as ``name``.

    Parameters
    ----------
    name : str
        The perturbation's name (``--perturbations`` takes it).
    description : str
        One line in plain words (shown in the summary and the help).

    Returns
    -------
    callable
        The decorator.
    """

    def decorate(func):
        PERTURBATIONS.register(name, Perturbation(name, description, func))
        return func

    return decorate


def get_perturbation(name: str) -> Perturbation:
    """The perturbation called ``name``; :class:`~vitfeat.registry.UnknownNameError` lists the valid ones.

    Parameters
    ----------
    name : str
        A registered perturbation name.

    Returns
    -------
    Perturbation
    """
    return PERTURBATIONS.get(name)


def perturbation_rng(seed: int, perturbation: str, case_id: str, repeat: int) -> np.random.Generator:
    """The generator for one (case, perturbation, repeat): stable across runs, processes and orders.

    Parameters
    ----------
    seed : int
        The study's seed.
    perturbation : str
        Perturbation name.
    case_id : str
        The case.
    repeat : int
        Repeat number (0-based).

    Returns
    -------
    numpy.random.Generator
    """
    words = [int(seed), zlib.crc32(perturbation.encode()), zlib.crc32(str(case_id).encode()), int(repeat)]
    return np.random.default_rng(np.random.SeedSequence(words))


def apply_perturbation(name: str, images: dict, masks: dict, *, seed: int, case_id: str,
                       repeat: int) -> tuple[dict, dict, dict]:
    """Apply perturbation ``name`` to one case, seeded by ``(seed, name, case_id, repeat)``.

    Parameters
    ----------
    name : str
        A registered perturbation (``none`` returns copies of the inputs).
    images, masks : dict
        ``{modality: array or None}``: RGB uint8 photos and bool masks.
    seed, case_id, repeat
        See :func:`perturbation_rng`.

    Returns
    -------
    images, masks, params : dict
        The perturbed arrays and the parameters drawn.
    """
    rng = perturbation_rng(seed, name, case_id, repeat)
    return get_perturbation(name).func(dict(images), dict(masks), rng)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


def _affine(images: dict, masks: dict, angle: float = 0.0, scale: float = 1.0, shift=(0.0, 0.0)) -> tuple[dict, dict]:
    """Rotate by ``angle`` degrees and zoom by ``scale`` about the centre, then shift by ``shift``
    (fractions of width and height); photos bilinear with mirrored borders, masks nearest."""
    out_i, out_m = {}, {}
    for modality in MODALITIES:
        img, mask = images.get(modality), masks.get(modality)
        if img is None:
            out_i[modality], out_m[modality] = img, mask
            continue
        h, w = img.shape[:2]
        matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, scale)
        matrix[:, 2] += (shift[0] * w, shift[1] * h)
        out_i[modality] = cv2.warpAffine(img, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REFLECT_101)
        if mask is not None:
            warped = cv2.warpAffine(mask.astype(np.uint8), matrix, (w, h), flags=cv2.INTER_NEAREST,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            out_m[modality] = warped.astype(bool)
        else:
            out_m[modality] = None
    return out_i, out_m


def _each_photo(images: dict, fn) -> dict:
    return {m: (fn(img, m) if img is not None else None) for m, img in images.items()}


def _draw_rotation(rng) -> float:
    return float(rng.uniform(-10.0, 10.0))


def _draw_shift(rng) -> tuple[float, float]:
    return float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05))


def _draw_scale(rng) -> float:
    return float(rng.uniform(0.9, 1.1))


def _noise(images: dict, sigma: float, rng) -> dict:
    def add(img, _m):
        noisy = img.astype(np.float32) + rng.normal(0.0, sigma, img.shape).astype(np.float32)
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)

    return _each_photo(images, add)


def _contour(masks: dict, rng) -> tuple[dict, dict]:
    """Erode or dilate each mask by 1-3 px (an elliptic structuring element); one draw per mask."""
    out, params = {}, {}
    for modality, mask in masks.items():
        if mask is None:
            out[modality] = None
            continue
        radius = int(rng.integers(1, 4)) * (1 if rng.random() < 0.5 else -1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(radius) + 1, 2 * abs(radius) + 1))
        op = cv2.dilate if radius > 0 else cv2.erode
        changed = op(mask.astype(np.uint8), kernel).astype(bool)
        out[modality] = changed if changed.any() else mask  # never erode a lesion away
        params[f"{modality}_contour_px"] = radius
    return out, params


# ---------------------------------------------------------------------------------------------
# The registered perturbations
# ---------------------------------------------------------------------------------------------


@register_perturbation("none", "the photos and masks as given (the reference version)")
def _none(images, masks, rng):
    return images, masks, {}


@register_perturbation("rotation", "camera rolled by up to 10 degrees (photos and masks together)")
def _rotation(images, masks, rng):
    angle = _draw_rotation(rng)
    images, masks = _affine(images, masks, angle=angle)
    return images, masks, {"angle_deg": angle}


@register_perturbation("translation", "lesion shifted by up to 5 % of the photo's width and height")
def _translation(images, masks, rng):
    shift = _draw_shift(rng)
    images, masks = _affine(images, masks, shift=shift)
    return images, masks, {"shift_x": shift[0], "shift_y": shift[1]}


@register_perturbation("scale", "camera closer or farther: zoom by 0.9-1.1 about the centre")
def _scale(images, masks, rng):
    scale = _draw_scale(rng)
    images, masks = _affine(images, masks, scale=scale)
    return images, masks, {"scale": scale}


@register_perturbation("noise", "sensor noise: Gaussian, standard deviation 2-6 grey levels")
def _noise_p(images, masks, rng):
    sigma = float(rng.uniform(2.0, 6.0))
    return _noise(images, sigma, rng), masks, {"noise_sigma": sigma}


@register_perturbation("blur", "slight defocus: Gaussian blur of 0.5-1.5 px standard deviation")
def _blur(images, masks, rng):
    sigma = float(rng.uniform(0.5, 1.5))
    return _each_photo(images, lambda img, _m: cv2.GaussianBlur(img, (0, 0), sigma)), masks, {"blur_sigma": sigma}


@register_perturbation("colour", "other lighting: brightness +-15 levels, contrast x0.9-1.1, "
                                 "white balance x0.93-1.07 per channel")
def _colour(images, masks, rng):
    brightness = float(rng.uniform(-15.0, 15.0))
    contrast = float(rng.uniform(0.9, 1.1))
    gains = rng.uniform(0.93, 1.07, 3)

    def shift(img, _m):
        x = img.astype(np.float32)
        x = (x - 127.5) * contrast + 127.5 + brightness
        return np.clip(np.rint(x * gains.astype(np.float32)), 0, 255).astype(np.uint8)

    params = {"brightness": brightness, "contrast": contrast,
              **{f"gain_{c}": float(g) for c, g in zip("rgb", gains)}}
    return _each_photo(images, shift), masks, params


@register_perturbation("jpeg", "JPEG recompression at quality 50-90")
def _jpeg(images, masks, rng):
    quality = int(rng.integers(50, 91))

    def recompress(img, _m):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError(f"OpenCV could not JPEG-encode a {img.shape} photo")
        return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    return _each_photo(images, recompress), masks, {"jpeg_quality": quality}


@register_perturbation("contour", "mask drawn by another annotator: eroded or dilated by 1-3 px")
def _contour_p(images, masks, rng):
    masks, params = _contour(masks, rng)
    return images, masks, params


@register_perturbation("combined", "rotation, translation, scale, noise and contour together "
                                   "(Zwanenburg's RTNC chain)")
def _combined(images, masks, rng):
    angle, shift, scale = _draw_rotation(rng), _draw_shift(rng), _draw_scale(rng)
    images, masks = _affine(images, masks, angle=angle, scale=scale, shift=shift)
    sigma = float(rng.uniform(2.0, 6.0))
    images = _noise(images, sigma, rng)
    masks, contour = _contour(masks, rng)
    params = {"angle_deg": angle, "shift_x": shift[0], "shift_y": shift[1], "scale": scale, "noise_sigma": sigma,
              **contour}
    return images, masks, params


__all__ = ["DEFAULT_PERTURBATIONS", "PERTURBATIONS", "Perturbation", "apply_perturbation", "get_perturbation",
           "perturbation_rng", "register_perturbation"]
