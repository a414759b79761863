"""A segmenter masks photos of the modality it was trained on, and refuses the others by name."""

from __future__ import annotations

#: How messages name each modality.
MODALITY_NAMES = {"clinical": "clinical (daylight)", "wood": "Wood's-lamp (UV)"}


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
