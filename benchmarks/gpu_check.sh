#!/usr/bin/env bash
# One prepared GPU check for vitfeat's deep parts (issue #15). On a fresh clone of a machine with one
# GPU it installs vitfeat (a .venv beside the repo, unless $PYTHON names an interpreter that already
# has it), then in well under 9 minutes measures, prints a table and writes ONE JSON:
#   1. deep-family embedding throughput (convnextv2_tiny, resnet50, samvit_base at 224 px, batch 64,
#      bf16, channels_last) against a bare model(x) loop on the same GPU; the ratio is the figure;
#   2. one training epoch of VMTL original and of the redesign at 224 px on 256 synth pairs
#      (s/epoch, pairs/s, peak memory);
#   3. UltraLight VM-UNet with the original recipe (`train seg --arch ultralight --recipe original`)
#      on PH2 at 256 px: s/epoch and the pooled test DSC after its time budget;
#   4. one YOLO11n-seg epoch (random init from yolo11n-seg.yaml, synth pairs, 640 px).
# Random weights everywhere (speed does not depend on them; nothing is downloaded).
#
#   benchmarks/gpu_check.sh                   # the real check (GPU)
#   benchmarks/gpu_check.sh --smoke           # the same code on CPU, tiny sizes, < 3 min
#   benchmarks/gpu_check.sh --out DIR --data ../shared/data --seg-budget 150
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=0 OUT=artifacts/gpu_check DATA=../shared/data SEG_BUDGET=150
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --out) OUT="$2"; shift ;;
    --data) DATA="$2"; shift ;;
    --seg-budget) SEG_BUDGET="$2"; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

started=$(date +%s)
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
  PY=.venv/bin/python
fi
if ! "$PY" -c "import vitfeat.deep.vmtl, timm, ultralytics" 2>/dev/null; then
  echo "installing vitfeat into $("$PY" -c 'import sys; print(sys.prefix)') ..."
  "$PY" -m pip install -q -e .
fi
export HF_HUB_OFFLINE=1 YOLO_OFFLINE=1 MPLBACKEND=Agg
INSTALL_S=$(( $(date +%s) - started ))

exec "$PY" - "$SMOKE" "$OUT" "$DATA" "$SEG_BUDGET" "$INSTALL_S" <<'PYEOF'
import json
import platform
import sys
import time
import traceback
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, "benchmarks")
from bench_deep import embed_vs_bare  # noqa: E402
from bench_vmtl import epoch_benchmark  # noqa: E402

from vitfeat.atomic import write_csv, write_json  # noqa: E402
from vitfeat.cli.main import main as cli  # noqa: E402
from vitfeat.synth import generate  # noqa: E402

smoke, out, data, seg_budget, install_s = sys.argv[1] == "1", Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
out.mkdir(parents=True, exist_ok=True)
if smoke:
    torch.set_num_threads(1)
device = "cpu" if smoke else "cuda"
if not smoke and not torch.cuda.is_available():
    sys.exit("gpu_check.sh: no CUDA device visible (use --smoke for the CPU rehearsal)")
S = dict(  # sizes: the real check, and the smoke rehearsal of the same code
    backbones=["test_convnext", "test_resnet", "test_vit"] if smoke else ["convnextv2_tiny", "resnet50", "samvit_base_patch16"],
    embed_batch=4 if smoke else 64, embed_images=8 if smoke else 1024,
    pairs=8 if smoke else 256, synth_size=96 if smoke else 256,
    vmtl=dict(imgsz=64, batch=4, backbone="test_convnext", hidden_dim=32) if smoke else dict(imgsz=224, batch=32),
    seg_imgsz=64 if smoke else 256, seg_batch=4 if smoke else 8, yolo_imgsz=64 if smoke else 640, yolo_batch=4 if smoke else 16)
report = {"smoke": smoke, "device": torch.cuda.get_device_name(0) if device == "cuda" else f"cpu x{torch.get_num_threads()}",
          "torch": torch.__version__, "python": platform.python_version(), "install_s": install_s, "steps": {}}


def step(name, func):
    """Run one measurement; a failure is recorded with its traceback and the check goes on."""
    t = time.perf_counter()
    try:
        report["steps"][name] = {"result": func(), "wall_s": time.perf_counter() - t}
    except Exception as exc:  # noqa: BLE001 - every failure is kept in the JSON
        report["steps"][name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                                 "wall_s": time.perf_counter() - t}
        print(f"[{name}] FAILED: {exc}", file=sys.stderr)


step("embedding", lambda: [embed_vs_bare(b, device, S["embed_batch"], S["embed_images"], "bfloat16") for b in S["backbones"]])

synth = out / "synth"
manifest = synth / "manifest.csv"
if not manifest.exists():
    generate(synth, n=S["pairs"], seed=0, size=S["synth_size"], jobs=1 if smoke else 8, progress=False)
step("vmtl_epoch", lambda: [epoch_benchmark(manifest, v, device=device, **S["vmtl"]) for v in ("original", "vmtl")])


