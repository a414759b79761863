"""The main job on the embedded default data: synth -> manifest check -> extract -> fit.

``make demo`` calls :func:`run_demo`; each step is the library call a Python user would make, and
a re-run reuses what is already there (the synth data set and the extraction cache).
"""

from __future__ import annotations

from pathlib import Path

from vitfeat.dataset import load_manifest
from vitfeat.synth import generate

#: The embedded default data: small enough for a laptop, large enough for 5-fold CV.
DEMO_SYNTH = dict(n=120, seed=0, size=384, difficulty=0.6, cases_per_patient=1.5, label_noise=0.08)


def run_demo(out_dir="artifacts/demo", jobs: int = -1, log=print) -> dict:
    """Run the whole workflow into ``out_dir`` and return the paths it wrote.

    Parameters
    ----------
    out_dir : path-like, default "artifacts/demo"
        Output folder.
    jobs : int, default -1
        Worker processes.
    log : callable, default print
        Where progress lines go.

    Returns
    -------
    dict
    """
    out = Path(out_dir)
    data = out / "data"
    manifest_path = data / "manifest.csv"
    if not manifest_path.is_file():
        log(f"[1] synth: {DEMO_SYNTH['n']} paired cases -> {data}")
        generate(data, jobs=jobs, **DEMO_SYNTH)
    else:
        log(f"[1] synth: reusing {manifest_path}")
    manifest = load_manifest(manifest_path)
    log(f"[2] manifest check: {len(manifest)} cases, {manifest.frame['patient_id'].nunique()} patients, OK")
    paths = {"manifest": manifest_path, "truth": data / "truth.csv"}
    paths.update(_extract_and_fit(manifest_path, out, jobs, log))
    return paths


def _extract_and_fit(manifest_path: Path, out: Path, jobs: int, log) -> dict:
    from vitfeat.featurize import extract

    features = out / "features.parquet"
    log(f"[3] extract: handcrafted features -> {features}")
    extract(manifest_path, features, jobs=jobs)
    from vitfeat.pipelines import FitConfig, explain_run, fit_run

    run_dir = out / "run"
    log(f"[4] fit: all pipelines, 5-fold patient-grouped CV -> {run_dir}")
    fit_run(features, run_dir, FitConfig(jobs=jobs))
    log(f"[5] explain: SHAP and permutation importance -> {run_dir}")
    explain_run(run_dir)
    return {"features": features, "run": run_dir, "report": run_dir / "report.html"}
