"""Imports every built-in family module so that each registers itself (see registry)."""

from vitfeat.featurize import (  # noqa: F401
    border,
    color,
    firstorder,
    pair,
    satellites,
    shape,
    texture,
    wood,
)
