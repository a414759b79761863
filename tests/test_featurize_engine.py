"""The extraction engine: output and provenance, errors, cache and resume, Dask, batch families, CLI."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitfeat.cli.main import main
from vitfeat.featurize import extract, read_features
from vitfeat.featurize.registry import _FAMILIES, Family

REPO = Path(__file__).resolve().parents[1]

# A deliberately slow family, defined identically here and in the subprocess that gets killed,
# so that both compute the same cache keys (name, version, config).
SLOW_FAMILY = textwrap.dedent('''
    import time
    from vitfeat.featurize import register_family

    @register_family("slow_probe", version="1", modalities=("clinical",), default=False,
                     features={"mean": "mean grey level of the daylight photo"})
    def slow_probe(case, modality):
        """Mean clinical grey level, slowly (tests interruption)."""
        time.sleep(0.15)
        return {"mean": float(case.clinical.mean())}
''')


@pytest.fixture(scope="module", autouse=True)
def slow_probe_family():
    """Registered for this module's tests only, so that it leaks into no other test."""
    exec(SLOW_FAMILY)
    yield
    _FAMILIES.pop("slow_probe", None)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from vitfeat.synth import generate

    return generate(tmp_path_factory.mktemp("synth_engine"), n=16, seed=3, size=128, jobs=1, progress=False)


def with_problems(synth: Path, tmp_path: Path) -> Path:
    """The synth manifest plus a clinical-only case and a case whose photo is corrupt."""
    frame = pd.read_csv(synth, dtype=str)
    frame["clinical"] = frame["clinical"].map(lambda p: str((synth.parent / p).resolve()))
    for col in ("wood", "clinical_mask", "wood_mask"):
        frame[col] = frame[col].map(lambda p: str((synth.parent / p).resolve()))
    single = frame.iloc[0].copy()
    single["case_id"], single["wood"], single["wood_mask"] = "single", None, None
    broken = frame.iloc[1].copy()
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a JPEG")
    broken["case_id"], broken["clinical"], broken["clinical_mask"] = "broken", str(bad), None
    out = pd.concat([frame.iloc[:4], pd.DataFrame([single, broken])], ignore_index=True)
    path = tmp_path / "manifest.csv"
    out.to_csv(path, index=False)
    return path


def test_table_provenance_errors_and_single_image_cases(synth, tmp_path):
    manifest = with_problems(synth, tmp_path)
    # The broken photo is a fatal manifest problem at load time; extract works row by row, so
    # validate without the file check to let the run reach it.
    from vitfeat.dataset import load_manifest

    man = load_manifest(manifest, require_targets=False, allow_outside_root=True, check_files=False)
    result = extract(man, tmp_path / "f.parquet", families=["shape", "pair", "firstorder"], progress=False)
    table, prov = read_features(result.path)
    assert list(table.columns[:4]) == ["case_id", "patient_id", "label", "error"]
    assert table["case_id"].tolist() == man.frame["case_id"].tolist()
    err = table.set_index("case_id")["error"]
    assert "broken.jpg" in err["broken"] and result.n_failed == 1
    assert (err.drop("broken") == "").all()
    assert "broken.jpg" in result.summary() and "1 with errors" in result.summary()
    single = table.set_index("case_id").loc["single"]
    assert np.isfinite(single["clinical_shape_area_fraction"]) and np.isnan(single["pair_wood_area_ratio"])
    assert np.isnan(single["wood_firstorder_mean"])
    assert prov["families"]["shape"]["version"] and prov["masks"] == "given"
    assert prov["mask_source"]["single"] == {"clinical": "given"}
    assert set(prov["content_hashes"]["single"]) == {"clinical", "clinical_mask"}

    csv = extract(man, tmp_path / "f.csv", families=["shape"], progress=False)
    back, prov_csv = read_features(csv.path)
    assert prov_csv["families"] == {"shape": prov["families"]["shape"]}
    np.testing.assert_allclose(back["clinical_shape_solidity"], table["clinical_shape_solidity"])


