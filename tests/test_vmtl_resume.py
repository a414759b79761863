"""`train vmtl` killed with SIGKILL in the middle of an epoch (a real process) resumes and equals an
uninterrupted run; the original's curriculum resumes mid-stage the same way."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from vitfeat.cli.main import main as cli
from vitfeat.deep.vmtl.config import VMTLConfig, preset
from vitfeat.deep.vmtl.train import train_vmtl

OPTIONS = ["--backbone", "test_convnext", "--weights", "random", "--imgsz", "64", "--batch", "4", "--epochs", "3",
           "--lr", "1e-3", "--device", "cpu", "--threads", "1"]
TINY = dict(backbone="test_convnext", weights="random", imgsz=64, batch=4, epochs=3, lr=1e-3, device="cpu", threads=1)

# Runs the real CLI in a child process; fold 1's second training epoch sends SIGKILL to its own
# process after its first batch has updated the weights. Shuffled loaders per fold: one to count the
# steps, then one per epoch (fold 0 has three), so that epoch's loader is the 7th shuffled one.
DRIVER = textwrap.dedent("""
    import os, signal, sys
    import vitfeat.deep.vmtl.train as train
    from vitfeat.cli.main import main

    original, shuffled = train.make_loader, [0]

    def dying(loader):
        for i, batch in enumerate(loader):
            if i == 1:
                os.kill(os.getpid(), signal.SIGKILL)
            yield batch

    def make_loader(dataset, cfg, shuffle, seed=0):
        loader = original(dataset, cfg, shuffle, seed)
        shuffled[0] += shuffle
        return dying(loader) if shuffle and shuffled[0] == 7 else loader

    train.make_loader = make_loader
    sys.exit(main(sys.argv[1:]))
""")


@pytest.fixture(scope="module")
def plan(synth_small, tmp_path_factory):
    from vitfeat.dataset import load_manifest
    from vitfeat.evaluation.folds import make_folds, write_folds

    frame = load_manifest(synth_small).frame
    return write_folds(make_folds(frame, "label", n_splits=2), tmp_path_factory.mktemp("plan") / "folds.csv")


def _oof(run):
    return pd.read_csv(run / "oof_predictions.csv").sort_values(["case_id"]).reset_index(drop=True)


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(synth_small, plan, tmp_path):
    reference = train_vmtl(synth_small, tmp_path / "reference", plan, VMTLConfig(**TINY), progress=False)
    out = tmp_path / "killed"
    args = ["train", "vmtl", str(synth_small), "-o", str(out), "--folds-from", str(plan), *OPTIONS]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    child = subprocess.run([sys.executable, "-c", DRIVER, *args], env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, child.stderr[-2000:]  # killed by SIGKILL, not finished
    assert (out / "r0_f0" / "oof.csv").exists() and not (out / "r0_f1" / "oof.csv").exists()
    from vitfeat.deep.runtime import load_checkpoint

    assert load_checkpoint(out / "r0_f1" / "last.pt")["loop"]["epoch"] == 0  # died inside the second epoch
    assert not (out / "oof_predictions.csv").exists()

    assert cli(args + ["--resume"]) == 0
    pd.testing.assert_frame_equal(_oof(reference), _oof(out), check_exact=False, rtol=1e-5, atol=1e-6)


class Interrupt(Exception):
    pass


def test_original_curriculum_resumes_mid_stage(synth_small, plan, tmp_path):
    cfg = dict(backbone="test_convnext", weights="random", imgsz=64, hidden_dim=32, device="cpu", threads=1,
               stage_epochs=(1, 1, 2, 1, 1, 1), stage_patience=(5,) * 6)
    reference = train_vmtl(synth_small, tmp_path / "reference", plan, preset("original", **cfg), progress=False)

    def stop(repeat, fold, epoch, state):
        if (fold, epoch) == (0, (2, 0)):  # fold 0, after the first of stage 2's two epochs
            raise Interrupt

    out = tmp_path / "interrupted"
    with pytest.raises(Interrupt):
        train_vmtl(synth_small, out, plan, preset("original", **cfg), progress=False, callback=stop)
    train_vmtl(synth_small, out, plan, preset("original", **cfg), progress=False, resume=True)
    pd.testing.assert_frame_equal(_oof(reference), _oof(out), check_exact=False, rtol=1e-5, atol=1e-6)
