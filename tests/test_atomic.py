"""vitfeat.atomic: a failed write keeps the old file and leaves no temporary behind."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from vitfeat import atomic  # noqa: E402
from vitfeat.dataset import write_mask  # noqa: E402


def test_failed_write_keeps_old_file_and_cleans_up(tmp_path):
    target = tmp_path / "out.csv"
    atomic.write_text(target, "old\n")

    class Broken:
        def to_csv(self, path, **_):
            open(path, "w").write("half")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.write_csv(target, Broken())
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_temporary_names_are_unique_per_call(tmp_path):
    with atomic.atomic_path(tmp_path / "a.png") as first, atomic.atomic_path(tmp_path / "a.png") as second:
        assert first != second
        assert first.suffix == second.suffix == ".png"
        first.write_bytes(b"1")
        second.write_bytes(b"2")
    assert (tmp_path / "a.png").read_bytes() == b"1"  # the outer context renames last


def test_figure_table_copy_and_mask(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    atomic.write_figure(tmp_path / "f.png", fig, dpi=30)
    plt.close(fig)
    assert Image.open(tmp_path / "f.png").format == "PNG"
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    atomic.write_table(tmp_path / "t.csv", frame)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), frame)
    atomic.copy_file(tmp_path / "t.csv", tmp_path / "copy.csv")
    assert (tmp_path / "copy.csv").read_bytes() == (tmp_path / "t.csv").read_bytes()
    mask = np.zeros((4, 5), bool)
    mask[1:3, 2:4] = True
    write_mask(tmp_path / "m.png", mask)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "m.png")) == 255, mask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.csv", "f.png", "m.png", "t.csv"]


def test_sweep_removes_temporaries_of_dead_writers_only(tmp_path):
    """What a SIGKILLed writer left behind is swept; a live writer's file, and every other file, stay."""
    import os
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    left_behind = tmp_path / f".rf-r0f1-abc.{dead_pid}-0123abcd.tmp.npz"
    in_progress = tmp_path / f".rf-r0f2-abc.{os.getpid()}-89abcdef.tmp.npz"
    finished, hidden_other = tmp_path / "rf-r0f1-abc.npz", tmp_path / ".keep.tmp.notes"
    for path in (left_behind, in_progress, finished, hidden_other):
        path.write_bytes(b"x")
    assert atomic.sweep_temporaries(tmp_path) == 1
    assert not left_behind.exists()
    assert in_progress.exists() and finished.exists() and hidden_other.exists()
    with atomic.atomic_path(tmp_path / "table.csv") as tmp:  # the name atomic_path makes is recognised
        tmp.write_text("a")
        assert atomic._TEMPORARY.match(tmp.name)
