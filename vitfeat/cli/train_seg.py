"""`vitfeat train seg`: train a lesion segmenter (UNet, DeepLabV3, UltraLight VM-UNet)."""

from vitfeat.cli._common import reserve


def register(kinds) -> None:
    reserve(kinds, "seg", "train a lesion segmenter (UNet, DeepLabV3, UltraLight VM-UNet)")
