"""`vitfeat train yolo`: train an ultralytics YOLO detector or segmenter."""

from vitfeat.cli._common import reserve


def register(kinds) -> None:
    reserve(kinds, "yolo", "train an ultralytics YOLO detector or segmenter")
