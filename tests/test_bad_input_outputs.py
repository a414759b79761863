"""Bad outputs and full disks (issue #25): refused before any work, the path named, nothing torn.

Every command with an output path runs the same check (``vitfeat.atomic.check_output``) before
its work starts. A full disk is real here: a child process runs under ``RLIMIT_FSIZE``, so the
kernel refuses the first write beyond the limit (``EFBIG``, as a full disk's ``ENOSPC`` would).
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vitfeat.atomic import DiskFullError, OutputError, atomic_path, check_output, write_bytes
from vitfeat.cli.main import main

REPO = Path(__file__).resolve().parents[1]
#: A location no process may create files in, root included (sysfs refuses new files).
READ_ONLY = Path("/sys")


def _snapshot(folder: Path) -> set:
    return {p.relative_to(folder) for p in folder.rglob("*")}


@pytest.fixture()
def area(tmp_path):
    """A folder holding an existing file and an existing sub-folder."""
    (tmp_path / "a_file.txt").write_text("x")
    (tmp_path / "a_dir").mkdir()
    return tmp_path


# (argv with {m} = a valid manifest, {t} = the tmp folder; the path that must be named)
BAD_OUTPUTS = [
    (["extract", "{m}", "-o", "{t}/a_dir", "--no-progress"], "{t}/a_dir", "existing folder"),
    (["extract", "{m}", "-o", "{t}/a_file.txt/f.parquet", "--no-progress"], "{t}/a_file.txt", "is a file"),
    (["extract", "{m}", "-o", "/sys/f.parquet", "--no-progress"], "/sys/f.parquet", "not writable"),
    (["extract", "{m}", "-o", "{t}/f.parquet", "--cache-dir", "{t}/a_file.txt"], "{t}/a_file.txt",
     "is an existing file"),
    (["extract", "{m}", "-o", "/sys/no/such/f.parquet", "--no-progress"], "/sys/no/such/f.parquet", "not writable"),
    (["fit", "{t}/feats.parquet", "-o", "{t}/a_file.txt"], "{t}/a_file.txt", "is an existing file"),
    (["fit", "{t}/feats.parquet", "-o", "{t}/a_file.txt/run"], "{t}/a_file.txt", "is a file"),
    (["fit", "{t}/feats.parquet", "-o", "/sys/run"], "/sys/run", "not writable"),
    (["predict", "{t}/run", "{m}", "-o", "{t}/a_dir"], "{t}/a_dir", "existing folder"),
    (["predict", "{t}/run", "{m}", "-o", "/sys/p.csv"], "/sys/p.csv", "not writable"),
    (["manifest", "import", "{t}", "-o", "{t}/a_dir"], "{t}/a_dir", "existing folder"),
    (["synth", "{t}/a_file.txt", "--n", "4"], "{t}/a_file.txt", "is an existing file"),
    (["demo", "{t}/a_file.txt"], "{t}/a_file.txt", "is an existing file"),
    (["seg", "compare", "{t}/a_dir", "-o", "{t}/a_file.txt"], "{t}/a_file.txt", "is an existing file"),
    (["train", "vmtl", "{m}", "-o", "/sys/vmtl", "--folds-from", "{t}/folds.csv"], "/sys/vmtl", "not writable"),
]


@pytest.mark.parametrize("argv, named, what", BAD_OUTPUTS, ids=[" ".join(a[:2]) + f" {n}" for a, n, _ in BAD_OUTPUTS])
def test_bad_output_refused_before_any_work(argv, named, what, area, synth_small, capsys):
    fill = {"m": str(synth_small), "t": str(area)}
    argv = [a.format(**fill) for a in argv]
    before, before_data = _snapshot(area), _snapshot(synth_small.parent)
    try:
        rc = main(argv)
    except SystemExit as exc:  # a command whose other arguments argparse refuses would not test the output
        pytest.fail(f"argparse refused {argv}: {exc}")
    err = capsys.readouterr().err
    assert rc == 2
    assert named.format(**fill) in err and what in err, err
    assert "Traceback" not in err
    assert _snapshot(area) == before  # refused before any work: nothing created
    assert _snapshot(synth_small.parent) == before_data


def test_missing_parents_that_can_be_created_are_fine(tmp_path):
    assert check_output(tmp_path / "new" / "deeper" / "f.parquet", "file") == tmp_path / "new" / "deeper" / "f.parquet"
    assert not (tmp_path / "new").exists()  # the check creates nothing
    assert list(tmp_path.iterdir()) == []  # and leaves no probe behind


@pytest.mark.parametrize("path", ["", "   ", "a\0b"])
def test_empty_or_nul_output_refused(path):
    with pytest.raises(OutputError):
        check_output(path)


def _limited(argv: list[str], limit: int, cwd: Path) -> subprocess.CompletedProcess:
    """Run the CLI in a child process that may write no file larger than ``limit`` bytes."""
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
            "from vitfeat.cli.main import main\n"
            f"sys.exit(main({argv!r}))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)


def _temporaries(folder: Path) -> list:
    return [p for p in folder.rglob(".*.tmp*")]


def test_disk_full_during_extract_names_the_path_and_a_rerun_resumes(synth_small, tmp_path, capsys):
    out = tmp_path / "out" / "feats.parquet"
    argv = ["extract", str(synth_small), "-o", str(out), "--families", "shape", "pair", "--no-progress"]
    before_data = _snapshot(synth_small.parent)
    proc = _limited(argv, 30_000, tmp_path)  # cache entries (~1.5 kB) fit, the table (~50 kB) does not
    assert proc.returncode == 28, proc.stderr
    assert f"{out}: no space left on device" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and _temporaries(out.parent) == []  # nothing half-written, no debris
    assert _snapshot(synth_small.parent) == before_data
    assert main(argv) == 0  # room again: the rerun reads every result from the cache
    assert "0 family result(s) computed, 48 read from cache" in capsys.readouterr().out
    assert out.exists()


def test_disk_full_during_fit_names_the_path_and_a_rerun_resumes(tiny_table, tmp_path, caplog):
    run = tmp_path / "run"
    argv = ["fit", str(tiny_table), "-o", str(run), "--pipelines", "logreg", "--folds", "3", "--no-nested",
            "--n-boot", "10"]
    proc = _limited(argv, 20_000, tmp_path)  # fold results fit, the model (~60 kB) does not
    assert proc.returncode == 28, proc.stderr
    assert "no space left on device" in proc.stderr and str(run) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (run / "model.skops").exists() and not (run / "run.json").exists()
    assert _temporaries(run) == []
    fold_cache = sorted((run / ".cv_cache").rglob("*"))
    assert fold_cache  # the finished fold fits were kept
    caplog.set_level(logging.INFO, logger="vitfeat")
    assert main(argv) == 0
    assert "resuming: 3 of 3 fits taken from the cache" in caplog.text
    assert (run / "model.skops").exists()


def test_enospc_from_a_real_full_device_names_the_final_path(tmp_path):
    """``/dev/full`` fails every write with ENOSPC; inside an atomic write it names the target."""
    target = tmp_path / "table.parquet"
    with pytest.raises(DiskFullError) as caught:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half of it")
            with open("/dev/full", "wb") as full:
                full.write(b"the rest")
                full.flush()
    assert caught.value.errno == errno.ENOSPC
    assert str(caught.value).startswith(f"{target}: no space left on device")
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temporary


def test_atomic_write_over_the_file_size_limit_leaves_nothing(tmp_path):
    code = ("import resource, signal\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
            "from vitfeat.atomic import write_bytes, DiskFullError\n"
            "try:\n"
            f"    write_bytes({str(tmp_path / 'big.bin')!r}, b'x' * 5000)\n"
            "except DiskFullError as exc:\n"
            "    print('refused:', exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=60)
    assert f"refused: {tmp_path / 'big.bin'}: no space left on device" in proc.stdout, proc.stderr
    assert list(tmp_path.iterdir()) == []
    write_bytes(tmp_path / "big.bin", b"x" * 5000)  # without the limit the same write succeeds
    assert (tmp_path / "big.bin").stat().st_size == 5000


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory):
    """A feature table of 24 synthetic cases (shape + pair families)."""
    from vitfeat.featurize import extract
    from vitfeat.synth import generate

    folder = tmp_path_factory.mktemp("tiny")
    manifest = generate(folder / "data", n=24, seed=7, size=128, jobs=1, progress=False)
    return extract(manifest, folder / "feats.parquet", families=["shape", "pair"], progress=False).path
