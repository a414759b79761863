"""Shared fixtures. Tests never reach the network: hubs are switched to offline mode here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public image folders beside the repository (skips the test when absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory) -> Path:
    """24 paired synthetic cases at 128 px (about 2 s); returns the manifest path. Read-only."""
    from vitfeat.synth import generate

    out = tmp_path_factory.mktemp("synth_small")
    return generate(out, n=24, seed=7, size=128, jobs=1, progress=False)