def test_killed_run_resumes_and_equals_an_uninterrupted_run(synth, tmp_path):
    out, cache = tmp_path / "killed.parquet", tmp_path / "cache"
    code = SLOW_FAMILY + textwrap.dedent(f'''
        import sys
        from vitfeat.cli.main import main
        sys.exit(main(["extract", {str(synth)!r}, "-o", {str(out)!r}, "--families", "slow_probe", "shape",
                       "--cache-dir", {str(cache)!r}, "--no-progress"]))
    ''')
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    # finished cache entries only: a write torn by the kill stays behind as a hidden temp file
    done = lambda: sum(not p.name.startswith(".") for p in cache.glob("slow_probe/*/*.json"))  # noqa: E731
    while done() < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = done()
    assert 5 <= n_before < 16, "the run should have been killed half way"
    assert not out.exists()

    resumed = extract(synth, out, families=["slow_probe", "shape"], cache_dir=cache, progress=False)
    assert resumed.n_cached >= 2 * n_before - 1  # both families of the finished cases (one may be torn)
    assert resumed.n_computed == 32 - resumed.n_cached
    fresh = extract(synth, tmp_path / "fresh.parquet", families=["slow_probe", "shape"],
                    cache_dir=tmp_path / "cache2", progress=False)
    pd.testing.assert_frame_equal(read_features(out)[0], read_features(fresh.path)[0])
    again = extract(synth, out, families=["slow_probe", "shape"], cache_dir=cache, progress=False)
    assert again.n_computed == 0


def test_cache_key_changes_with_family_config(synth, tmp_path):
    first = extract(synth, None, families=["satellites"], cache_dir=tmp_path / "c", progress=False)
    assert first.n_computed == 16
    other = extract(synth, None, families=["satellites"], family_config={"satellites": {"min_area_px": 50}},
                    cache_dir=tmp_path / "c", progress=False)
    assert other.n_computed == 16 and other.n_cached == 0
    with pytest.raises(ValueError, match="no option"):
        extract(synth, None, families=["satellites"], family_config={"satellites": {"nope": 1}}, progress=False)


def test_dask_backend_gives_the_same_table(synth, tmp_path):
    distributed = pytest.importorskip("distributed")
    local = extract(synth, None, families=["shape", "border"], progress=False).frame
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        remote = extract(synth, None, families=["shape", "border"], backend="dask",
                         scheduler=cluster.scheduler_address, progress=False).frame
    pd.testing.assert_frame_equal(local, remote)


def test_batch_family_runs_in_main_process_and_is_cached(synth, tmp_path):
    calls = []

    def batch(cases, scale=1.0):
        calls.append(len(cases))
        return [{"clinical_probe_size": scale * c.clinical.shape[0]} for c in cases]

    _FAMILIES["batch_probe"] = Family("batch_probe", "1", ("clinical",), func=None, batch_func=batch,
                                      defaults={"scale": 1.0})
    try:
        r = extract(synth, None, families=["batch_probe"], cache_dir=tmp_path / "c", batch_size=5, progress=False)
        assert calls == [5, 5, 5, 1] and (r.frame["clinical_probe_size"] == 128).all()
        r2 = extract(synth, None, families=["batch_probe"], cache_dir=tmp_path / "c", progress=False)
        assert r2.n_computed == 0 and calls == [5, 5, 5, 1]
    finally:
        del _FAMILIES["batch_probe"]


def test_one_bad_case_in_a_batch_fails_alone(synth):
    def batch(cases):
        if any(c.case_id.endswith("3") for c in cases):
            raise ValueError("cannot embed this one")
        return [{"clinical_probe_size": float(c.clinical.shape[0])} for c in cases]

    _FAMILIES["batch_probe"] = Family("batch_probe", "1", ("clinical",), func=None, batch_func=batch)
    try:
        r = extract(synth, None, families=["batch_probe"], batch_size=8, progress=False)
    finally:
        del _FAMILIES["batch_probe"]
    bad = r.frame["case_id"].str.endswith("3")
    assert bad.sum() >= 1 and r.n_failed == bad.sum()
    assert r.frame.loc[bad, "error"].str.contains("cannot embed this one").all()
    assert (r.frame.loc[~bad, "clinical_probe_size"] == 128).all() and (r.frame.loc[~bad, "error"] == "").all()


