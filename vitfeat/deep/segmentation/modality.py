"""A segmenter masks photos of the modality it was trained on, and refuses the others by name
(:func:`check_modality`); :class:`ThresholdMaskSource` is the mask-source ``predict`` every
segmenter kind shares."""

from __future__ import annotations

import numpy as np

from vitfeat.dataset import MODALITY_NAMES


def check_modality(directory, trained: str, modality: str | None) -> None:
    """Refuse a photo of another modality than the segmenter's training photos, naming both.

    Parameters
    ----------
    directory : path-like
        The segmenter directory (for the message).
    trained : str
        The modality it was trained on.
    modality : str or None
        The photo's modality (None: not known, accepted).

    Raises
    ------
    ValueError
        ``modality`` differs from ``trained``.
    """
    if modality and trained and modality != trained:
        raise ValueError(f"segmenter {directory} was trained on {MODALITY_NAMES.get(trained, trained)} photos; it "
                         f"cannot mask {MODALITY_NAMES.get(modality, modality)} photos (train one with "
                         f"`vitfeat train seg --modality {modality}`, or use --masks auto / given for them)")


class ThresholdMaskSource:
    """The mask-source ``predict`` of a segmenter with ``predict_proba(images)``, ``threshold``,
    ``directory`` and ``meta["modality"]`` (a network and the pixel classifier alike)."""

    def predict(self, image: np.ndarray, modality: str | None = None) -> np.ndarray:
        """Lesion mask of one photo (the mask-source contract).

        Parameters
        ----------
        image : numpy.ndarray
            ``(H, W, 3)`` uint8 RGB photo.
        modality : str, optional
            The photo's modality; another than the training modality is refused (both named).

        Returns
        -------
        numpy.ndarray
            ``(H, W)`` bool mask: probability at or above ``threshold``.

        Raises
        ------
        ValueError
            For anything but an ``(H, W, 3)`` uint8 image, or a photo of another modality.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        check_modality(self.directory, self.meta["modality"], modality)
        return self.predict_proba([image])[0] >= self.threshold
