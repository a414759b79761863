"""benchmarks/gpu_check.sh --smoke: the GPU check's own code, on CPU at tiny sizes (about 20 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_runs_every_step_and_writes_one_json(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
           "VITFEAT_YOLO_CONFIG_DIR": str(tmp_path / "ultralytics-config")}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--smoke", "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["smoke"] is True
    steps = report["steps"]
    assert set(steps) == {"embedding", "vmtl_epoch", "ultralight_seg", "yolo11n_seg_epoch"}
    assert not [name for name, s in steps.items() if "error" in s]
    embedding = steps["embedding"]["result"]
    assert len(embedding) == 3 and all(r["ratio"] > 0 and r["bare_images_per_s"] > 0 for r in embedding)
    epochs = {r["variant"]: r for r in steps["vmtl_epoch"]["result"]}
    assert set(epochs) == {"original", "vmtl"} and all(r["pairs"] == 8 and r["epoch_s"] > 0 for r in epochs.values())
    seg = steps["ultralight_seg"]["result"]
    assert seg["recipe"] == "original" and 0 <= seg["test_metrics"]["pooled"]["dice"] <= 1
    assert (tmp_path / "yolo11n_seg" / "model.pt").exists()
    assert report["table"] in done.stdout and "VMTL original epoch" in report["table"]