def test_max_side_shrinks_photos_and_masks_and_is_recorded(synth, tmp_path):
    native = extract(synth, None, families=["shape"], progress=False).frame
    small = extract(synth, tmp_path / "small.parquet", families=["shape"], max_side=64, cache_dir=tmp_path / "c",
                    progress=False)
    assert small.n_failed == 0 and small.provenance["max_side"] == 64
    _, prov = read_features(small.path)
    assert prov["max_side"] == 64
    # Pixel counts scale with the area (128 -> 64 px: a quarter); fractions do not.
    ratio = small.frame["clinical_shape_pixel_area"] / native["clinical_shape_pixel_area"]
    assert ratio.median() == pytest.approx(0.25, rel=0.1)
    assert np.allclose(small.frame["clinical_shape_area_fraction"], native["clinical_shape_area_fraction"], rtol=0.15)
    # The setting is part of the cache key: the native run must not reuse the shrunk values.
    again = extract(synth, None, families=["shape"], cache_dir=tmp_path / "c", progress=False)
    assert again.n_cached == 0
    shrunk = extract(synth, None, families=["shape"], max_side=64, cache_dir=tmp_path / "c", progress=False)
    assert shrunk.n_cached == 16
    with pytest.raises(ValueError, match="max_side"):
        extract(synth, None, families=["shape"], max_side=8, progress=False)


def test_auto_and_model_mask_sources_are_recorded(synth, tmp_path, monkeypatch):
    auto = extract(synth, None, families=["shape"], masks="auto", progress=False)
    assert auto.n_failed == 0
    assert set(auto.provenance["mask_source"]["case0001"].values()) == {"auto"}
    given = extract(synth, None, families=["shape"], progress=False).frame
    # On synth the automatic masks find the lesion: areas within a few percent of the given masks'.
    ratio = auto.frame["wood_shape_area_fraction"] / given["wood_shape_area_fraction"]
    assert ratio.median() == pytest.approx(1.0, abs=0.1)

    class Square:
        def predict(self, rgb, modality):
            m = np.zeros(rgb.shape[:2], bool)
            m[10:50, 10:50] = True
            return m

        def describe(self):
            return {"kind": "test-square"}

    from vitfeat.featurize.masks import MASK_SOURCES, mask_predictor

    # A model-backed mask source plugs in through the registry, as vitfeat.deep's do.
    with MASK_SOURCES.temporarily("square", lambda path: Square()):
        model = extract(synth, None, families=["shape"], masks="square:/models/square.pt", progress=False)
    mask_predictor.cache_clear()
    assert (model.frame["clinical_shape_pixel_area"] == 1600).all()
    assert model.provenance["mask_model"] == {"kind": "test-square"}
    assert model.provenance["mask_source"]["case0001"]["wood"] == "square:/models/square.pt"
    assert "square" not in MASK_SOURCES


def test_cli_with_yaml_config_and_clear_errors(synth, tmp_path, capsys):
    config = tmp_path / "extract.yaml"
    config.write_text("families: [shape, satellites]\nmasks: given\nformat: csv\n"
                      "family_config:\n  satellites: {min_area_px: 4}\n")
    out = tmp_path / "feats.csv"
    assert main(["extract", str(synth), "-o", str(out), "--config", str(config), "--no-progress"]) == 0
    assert "16 case(s), 0 with errors" in capsys.readouterr().out
    table, prov = read_features(out)
    assert any(c.startswith("clinical_satellites_") for c in table.columns)
    assert prov["families"]["satellites"]["config"]["min_area_px"] == 4
    # A flag overrides the config file.
    assert main(["extract", str(synth), "-o", str(tmp_path / "f.parquet"), "--config", str(config),
                 "--families", "firstorder", "--format", "parquet", "--no-progress"]) == 0
    assert any(c.startswith("clinical_firstorder_") for c in read_features(tmp_path / "f.parquet")[0].columns)

    config.write_text("famillies: [shape]\n")
    assert main(["extract", str(synth), "-o", str(out), "--config", str(config)]) == 2
    assert "unknown config key(s) famillies" in capsys.readouterr().err
    assert main(["extract", str(synth), "-o", str(out), "--masks", "magic"]) == 2
    assert "unknown mask source 'magic'" in capsys.readouterr().err
    assert main(["extract", str(tmp_path / "nope.csv"), "-o", str(out)]) == 2
    json.loads(out.with_name(out.name + ".provenance.json").read_text())  # still the earlier, whole file