def seg():
    ph2 = data / "ph2" / "labels.csv"
    note = []
    if ph2.exists() and not smoke:
        labels = pd.read_csv(ph2)
        frame = pd.DataFrame({"case_id": labels["image"].str.extract(r"(IMD\d+)")[0],
                              "clinical": [str((data / "ph2" / p).resolve()) for p in labels["image"]],
                              "clinical_mask": [str((data / "ph2" / p).resolve()) for p in labels["mask"]],
                              "label": labels["label"]})
        seg_manifest = write_csv(out / "ph2_manifest.csv", frame)
        dataset = "PH2 (200 dermoscopy images)"
    else:
        seg_manifest, dataset = manifest, "synth clinical photos"
        if not smoke:
            note.append(f"PH2 not found at {ph2}; synth photos used instead")
    import contextlib
    import io

    from vitfeat.cli.main import build_parser

    help_text = io.StringIO()
    with contextlib.redirect_stdout(help_text), contextlib.suppress(SystemExit):
        build_parser().parse_args(["train", "seg", "--help"])
    recipe = ["--recipe", "original"] if "--recipe" in help_text.getvalue() else []
    if not recipe:
        note.append("this vitfeat has no --recipe original for train seg: its default recipe was measured")
    run = out / "seg_ultralight"
    base = ["train", "seg", str(seg_manifest), "-o", str(run), "--arch", "ultralight", *recipe,
            "--imgsz", str(S["seg_imgsz"]), "--batch", str(S["seg_batch"]), "--device", device, "--allow-outside-root"]
    if cli(base + ["--epochs", "1"]) != 0:
        raise RuntimeError("train seg failed (see its message above)")
    epoch_s = float(json.loads((run / "segmenter.json").read_text())["mean_epoch_seconds"])
    epochs = 1 if smoke else max(1, int(seg_budget // max(epoch_s, 1e-3)))
    if epochs > 1 and cli(base + ["--epochs", str(epochs), "--resume"]) != 0:
        raise RuntimeError("train seg --resume failed")
    meta = json.loads((run / "segmenter.json").read_text())
    metrics = meta["test_metrics"]
    return {"dataset": dataset, "recipe": "original" if recipe else "vitfeat default", "imgsz": S["seg_imgsz"],
            "epoch_s": epoch_s, "epochs": epochs, "budget_s": seg_budget, "test_metrics": metrics, "notes": note}


step("ultralight_seg", seg)


def yolo():
    run = out / "yolo11n_seg"
    t = time.perf_counter()
    code = cli(["train", "yolo", str(manifest), "-o", str(run), "--task", "segment", "--model", "yolo11n-seg.yaml",
                "--epochs", "1", "--imgsz", str(S["yolo_imgsz"]), "--batch", str(S["yolo_batch"]), "--device",
                "cpu" if smoke else "0"])
    if code != 0:
        raise RuntimeError("train yolo failed (see its message above)")
    return {"epochs": 1, "imgsz": S["yolo_imgsz"], "images": S["pairs"], "train_wall_s": time.perf_counter() - t,
            "note": "wall time includes dataset conversion and ultralytics' validation pass"}


step("yolo11n_seg_epoch", yolo)

lines = [f"vitfeat GPU check on {report['device']} (torch {report['torch']}){' [SMOKE, CPU]' if smoke else ''}",
         f"{'measurement':<44} {'figure':>30}"]
emb = report["steps"]["embedding"]
for r in emb.get("result", []):
    lines.append(f"{'embed ' + r['backbone'] + ' family/bare img/s':<44} "
                 f"{r['family_images_per_s']:>10.1f} / {r['bare_images_per_s']:.1f} = {r['ratio']:.2f}")
for r in report["steps"]["vmtl_epoch"].get("result", []):
    mem = f", {r['peak_memory_gb']:.1f} GB" if r["peak_memory_gb"] is not None else ""
    lines.append(f"{'VMTL ' + r['variant'] + ' epoch (' + str(r['pairs']) + ' pairs)':<44} "
                 f"{r['epoch_s']:>8.1f} s, {r['pairs_per_s']:.1f} pairs/s{mem}")
sg = report["steps"]["ultralight_seg"].get("result")
if sg:
    dsc = sg["test_metrics"].get("pooled", sg["test_metrics"]).get("dice")
    dsc = f"{dsc:.3f}" if isinstance(dsc, float) else dsc
    lines.append(f"{'UltraLight ' + sg['recipe'] + ' recipe, ' + str(sg['epochs']) + ' epochs':<44} "
                 f"{sg['epoch_s']:>8.1f} s/epoch, pooled DSC {dsc}")
yo = report["steps"]["yolo11n_seg_epoch"].get("result")
if yo:
    lines.append(f"{'YOLO11n-seg 1 epoch @' + str(yo['imgsz']) + ' px':<44} {yo['train_wall_s']:>8.1f} s")
for name, s in report["steps"].items():
    if "error" in s:
        lines.append(f"{name:<44} {'FAILED: ' + s['error'][:60]:>30}")
report["table"] = "\n".join(lines)
write_json(out / "gpu_check.json", report)
print(report["table"])
print(f"written: {out / 'gpu_check.json'}")
sys.exit(1 if any("error" in s for s in report["steps"].values()) else 0)
PYEOF
