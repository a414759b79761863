"""Lesion segmentation: smp UNet / DeepLabV3(+) and UltraLight VM-UNet; training, metrics, comparison.

A finished training directory (``segmenter.json`` + weights) is a mask source for ``vitfeat extract
--masks model:DIR`` through :func:`load_segmenter`.
"""

from vitfeat.deep.segmentation.models import available_architectures, build_model
from vitfeat.deep.segmentation.predictor import Segmenter, load_segmenter

__all__ = ["Segmenter", "available_architectures", "build_model", "load_segmenter"]
