"""Shared fixtures. Tests never reach the network: hubs are switched to offline mode here."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
#: Beside the repository; VITFEAT_SHARED_DATA names it for a checkout elsewhere (a git worktree).
SHARED_DATA = Path(os.environ.get("VITFEAT_SHARED_DATA") or REPO.parent / "shared" / "data")


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


@contextlib.contextmanager
def network_refused():
    """Refuse and record every DNS lookup and connect, so a test can assert nothing used the network."""
    attempts: list = []
    mp = pytest.MonkeyPatch()

    def refuse_connect(self, address, *args, **kwargs):
        attempts.append(address)
        raise ConnectionRefusedError(f"network disabled in tests (connect to {address})")

    def refuse_dns(host, *args, **kwargs):
        attempts.append(host)
        raise socket.gaierror(f"network disabled in tests (lookup of {host})")

    mp.setattr(socket.socket, "connect", refuse_connect)
    mp.setattr(socket, "getaddrinfo", refuse_dns)
    mp.setenv("HF_HUB_OFFLINE", "1")
    try:
        yield attempts
    finally:
        mp.undo()


@pytest.fixture()
def no_network():
    """Network refused for one test; the list of attempts should stay empty."""
    with network_refused() as attempts:
        yield attempts


@pytest.fixture(scope="module")
def refused():
    """Network refused for a whole module (for module-scoped training fixtures)."""
    with network_refused() as attempts:
        yield attempts


@pytest.fixture(scope="module")
def yolo_config_dir(tmp_path_factory):
    """A test-owned ultralytics config folder (vitfeat puts its font there)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("VITFEAT_YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("ultralytics-config")))
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models on small tensors: one intra-op thread avoids OpenMP oversubscription with the
    joblib workers and other processes on a 2-core machine (two threads were 10x slower there)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)
