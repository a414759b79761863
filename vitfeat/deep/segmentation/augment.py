"""Strong joint augmentation of photo and mask (the ``vitiligo`` training recipe's).

Its own module so that the training loop (:mod:`vitfeat.deep.segmentation.train`) and the recipe
(:mod:`vitfeat.deep.segmentation.vitiligo_recipe`, which drives the loop) both use it without importing
each other.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from vitfeat.deep.segmentation.data import JointAugment


def _uniform(lo: float, hi: float) -> float:
    # torch's generator (as JointAugment), so that torch.manual_seed repeats a run's draws
    return lo + (hi - lo) * float(torch.rand(()))


class StrongAugment(JointAugment):
    """:class:`JointAugment` plus scale (0.75-1.33), elastic deformation and hue jitter.

    Parameters
    ----------
    scale : tuple of float
        Range of the random zoom (image and mask together).
    elastic_alpha : float
        Displacement of the elastic field, as a fraction of the image side.
    elastic_p : float
        Probability of the elastic deformation.
    hue : float
        Hue shift range in OpenCV hue units (0-179).
    """

    def __init__(self, scale=(0.75, 1.33), elastic_alpha: float = 0.04, elastic_p: float = 0.5, hue: float = 6.0):
        super().__init__(rotate_degrees=45.0, rotate_p=0.5, jitter=0.25)
        self.scale, self.elastic_alpha, self.elastic_p, self.hue = scale, elastic_alpha, elastic_p, hue

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image, mask = super().__call__(image, mask)
        h, w = mask.shape
        factor = _uniform(*self.scale)
        m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), 0.0, factor)
        image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
        if torch.rand(()) < self.elastic_p:
            alpha, sigma = self.elastic_alpha * max(h, w), max(h, w) / 16
            field = torch.rand((2, h, w)).numpy().astype(np.float32) * 2 - 1
            dx = cv2.GaussianBlur(field[0], (0, 0), sigma)
            dy = cv2.GaussianBlur(field[1], (0, 0), sigma)
            dx *= alpha / (np.abs(dx).max() + 1e-6)
            dy *= alpha / (np.abs(dy).max() + 1e-6)
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            image = cv2.remap(image, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            mask = cv2.remap(mask, xs + dx, ys + dy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
        if self.hue:
            hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV).astype(np.int16)
            hsv[..., 0] = (hsv[..., 0] + round(_uniform(-self.hue, self.hue))) % 180
            image = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)
