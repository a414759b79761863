"""Killed and terminated commands (issue #25): no orphan workers, a clean stop, a resuming rerun.

These run the real command in a child process (signals need one) on small synthetic data.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from vitfeat.cli.main import main

REPO = Path(__file__).resolve().parents[1]
FIT_ARGS = ["--pipelines", "logreg,rf,et", "--folds", "3", "--no-nested", "--n-boot", "10"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """16 synthetic cases at 256 px and their feature table."""
    from vitfeat.featurize import extract
    from vitfeat.synth import generate

    folder = tmp_path_factory.mktemp("signals")
    manifest = generate(folder / "data", n=16, seed=2, size=256, jobs=1, progress=False)
    table = extract(manifest, folder / "feats.parquet", families=["shape", "pair"], progress=False).path
    return manifest, table


def _start(argv: list[str], cwd: Path) -> subprocess.Popen:
    """The command in a child process; its stderr goes to ``cwd/stderr.txt`` (a pipe would stay open
    as long as any worker holding it lives, so waiting on it could not tell a dead parent)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    with open(cwd / "stderr.txt", "w") as err:
        return subprocess.Popen([sys.executable, "-m", "vitfeat.cli.main", *argv], cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)


def _finish(proc: subprocess.Popen, cwd: Path, timeout: float = 60) -> str:
    proc.wait(timeout=timeout)
    return (cwd / "stderr.txt").read_text()


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the command ended (exit {proc.returncode}) before the test could interrupt it")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("timed out waiting for the command to get going")


def _workers(pid: int) -> list[psutil.Process]:
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [k for k in kids if "LokyProcess" in " ".join(_cmdline(k))]


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill9_leaves_no_worker(argv: list[str], cwd: Path) -> None:
    proc = _start(argv, cwd)
    workers = _wait_for(lambda: (w := _workers(proc.pid)) and len(w) >= 2 and w, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [w.pid for w in workers if _alive(w)]
    for pid in survivors:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert survivors == [], "worker processes outlived their killed parent"


def test_kill_9_of_extract_leaves_no_worker(data, tmp_path):
    manifest, _ = data
    _kill9_leaves_no_worker(["extract", str(manifest), "-o", str(tmp_path / "f.parquet"), "--jobs", "2",
                             "--no-progress"], tmp_path)


def test_kill_9_of_fit_leaves_no_worker(data, tmp_path):
    _, table = data
    _kill9_leaves_no_worker(["fit", str(table), "-o", str(tmp_path / "run"), "--jobs", "2", *FIT_ARGS], tmp_path)


def test_sigterm_of_extract_stops_cleanly_and_a_rerun_resumes(data, tmp_path, capsys):
    manifest, _ = data
    out, cache = tmp_path / "f.parquet", tmp_path / "cache"
    argv = ["extract", str(manifest), "-o", str(out), "--cache-dir", str(cache), "--jobs", "2", "--no-progress"]
    proc = _start(argv, tmp_path)
    workers = _wait_for(lambda: list(cache.rglob("*.json")) and _workers(proc.pid), proc)
    proc.send_signal(signal.SIGTERM)
    err = _finish(proc, tmp_path)
    assert proc.returncode == 143, err
    assert "vitfeat extract: terminated (SIGTERM); finished work is kept and a re-run resumes" in err
    assert "Traceback" not in err
    assert not out.exists() and list(tmp_path.rglob(".*.tmp*")) == []
    time.sleep(1)
    assert not any(_alive(w) for w in workers)
    assert main(argv) == 0
    summary = capsys.readouterr().out
    n_cached = int(summary.split(" read from cache")[0].rsplit(", ", 1)[1])
    assert n_cached > 0  # the rerun resumed from what the terminated run had finished
    assert out.exists()


def test_sigterm_of_fit_stops_cleanly_and_a_rerun_resumes(data, tmp_path, caplog):
    _, table = data
    run = tmp_path / "run"
    argv = ["fit", str(table), "-o", str(run), *FIT_ARGS]
    proc = _start(argv, tmp_path)
    _wait_for(lambda: [p for p in (run / ".cv_cache").rglob("*") if p.is_file() and not p.name.startswith(".")],
              proc)
    proc.send_signal(signal.SIGTERM)
    err = _finish(proc, tmp_path)
    assert proc.returncode == 143, err
    assert "vitfeat fit: terminated (SIGTERM); finished work is kept and a re-run resumes" in err
    assert "Traceback" not in err
    assert not (run / "model.skops").exists()
    caplog.set_level(logging.INFO, logger="vitfeat")
    assert main(argv) == 0
    assert "resuming:" in caplog.text
    assert (run / "model.skops").exists()
