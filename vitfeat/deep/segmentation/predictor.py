"""A trained segmenter as a mask source: ``.predict(image, modality) -> bool mask``, ``.describe()``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from vitfeat.artefacts import check_artefacts
from vitfeat.dataset import file_hash
from vitfeat.deep.runtime import load_checkpoint
from vitfeat.deep.segmentation import data as segdata
from vitfeat.deep.segmentation.modality import ThresholdMaskSource
from vitfeat.deep.segmentation.models import DEFAULT_ENCODER, build_model
from vitfeat.names import join_inside

log = logging.getLogger(__name__)


class Segmenter(ThresholdMaskSource):
    """Wraps a training output directory (``segmenter.json`` + weights) for inference.

    Parameters
    ----------
    directory : path-like
        A finished ``vitfeat train seg`` (or ``seg import-official``) output directory.
    device : str, default "auto"
        Torch device (``auto`` picks CUDA when available, never MPS).
    threshold : float, default 0.5
        Lesion probability at or above which a pixel is lesion.

    Raises
    ------
    FileNotFoundError
        Without ``segmenter.json``.
    ValueError
        For an unsupported ``format``.
    vitfeat.artefacts.RunIntegrityError
        A file listed in ``segmenter.json`` is missing or has another SHA-256.
    """

    def __init__(self, directory, device: str = "auto", threshold: float = 0.5):
        from vitfeat.deep.runtime import select_device
        from vitfeat.deep.segmentation.train import SEGMENTER_FORMAT

        self.directory = Path(directory)
        meta_path = self.directory / "segmenter.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.directory}: no segmenter.json (not a finished `vitfeat train seg` "
                                    "output directory)")
        self.meta = read_segmenter_json(meta_path)
        if self.meta.get("format") != SEGMENTER_FORMAT:
            raise ValueError(f"{meta_path}: unsupported format {self.meta.get('format')!r}")
        check_artefacts(self.directory, self.meta, source=meta_path)
        self.weights = join_inside(self.directory, self.meta["weights"])
        self.device = select_device(device, mps=False)
        self.threshold = threshold
        self.model = build_model(self.meta["arch"], self.meta["num_classes"],
                                 self.meta.get("encoder") or DEFAULT_ENCODER, None)
        state = load_checkpoint(self.weights, self.device)
        self.model.load_state_dict(state)
        self.model.to(self.device).eval()

    def describe(self) -> dict:
        """Provenance for feature tables: what model, which weights (content hash), how it scored."""
        # test_metrics is null for a segmenter nobody scored (seg import-official without --evaluate)
        test = self.meta.get("test_metrics") or {}
        pooled = test.get("pooled") or {}
        return {
            "kind": "segmenter", "path": str(self.directory.resolve()), "arch": self.meta["arch"],
            "encoder": self.meta.get("encoder"), "imgsz": self.meta["imgsz"],
            "trained_modality": self.meta["modality"], "weights_hash": file_hash(self.weights),
            "threshold": self.threshold, "test_dice_pooled": pooled.get("dice"),
            "quality": self.meta.get("mask_quality") or (
                {"dice_pooled": pooled["dice"], "dice_pooled_ci": None, "n_images": test.get("n_images"),
                 "reference": f"its {self.meta.get('evaluated_on', 'test')} split"}
                if pooled.get("dice") is not None else None),
        }

    def predict_proba(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Lesion probability maps (H, W) float32 at each image's own size.

        Parameters
        ----------
        images : list of numpy.ndarray
            ``(H, W, 3)`` uint8 RGB photos, run as one batch at the training size.

        Returns
        -------
        list of numpy.ndarray
            Probability of any non-background class per pixel, resized back to each photo.
        """
        size = self.meta["imgsz"]
        resize = self.meta.get("resize", "area")  # the training pipeline's (UltraLight's recipe: bilinear)
        batch = torch.from_numpy(np.stack([segdata.resize_for(im, size, resize).transpose(2, 0, 1) for im in images]))
        with torch.no_grad():
            x = segdata.normalize(batch.to(self.device), self.meta["normalize"])
            if self.meta.get("tta"):  # the vitiligo recipe: flips averaged, as in its test scores
                from vitfeat.deep.segmentation.train import tta_probabilities

                probs = tta_probabilities(self.model, x)
            else:
                logits = self.model(x)
                probs = torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, 1)
            # any non-background class counts as lesion
            fg = probs[:, 0] if probs.shape[1] == 1 else 1.0 - probs[:, 0]
        fg = fg.cpu().numpy().astype(np.float32)
        return [cv2.resize(p, (im.shape[1], im.shape[0]), interpolation=cv2.INTER_LINEAR) for p, im in zip(fg, images)]


def load_segmenter(directory, device: str = "auto"):
    """Load a `vitfeat train seg` output directory as a mask source (see the mask-source contract).

    A network (``best.pt``) becomes a :class:`Segmenter`; a pixel classifier (``--arch pixel-gbm``,
    ``model.txt``) a :class:`vitfeat.deep.segmentation.pixel_gbm.PixelGbmSegmenter`.

    Parameters
    ----------
    directory : path-like
        The output directory.
    device : str, default "auto"
        Torch device (networks only).

    Returns
    -------
    Segmenter or PixelGbmSegmenter
    """
    from vitfeat.deep.segmentation.pixel_gbm import ARCH, PixelGbmSegmenter
    from vitfeat.deep.segmentation.train import SEGMENTER_FORMAT

    meta_path = Path(directory) / "segmenter.json"
    if meta_path.is_file():
        meta = read_segmenter_json(meta_path)
        if meta.get("format") == SEGMENTER_FORMAT and meta.get("arch") == ARCH:
            return PixelGbmSegmenter(directory, meta)
    return Segmenter(directory, device=device)


def read_segmenter_json(path) -> dict:
    """``segmenter.json`` as a dict; damage (empty, not JSON, not an object) is named.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    dict
    """
    try:
        meta = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable segmenter.json ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: not a segmenter.json (a JSON object expected)")
    return meta
