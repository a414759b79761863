"""Trust at the edges (issue #25, security half): tampered model files, swapped artefacts, hostile ids.

Every attack here is built from real objects and real files; each test asserts both that the attack is
refused with the thing named and that its payload did not run (a canary file stays absent) or that
nothing was written outside the output folder.
"""

from __future__ import annotations

import builtins
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from vitfeat.artefacts import RunIntegrityError, read_run_json, verify_run
from vitfeat.cli.main import main
from vitfeat.names import join_inside, safe_filename, safe_filenames
from vitfeat.pipelines import zoo
from vitfeat.pipelines.cv import fit_estimator
from vitfeat.pipelines.persist import MODEL_FORMAT, UntrustedModelError, load_model, trusted_types
from vitfeat.pipelines.predict import predict_run

HOSTILE_IDS = ["../x", "/abs/x", "a/../../x", "C:\\x", "\\\\server\\share", "a\x00b", "a\nb", "x" * 300,
               "CON", "nul.txt", "..", ".", "", " lead", "trail.", "a:b", "Case1", "case1"]


# --- the fitted run every integrity test copies ------------------------------------------------------

@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from vitfeat.featurize import extract
    from vitfeat.pipelines.select import FitConfig, fit_run
    from vitfeat.synth import generate

    root = tmp_path_factory.mktemp("sec")
    manifest = generate(root / "data", n=24, seed=5, size=96, jobs=1, progress=False)
    extract(manifest, root / "features.parquet", families=["shape", "pair"], progress=False)
    run = fit_run(root / "features.parquet", root / "run",
                  FitConfig(pipelines=["logreg"], folds=3, n_boot=20, nested=False), progress=False)
    return {"root": root, "run": Path(run), "features": root / "features.parquet", "manifest": manifest}


