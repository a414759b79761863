"""Side-by-side comparison of trained segmenters: curves, a metrics table, an overlay sheet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from vitfeat.atomic import write_csv, write_figure, write_text
from vitfeat.dataset import read_image, read_mask

TABLE_METRICS = ("dice", "iou", "accuracy", "precision", "recall", "specificity", "f1")


def _run_names(dirs) -> list[str]:
    names = [Path(d).name for d in dirs]
    if len(set(names)) < len(names):  # same basename in different parents
        names = [f"{Path(d).parent.name}/{Path(d).name}" for d in dirs]
    return names


def _load_run(directory: Path) -> tuple[dict, pd.DataFrame]:
    meta_path = directory / "segmenter.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{directory}: no segmenter.json (not a finished `vitfeat train seg` run)")
    log_path = directory / "log.csv"  # an imported official checkpoint has no training log
    history = pd.read_csv(log_path) if log_path.is_file() else pd.DataFrame()
    return json.loads(meta_path.read_text()), history


def metrics_table(dirs, flops: bool = True) -> pd.DataFrame:
    """One row per run: model size and cost, training time, pooled and per-image test metrics.

    Parameters
    ----------
    dirs : sequence of path-like
        Segmenter run directories (``vitfeat train seg`` or ``seg import-official``).
    flops : bool, default True
        Also count FLOPs (one forward pass each).

    Returns
    -------
    pandas.DataFrame
    """
    from vitfeat.deep.segmentation.info import count_flops
    from vitfeat.deep.segmentation.predictor import load_segmenter

    rows = []
    for name, d in zip(_run_names(dirs), dirs):
        meta, _ = _load_run(Path(d))
        test = meta["test_metrics"]
        if test is None:
            raise ValueError(f"{d}: no test metrics (an imported checkpoint: run `vitfeat seg import-official "
                             "... --evaluate MANIFEST` to score it)")
        row = {"run": name, "arch": meta["arch"], "encoder": meta.get("encoder") or "", "imgsz": meta["imgsz"],
               "params": meta["params"], "epochs": meta["epochs_done"], "best_epoch": meta["best_epoch"],
               "epoch_s": round(meta["mean_epoch_seconds"], 2) if meta["mean_epoch_seconds"] else None,
               "n_test": test["n_images"],
               "evaluated_on": meta["evaluated_on"]}
        if flops:
            row["gflops"] = round(count_flops(load_segmenter(d, device="cpu").model, meta["imgsz"]) / 1e9, 4)
        for kind in ("pooled", "per_image"):
            row.update({f"{kind}_{m}": round(test[kind][m], 4) for m in TABLE_METRICS})
        rows.append(row)
    return pd.DataFrame(rows)


def plot_curves(dirs, path) -> Path:
    """Training loss, validation loss, validation Dice (pooled) and learning rate per epoch, all runs.

    Parameters
    ----------
    dirs : sequence of path-like
        Segmenter run directories (``vitfeat train seg`` or ``seg import-official``).
    path : path-like
        The PNG.

    Returns
    -------
    pathlib.Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("train_loss", "training loss"), ("val_loss", "validation loss"),
              ("val_pooled_dice", "validation Dice (pooled)"), ("lr", "learning rate")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), constrained_layout=True)
    for name, d in zip(_run_names(dirs), dirs):
        _, history = _load_run(Path(d))
        if history.empty:
            continue
        for ax, (col, _) in zip(axes, panels):
            ax.plot(history["epoch"], history[col], marker="o" if len(history) < 15 else None, ms=3, label=name)
    for ax, (_, title) in zip(axes, panels):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[-1].set_yscale("log")
    axes[0].legend(fontsize=8)
    return _save_figure(fig, path)


def plot_overlays(dirs, path, n_cases: int = 6) -> Path:
    """Rows: test cases shared by all runs. Columns: photo with the true outline, then each run's mask.

    Parameters
    ----------
    dirs : sequence of path-like
        Segmenter run directories (``vitfeat train seg`` or ``seg import-official``).
    path : path-like
        The PNG.
    n_cases : int, default 6
        Rows.

    Returns
    -------
    pathlib.Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vitfeat.dataset import load_manifest
    from vitfeat.deep.segmentation.predictor import load_segmenter

    metas = [_load_run(Path(d))[0] for d in dirs]
    splits = [pd.read_csv(Path(d) / "split.csv", dtype=str) for d in dirs]
    test_sets = [set(s.loc[s["split"] == "test", "case_id"]) for s in splits]
    shared = sorted(set.intersection(*test_sets)) if test_sets else []
    if not shared:
        raise ValueError("the runs share no test case (train them with the same --split-from) ")
    manifest = load_manifest(metas[0]["manifest"], require_targets=False, allow_outside_root=True)
    modality = metas[0]["modality"]
    cases = {c.case_id: c for c in manifest.cases()}
    chosen = [cid for cid in shared if cid in cases][:n_cases]
    segmenters = [load_segmenter(d, device="cpu") for d in dirs]
    names = _run_names(dirs)
    fig, axes = plt.subplots(len(chosen), 1 + len(dirs), figsize=(2.6 * (1 + len(dirs)), 2.6 * len(chosen)),
                             squeeze=False, constrained_layout=True)
    for r, cid in enumerate(chosen):
        image = read_image(cases[cid].image(modality))
        truth = read_mask(cases[cid].mask(modality))
        axes[r, 0].imshow(image)
        axes[r, 0].contour(truth, levels=[0.5], colors="lime", linewidths=1)
        axes[r, 0].set_title(f"{cid} (truth)", fontsize=8)
        for c, (seg, name) in enumerate(zip(segmenters, names), start=1):
            pred = seg.predict(image, modality)
            inter, total = np.logical_and(pred, truth).sum(), pred.sum() + truth.sum()
            dice = 1.0 if total == 0 else 2 * inter / total
            shaded = image.astype(float) / 255
            shaded[pred] = 0.55 * shaded[pred] + 0.45 * np.array([1.0, 0.1, 0.1])
            axes[r, c].imshow(shaded)
            axes[r, c].contour(truth, levels=[0.5], colors="lime", linewidths=1)
            axes[r, c].set_title(f"{name}: Dice {dice:.2f}", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle("red: predicted lesion, green: true outline", fontsize=9)
    return _save_figure(fig, path)


def _save_figure(fig, path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    write_figure(path, fig, dpi=110)
    plt.close(fig)
    return path


def compare_runs(dirs, out_dir, n_cases: int = 6) -> dict:
    """Write ``curves.png``, ``metrics.csv``, ``metrics.md`` and ``overlays.png`` into ``out_dir``.

    Parameters
    ----------
    dirs : sequence of path-like
        Segmenter run directories (``vitfeat train seg`` or ``seg import-official``).
    out_dir : path-like
        Output folder.
    n_cases : int, default 6
        Overlay rows.

    Returns
    -------
    dict
        ``table`` (the metrics DataFrame) and the path of each file written.
    """
    dirs = [Path(d) for d in dirs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = metrics_table(dirs)
    write_csv(out / "metrics.csv", table)
    write_text(out / "metrics.md", _markdown(table))
    written = {"metrics_csv": out / "metrics.csv", "metrics_md": out / "metrics.md",
               "curves": plot_curves(dirs, out / "curves.png"),
               "overlays": plot_overlays(dirs, out / "overlays.png", n_cases)}
    return {"table": table, **{k: str(v) for k, v in written.items()}}


def _markdown(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"
