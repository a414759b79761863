"""Trained models as lesion-mask sources (``vitfeat extract --masks model:PATH``).

:func:`load_mask_predictor` returns an object with ``.predict(image_rgb_uint8, modality) -> (H, W)
bool`` and ``.describe() -> dict`` (for the feature table's provenance), whatever model is behind it:

- a YOLO ``.pt`` checkpoint, or a ``vitfeat train yolo`` run directory (``yolo.json`` + ``model.pt``):
  ultralytics, the union of the predicted instance masks (a detect model's boxes, filled);
- a directory containing ``segmenter.json`` (``vitfeat train seg``): :mod:`vitfeat.deep.segmentation`.
"""

from __future__ import annotations

from pathlib import Path


def load_mask_predictor(path, **kwargs):
    """Load the model at ``path`` as a mask predictor; ``kwargs`` go to the model's loader
    (e.g. ``conf=`` for YOLO, ``device=`` for both).

    Parameters
    ----------
    path : path-like
        A segmenter directory or a YOLO ``.pt``.
    **kwargs
        Passed to the loader.

    Returns
    -------
    object
        With ``predict(rgb, modality)`` and ``describe()``.
    """
    path = Path(path).expanduser()
    if path.is_dir() and (path / "segmenter.json").is_file():
        from vitfeat.deep.segmentation import load_segmenter

        return load_segmenter(path, **kwargs)
    if (path.is_dir() and (path / "model.pt").is_file()) or (path.is_file() and path.suffix == ".pt"):
        from vitfeat.deep.yolo import YoloPredictor

        return YoloPredictor(path, **kwargs)
    if not path.exists():
        raise FileNotFoundError(f"mask model not found: {path}")
    raise ValueError(f"{path}: not a mask model vitfeat knows: expected a YOLO .pt checkpoint, a "
                     "`vitfeat train yolo` directory (model.pt) or a `vitfeat train seg` directory "
                     "(segmenter.json)")