@pytest.fixture()
def run_copy(fitted, tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(fitted["run"], dest)
    return dest


def _exploit_bundle(canary: Path, n_features: int) -> dict:
    """A model whose pipeline runs ``exec`` on attacker text when it predicts, built only from objects in
    numpy and builtins (the package roots the old loader trusted)."""
    code = f"open({str(canary)!r}, 'w').write('pwned')"
    kw = {"validate": False, "check_inverse": False}
    X = np.random.default_rng(0).normal(size=(20, n_features))
    clf = LogisticRegression().fit(X, np.r_[[0] * 10, [1] * 10])
    pipe = Pipeline([("fill", FunctionTransformer(np.full_like, kw_args={"fill_value": code, "dtype": object}, **kw)),
                     ("flat", FunctionTransformer(np.ravel, **kw)), ("pick", FunctionTransformer(builtins.max, **kw)),
                     ("run", FunctionTransformer(builtins.exec, **kw)), ("clf", clf)])
    return {"format": MODEL_FORMAT, "targets": {"label": {"pipeline": "logreg", "classes": ["a", "b"],
                                                          "positive": None, "model": pipe}}}


def test_the_exploit_is_real_under_package_roots(tmp_path):
    """The payload does run when a loader trusts package roots: the attack the allow-list must stop."""
    canary = tmp_path / "canary"
    data = sio.dumps(_exploit_bundle(canary, 3))
    untrusted = sio.get_untrusted_types(data=data)
    assert all(t.split(".")[0] in ("numpy", "builtins") for t in untrusted)
    model = sio.loads(data, trusted=untrusted)["targets"]["label"]["model"]
    with pytest.raises(ValueError):
        model.predict_proba(np.zeros((2, 3)))
    assert canary.read_text() == "pwned"


def test_predict_refuses_a_crafted_model_without_running_it(run_copy, fitted, tmp_path, capsys):
    canary = tmp_path / "canary"
    bundle = _exploit_bundle(canary, len(json.loads((run_copy / "run.json").read_text())["feature_columns"]))
    bundle["features"] = json.loads((run_copy / "run.json").read_text())["feature_columns"]
    sio.dump(bundle, run_copy / "model.skops")
    # even with the hash check overridden, the type allow-list refuses the file before constructing it
    code = main(["predict", str(run_copy), str(fitted["features"]), "-o", str(tmp_path / "p.csv"),
                 "--trust-modified"])
    err = capsys.readouterr().err
    assert code == 2 and "builtins.exec" in err and "refusing" in err and "model.skops" in err
    assert "Traceback" not in err
    assert not canary.exists() and not (tmp_path / "p.csv").exists()


def test_every_zoo_pipeline_loads_with_the_exact_type_list(tmp_path):
    """The allow-list is exactly what vitfeat writes: each classifier, sampler and selector, calibrated,
    searched and pre-filtered, saves and loads again with nothing outside :func:`trusted_types`."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 12))
    X[rng.random(X.shape) < 0.05] = np.nan
    X[:, 1] = X[:, 0]  # a near-duplicate for the pre-filter
    y = np.r_[[0] * 30, [1] * 18]
    groups = np.arange(48).astype(str)
    names = set(zoo.DEFAULT_PIPELINES) | set(zoo.CLASSIFIERS) | {f"logreg+{s}" for s in zoo.SAMPLERS} \
        | {"rf+kbest"}
    variants = [(n, {}) for n in sorted(names)] + [
        ("logreg", {"calibrate": "sigmoid"}), ("rf", {"calibrate": "isotonic"}), ("hgb", {"prefilter": True}),
        ("logreg", {"search": "random", "n_iter": 2}),
        ("lgbm", {"gbm_early_stopping": True}), ("xgb", {"gbm_early_stopping": True})]
    seen = set()
    for name, options in variants:
        est, params = fit_estimator(name, X, y, groups, **options)
        path = tmp_path / f"{safe_filename(name)}.skops"
        from vitfeat.pipelines.persist import save_model

        save_model({"features": [f"f{i}" for i in range(12)],
                    "targets": {"label": {"pipeline": name, "classes": ["a", "b"], "positive": "b", "model": est,
                                          "params": params, "threshold": 0.5}}}, path)
        types = set(sio.get_untrusted_types(file=path))
        assert types <= trusted_types(), f"{name} {options}: {sorted(types - trusted_types())}"
        seen |= types
        loaded = load_model(path)["targets"]["label"]["model"]
        np.testing.assert_allclose(loaded.predict_proba(np.nan_to_num(X[:5])), est.predict_proba(np.nan_to_num(X[:5])))
    # no stale entries: every trusted type is written by some pipeline (tabpfn/tabicl need a checkpoint, so
    # tests/test_tabular_deep.py saves and loads that one)
    assert seen | {f"vitfeat.pipelines.foundation.{c}LocalClassifier" for c in ("TabPFN", "TabICL")} \
        == trusted_types()


@pytest.mark.parametrize("content", [b"", b"\x00" * 64, b"PK\x03\x04 truncated", np.random.default_rng(1).bytes(512)])
def test_damaged_model_files_are_named(run_copy, fitted, tmp_path, capsys, content):
    (run_copy / "model.skops").write_bytes(content)
    code = main(["predict", str(run_copy), str(fitted["features"]), "-o", str(tmp_path / "p.csv"),
                 "--trust-modified"])
    err = capsys.readouterr().err
    assert code == 2 and "model.skops" in err and "Traceback" not in err


def test_a_truncated_real_model_file_is_named(run_copy, tmp_path):
    data = (run_copy / "model.skops").read_bytes()
    (run_copy / "model.skops").write_bytes(data[: len(data) // 2])
    with pytest.raises(UntrustedModelError, match="model.skops"):
        load_model(run_copy / "model.skops")


# --- artefact hashes ---------------------------------------------------------------------------------

def test_fit_records_the_sha256_of_every_artefact(fitted):
    import hashlib

    meta = read_run_json(fitted["run"])
    assert "model.skops" in meta["artefacts"] and "oof_predictions.csv" in meta["artefacts"]
    for name, digest in meta["artefacts"].items():
        assert hashlib.sha256((fitted["run"] / name).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("victim", ["model.skops", "folds.csv", "oof_predictions.csv"])
def test_a_modified_artefact_is_refused_and_trust_modified_warns(run_copy, fitted, tmp_path, capsys, victim):
    with open(run_copy / victim, "ab") as handle:
        handle.write(b"\n")
    out = tmp_path / "p.csv"
    code = main(["predict", str(run_copy), str(fitted["features"]), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and victim in err and "modified after fit" in err and not out.exists()
    if victim != "model.skops":  # an appended byte leaves the other files usable
        with pytest.warns(UserWarning, match="modified after fit"):
            frame = predict_run(run_copy, fitted["features"], out, trust_modified=True)
        assert len(frame) == 24 and out.is_file()


def test_a_model_swapped_from_another_run_is_refused(run_copy, fitted, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(fitted["run"], other)
    meta = json.loads((other / "run.json").read_text())
    meta["artefacts"]["model.skops"] = "0" * 64
    (run_copy / "run.json").write_text(json.dumps(meta))
    with pytest.raises(RunIntegrityError, match="model.skops: modified after fit"):
        verify_run(run_copy)


@pytest.mark.parametrize("content", [b"", b"{", b"\xff\xfe\x00garbage", b"[1, 2]", b"null", b"{\"kind\": \"skl"])
def test_damaged_run_json_is_named_without_a_traceback(run_copy, fitted, tmp_path, capsys, content):
    (run_copy / "run.json").write_bytes(content)
    for argv in (["predict", str(run_copy), str(fitted["features"]), "-o", str(tmp_path / "p.csv")],
                 ["explain", str(run_copy)]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and "run.json" in err and "Traceback" not in err


def test_missing_model_file_is_named(run_copy, fitted, tmp_path, capsys):
    (run_copy / "model.skops").unlink()
    code = main(["predict", str(run_copy), str(fitted["features"]), "-o", str(tmp_path / "p.csv"),
                 "--trust-modified"])
    err = capsys.readouterr().err
    assert code == 2 and "model.skops" in err and "missing" in err


def test_a_recorded_artefact_outside_the_run_is_refused(run_copy):
    meta = json.loads((run_copy / "run.json").read_text())
    meta["artefacts"]["../../etc/passwd"] = "0" * 64
    (run_copy / "run.json").write_text(json.dumps(meta))
    with pytest.raises(RunIntegrityError, match="outside the run directory"):
        verify_run(run_copy, trust_modified=True)


def test_the_app_refuses_a_modified_run_at_start_up(run_copy):
    from vitfeat.app.predict_case import RunInfo

    (run_copy / "folds.csv").write_text("tampered\n")
    with pytest.raises(RunIntegrityError, match="folds.csv: modified after fit"):
        RunInfo(run_copy)
    with pytest.warns(UserWarning, match="modified after fit"):
        RunInfo(run_copy, trust_modified=True)


# --- one sanitiser for data-derived names -----------------------------------------------------------

@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_safe_filename_stays_inside_its_folder(tmp_path, hostile):
    name = safe_filename(hostile)
    assert name and "/" not in name and "\\" not in name and "\x00" not in name and "\n" not in name
    assert len(name) <= 100 and name not in (".", "..") and not name.endswith((".", " "))
    assert name.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL"}
    path = join_inside(tmp_path, hostile, "_clinical.png")
    assert path.parent == tmp_path
    path.write_bytes(b"x")  # really writable as one file in the folder
    assert path.resolve().parent == tmp_path.resolve()


def test_distinct_ids_never_share_a_file():
    ids = ["a/b", "a_b", "a\\b", "a:b", "Case1", "case1", "CASE1", "x" * 300, "x" * 301, "../x", "__x"]
    names = safe_filenames(ids)
    assert len({n.casefold() for n in names.values()}) == len(ids)
    assert safe_filename("case_01") == "case_01"  # an ordinary id keeps its name


def test_vmtl_predict_masks_stay_in_their_folder(tmp_path):
    """The reported bug: VMTL predict wrote ``<masks>/<case_id>_<modality>.png`` for hostile ids."""
    from vitfeat.deep.vmtl import predict as vmtl_predict

    source = Path(vmtl_predict.__file__).read_text()
    assert 'masks_dir / f"{case.case_id}' not in source
    masks = tmp_path / "out" / "masks"
    masks.mkdir(parents=True)
    for hostile in HOSTILE_IDS:
        join_inside(masks, safe_filenames([hostile])[hostile], "_clinical.png").write_bytes(b"m")
    written = {p.resolve() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(p.parent == masks.resolve() for p in written) and len(written) == len(set(HOSTILE_IDS))


def test_yolo_masks_use_the_sanitiser(tmp_path):
    """The YOLO mask writer of a manifest with hostile ids writes only inside OUT/masks."""
    import cv2

    from vitfeat.deep.yolo import predict_manifest

    from vitfeat.deep.yolo import Detection, YoloPredictor

    class FindsNothing(YoloPredictor):  # the detector is not under test; the writer's file names are
        def __init__(self):
            pass

        def detect(self, image):
            return Detection(boxes=np.zeros((0, 4)), conf=np.zeros(0), masks=None)

    images = tmp_path / "data"
    images.mkdir()
    rows = []
    for i, hostile in enumerate(["../../escape", "/abs/escape", "ok"]):
        cv2.imwrite(str(images / f"{i}.png"), np.full((16, 16, 3), 120, np.uint8))
        rows.append({"case_id": hostile, "clinical": f"{i}.png"})
    pd.DataFrame(rows).to_csv(images / "m.csv", index=False)
    out = tmp_path / "sub" / "out"
    frame = predict_manifest(FindsNothing(), images / "m.csv", out)
    written = [p for p in tmp_path.rglob("*.png") if not p.is_relative_to(images)]
    assert len(written) == 3 and all(p.parent == out / "masks" for p in written)
    assert set(frame["case_id"]) == {"../../escape", "/abs/escape", "ok"}


# --- the app's edges ---------------------------------------------------------------------------------

def _zip(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("member", ["../evil.png", "/abs/evil.png", "a/../../evil.png", "..\\evil.png",
                                    "C:/evil.png"])
def test_zip_slip_members_are_refused(tmp_path, member):
    from vitfeat.app.batch import _unzip
    from vitfeat.app.predict_case import AppInputError

    dest = tmp_path / "a" / "b"
    dest.mkdir(parents=True)
    with pytest.raises(AppInputError, match="points outside the archive"):
        _unzip(_zip(tmp_path / "z.zip", {"ok.png": b"x", member: b"evil"}), dest, 10**6)
    assert not list(tmp_path.rglob("evil.png")) and not (dest / "ok.png").exists()


def test_a_zip_bomb_is_refused_by_its_real_size_even_when_headers_lie(tmp_path):
    from vitfeat.app.batch import _unzip
    from vitfeat.app.predict_case import AppInputError

    honest = _zip(tmp_path / "honest.zip", {"a.png": b"\0" * 5_000_000})
    with pytest.raises(AppInputError, match="limit|zip bomb"):
        _unzip(honest, tmp_path / "h", 1_000_000)
    # the same archive with every declared size rewritten to 10 bytes: only the streamed count sees it
    data = bytearray(honest.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (pos := data.find(sig, start)) >= 0:
            data[pos + offset: pos + offset + 4] = (10).to_bytes(4, "little")
            start = pos + 4
    lying = tmp_path / "lying.zip"
    lying.write_bytes(bytes(data))
    with pytest.raises(AppInputError, match="zip"):
        _unzip(lying, tmp_path / "l", 1_000_000)
    written = sum(p.stat().st_size for p in (tmp_path / "l").rglob("*") if p.is_file())
    assert written <= 1_000_000


def test_browser_messages_carry_no_server_paths_or_library_names():
    from vitfeat.app.predict_case import public_message

    text = public_message("/srv/runs/r1/model.skops: modified after fit; cannot read /tmp/vitfeat-app-1/x.png "
                          "(PIL.UnidentifiedImageError) and C:\\data\\y.png")
    assert "/srv" not in text and "/tmp" not in text and "PIL" not in text and "C:\\" not in text
    assert "model.skops: modified after fit" in text and "x.png" in text and "y.png" in text


def test_manifest_check_names_ids_that_need_renaming(tmp_path, capsys):
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((32, 32, 3), 120, np.uint8))
    pd.DataFrame({"case_id": ["../../x", "CON", "fine_id"], "clinical": ["0.png", "1.png", "2.png"],
                  "label": ["a", "b", "a"]}).to_csv(tmp_path / "m.csv", index=False)
    code = main(["manifest", "check", str(tmp_path / "m.csv")])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 0  # a warning, not an error: the files get safe names
    assert "row 1" in text and "'../../x' is not a safe file name" in text and safe_filename("../../x") in text
    assert "row 2" in text and "'CON'" in text and "fine_id' is not" not in text


class _Payload:
    """Unpickling this calls ``builtins.exec`` on attacker text (the classic pickle attack)."""

    def __init__(self, canary):
        self.canary = str(canary)

    def __reduce__(self):
        return builtins.exec, (f"open({self.canary!r}, 'w').write('pwned')",)


def test_a_yolo_checkpoint_that_runs_code_is_refused_before_unpickling(tmp_path):
    import torch

    from vitfeat.deep.runtime import UnsafeCheckpointError
    from vitfeat.deep.yolo import YoloPredictor

    canary = tmp_path / "canary"
    path = tmp_path / "model.pt"
    torch.save({"model": _Payload(canary), "train_args": {"imgsz": 64}}, path)
    with pytest.raises(UnsafeCheckpointError, match="builtins.exec"):
        YoloPredictor(path)
    assert not canary.exists()
    torch.load(path, weights_only=False)  # what ultralytics would have done: the payload is real
    assert canary.read_text() == "pwned"


def test_a_real_yolo_architecture_checkpoint_passes_the_gate(tmp_path, yolo_config_dir):
    import copy

    import torch

    from vitfeat.deep.runtime import check_pickled_checkpoint
    from vitfeat.deep.yolo import _ultralytics

    model = _ultralytics().YOLO("yolov8n-seg.yaml")
    path = tmp_path / "model.pt"
    torch.save({"model": copy.deepcopy(model.model).half(), "train_args": {"imgsz": 64}, "version": "8"}, path)
    found = check_pickled_checkpoint(path)
    assert "ultralytics.nn.tasks.SegmentationModel" in found
