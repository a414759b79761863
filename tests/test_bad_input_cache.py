"""A damaged extraction cache is recomputed, never trusted (issue #25).

Every damaged entry is named in a warning; crash debris is swept; two processes may share one
cache at once; ``--jobs 1`` and ``--jobs 2`` write the same bytes and may share one cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vitfeat.cli.main import main
from vitfeat.featurize import read_features

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ["shape", "pair"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A small synthetic manifest, its table and the cache that produced it."""
    from vitfeat.synth import generate

    folder = tmp_path_factory.mktemp("cache_clean")
    manifest = generate(folder / "data", n=12, seed=3, size=128, jobs=1, progress=False)
    out = folder / "feats.parquet"
    assert main(["extract", str(manifest), "-o", str(out), "--families", *FAMILIES, "--no-progress"]) == 0
    return manifest, out, folder / ".vitfeat-cache"


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.json"))


def _same_table(a: Path, b: Path) -> None:
    pd.testing.assert_frame_equal(read_features(a)[0], read_features(b)[0], check_exact=True)


DAMAGE = {
    "truncated": lambda raw: raw[: len(raw) // 2],
    "zero-length": lambda raw: b"",
    "NUL-filled": lambda raw: b"\0" * len(raw),
    "empty object": lambda raw: b"{}",
    "JSON list": lambda raw: json.dumps(list(json.loads(raw).values())).encode(),
    "text values": lambda raw: json.dumps(dict.fromkeys(json.loads(raw), "x")).encode(),
    "other columns": lambda raw: json.dumps({"clinical_shape_bogus": 1.0}).encode(),
    "bytes that are not UTF-8": lambda raw: b"\xff\xfe" + raw[2:],
}
EXPECTED = {"truncated": "not valid JSON", "zero-length": "empty (zero bytes)", "NUL-filled": "NUL-filled",
            "empty object": "an empty object", "JSON list": "a JSON list",
            "text values": "holds values that are not numbers",
            "other columns": "holds 1 column(s) where family", "bytes that are not UTF-8": "not valid JSON"}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_entry_recomputed_with_a_warning_naming_it(damage, clean, tmp_path, capsys, caplog):
    manifest, reference, cache0 = clean
    cache = tmp_path / "cache"
    shutil.copytree(cache0, cache)
    victim = _entries(cache)[5]
    victim.write_bytes(DAMAGE[damage](victim.read_bytes()))
    out = tmp_path / "feats.parquet"
    argv = ["extract", str(manifest), "-o", str(out), "--families", *FAMILIES, "--cache-dir", str(cache),
            "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"cache entry {victim} is damaged ({EXPECTED[damage]}" in printed  # in the summary
    assert f"cache entry {victim} is damaged" in caplog.text  # and logged (stderr)
    assert "1 family result(s) computed" in printed
    _same_table(out, reference)
    assert json.loads(victim.read_text())  # the entry was rewritten whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "feats.parquet"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_dead_writers_are_swept_and_live_ones_kept(clean, tmp_path):
    manifest, reference, cache0 = clean
    cache = tmp_path / "cache"
    shutil.copytree(cache0, cache)
    sub = _entries(cache)[0].parent
    dead = sub / f".abc.{_dead_pid()}-0123abcd.tmp.json"
    live = sub / f".abc.{os.getpid()}-4567abcd.tmp.json"
    dead.write_text('{"half')
    live.write_text('{"half')
    out = tmp_path / "feats.parquet"
    assert main(["extract", str(manifest), "-o", str(out), "--families", *FAMILIES, "--cache-dir", str(cache),
                 "--no-progress"]) == 0
    assert not dead.exists()
    assert live.exists()  # a writer still running is left alone
    _same_table(out, reference)


def _extract_process(manifest: Path, out: Path, cache: Path, jobs: int = 1) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "vitfeat.cli.main", "extract", str(manifest), "-o", str(out),
                             "--families", *FAMILIES, "--cache-dir", str(cache), "--jobs", str(jobs),
                             "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_extracting_into_one_cache_at_once(clean, tmp_path):
    manifest, reference, _ = clean
    cache = tmp_path / "shared-cache"
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    procs = [_extract_process(manifest, a, cache), _extract_process(manifest, b, cache, jobs=2)]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert "damaged" not in err
    _same_table(a, reference)
    _same_table(b, reference)
    assert len(_entries(cache)) == 12 * len(FAMILIES)
    assert list(cache.rglob(".*.tmp*")) == []


def test_jobs_1_and_jobs_2_write_identical_bytes_and_share_a_cache(clean, tmp_path, capsys):
    manifest, _, _ = clean
    cache1, cache2 = tmp_path / "c1", tmp_path / "c2"
    one, two, shared = tmp_path / "one.parquet", tmp_path / "two.parquet", tmp_path / "shared.parquet"
    base = ["extract", str(manifest), "--families", *FAMILIES, "--no-progress"]
    assert main(base + ["-o", str(one), "--cache-dir", str(cache1), "--jobs", "1"]) == 0
    assert main(base + ["-o", str(two), "--cache-dir", str(cache2), "--jobs", "2"]) == 0
    assert one.read_bytes() == two.read_bytes()
    capsys.readouterr()
    assert main(base + ["-o", str(shared), "--cache-dir", str(cache1), "--jobs", "2"]) == 0
    assert "0 family result(s) computed" in capsys.readouterr().out
    assert shared.read_bytes() == one.read_bytes()
