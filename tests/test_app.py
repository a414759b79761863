"""`vitfeat serve`: the app answers exactly like `vitfeat predict`, through the /predict API
(gradio_client, end to end over HTTP on the loopback address), and refuses bad input clearly."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from vitfeat.pipelines.predict import predict_run

MAX_PIXELS = 400 * 400  # the test app's decompression guard, so an "over-large image" stays small


def make_synth_run(root):
    """40 synthetic pairs at 128 px, four cheap families, two cheap pipelines, no nested selection."""
    from vitfeat.featurize import extract
    from vitfeat.pipelines.select import FitConfig, fit_run
    from vitfeat.synth import generate

    manifest = generate(root / "data", n=40, seed=3, size=128, jobs=1, progress=False)
    extract(manifest, root / "features.parquet", families=["shape", "pair", "wood", "color"], progress=False)
    run = fit_run(root / "features.parquet", root / "run",
                  FitConfig(pipelines=["logreg", "rf"], folds=3, n_boot=50, nested=False), progress=False)
    return manifest, run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from vitfeat.app.server import launch

    root = tmp_path_factory.mktemp("app")
    manifest, run = make_synth_run(root)
    app, cache = launch([run], port=_free_port(), block=False, max_pixels=MAX_PIXELS)
    try:
        yield {"run": run, "manifest": manifest, "data": manifest.parent, "root": root,
               "client": Client(app.local_url, verbose=False), "url": app.local_url, "cache": cache}
    finally:
        app.close()


def _files(run_dir):
    return sorted((p.relative_to(run_dir), p.stat().st_mtime_ns) for p in run_dir.rglob("*"))


def test_api_answer_equals_vitfeat_predict_on_the_same_case(served, tmp_path):
    data, case = served["data"], pd.read_csv(served["manifest"]).iloc[3]
    before = _files(served["run"])
    # The API needs only the two photos (masks and run name have defaults).
    answer = served["client"].predict(handle_file(data / case["clinical"]), handle_file(data / case["wood"]),
                                      api_name="/predict")[0]
    # The same photos through `vitfeat predict` on a manifest (no masks given, as in the upload).
    one = pd.DataFrame([{"case_id": "x", "patient_id": "x", "clinical": case["clinical"], "wood": case["wood"]}])
    one.to_csv(data / "one.csv", index=False)
    expected = predict_run(served["run"], data / "one.csv", tmp_path / "pred.csv").iloc[0]
    assert answer["stage"] == expected["label_pred"]
    assert set(answer["probabilities"]) == {"active", "stable"}
    for c, p in answer["probabilities"].items():
        assert abs(p - expected[f"label_proba_{c}"]) < 1e-9
    assert isinstance(answer["warnings"], list)
    assert answer["performance"]["positive"] == "active" and answer["performance"]["mean"] is not None
    assert len(answer["top_features"]) == 5 and all(f["description"] for f in answer["top_features"])
    assert answer["areas"]["clinical_px"] > 0 and answer["areas"]["ratio"] > 0
    assert _files(served["run"]) == before  # nothing written into the run directory
    kept = {p.name for p in served["cache"].rglob("*") if p.is_file()}
    assert Path(case["clinical"]).name not in kept and Path(case["wood"]).name not in kept  # upload copies gone


def test_uploads_are_stored_without_exif_and_removed_after_the_answer(served, tmp_path, monkeypatch):
    """predict_pair re-encodes the photo without EXIF and deletes its temporary folder."""
    import tempfile

    from vitfeat.app import predict_case

    data, case = served["data"], pd.read_csv(served["manifest"]).iloc[0]
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0132] = "2024:01:01 10:00:00"  # DateTime
    tagged = tmp_path / "tagged.jpg"
    Image.open(data / case["clinical"]).save(tagged, exif=exif, quality=95)
    assert Image.open(tagged).getexif().get(0x010F) == "SecretCam"
    seen = {}
    real_predict = predict_case.sanitize_image

    def spy(src, dest, **kw):  # records what was stored; the real function does the work
        out = real_predict(src, dest, **kw)
        seen[dest.name] = (dest.parent, dict(Image.open(dest).getexif()), Image.open(dest).info)
        return out

    monkeypatch.setattr(predict_case, "sanitize_image", spy)
    result = predict_case.predict_pair(served["run"], tagged, data / case["wood"])
    assert result["stage"] in ("active", "stable")
    folder, stored_exif, info = seen["clinical.png"]
    assert stored_exif == {} and "exif" not in info
    assert not folder.exists() and folder.is_relative_to(tempfile.gettempdir())


@pytest.mark.parametrize("problem", ["text", "huge", "no_wood"])
def test_bad_input_gets_a_clear_message_not_a_stack_trace(served, tmp_path, problem):
    from gradio_client.exceptions import AppError

    data, case = served["data"], pd.read_csv(served["manifest"]).iloc[0]
    clinical, wood = data / case["clinical"], data / case["wood"]
    if problem == "text":
        clinical = tmp_path / "notes.jpg"
        clinical.write_text("this is not a photo")
        expected = "clinical photo: not an image file"
    elif problem == "huge":
        clinical = tmp_path / "huge.png"
        Image.new("RGB", (500, 500), (200, 150, 120)).save(clinical)
        expected = "decompression-bomb guard"
    else:
        wood = None
        expected = "trained on clinical \\+ Wood's-lamp pairs"
    with pytest.raises(AppError, match=expected) as info:
        served["client"].predict(handle_file(clinical), handle_file(wood) if wood else None, None, None, "run",
                                 api_name="/predict")
    assert "Traceback" not in str(info.value) and str(tmp_path) not in str(info.value)


def test_batch_tab_predicts_a_manifest_and_zip_like_vitfeat_predict(served, tmp_path):
    import zipfile

    data = served["data"]
    frame = pd.read_csv(served["manifest"]).head(4)[["case_id", "patient_id", "clinical", "wood"]]
    frame.to_csv(tmp_path / "batch.csv", index=False)
    with zipfile.ZipFile(tmp_path / "images.zip", "w") as zf:
        for p in pd.concat([frame["clinical"], frame["wood"]]):
            zf.write(data / p, p)
    out = served["client"].predict(handle_file(tmp_path / "batch.csv"), handle_file(tmp_path / "images.zip"), "",
                                   "run", api_name="/batch")
    got = pd.read_csv(out)
    frame.to_csv(data / "batch.csv", index=False)
    expected = predict_run(served["run"], data / "batch.csv", tmp_path / "expected.csv")
    assert list(got["case_id"]) == list(frame["case_id"])
    np.testing.assert_allclose(got["label_proba_active"], expected["label_proba_active"], atol=1e-9)


def test_zip_members_leaving_the_archive_are_refused(tmp_path):
    import zipfile

    from vitfeat.app.batch import _unzip
    from vitfeat.app.predict_case import AppInputError

    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("../escape.txt", "x")
    with pytest.raises(AppInputError, match="points outside"):
        _unzip(tmp_path / "evil.zip", tmp_path / "out", 10**6)
    assert not (tmp_path / "escape.txt").exists()


def test_model_tab_and_cli_defaults(served):
    from vitfeat.app.predict_case import RunInfo
    from vitfeat.app.summary import model_summary
    from vitfeat.cli.main import build_parser

    text = model_summary(RunInfo(served["run"]))
    assert "Leaderboard" in text and "95% CI" in text and "Intended use" in text
    assert "logreg" in text and json.loads((served["run"] / "run.json").read_text())["kind"] in text
    args = build_parser().parse_args(["serve", str(served["run"])])
    assert args.host == "127.0.0.1" and args.port == 7860
    assert served["url"].startswith("http://127.0.0.1:")


def test_upload_over_the_byte_limit_is_refused_before_it_is_read(served):
    from vitfeat.app.predict_case import AppInputError, predict_pair

    data, case = served["data"], pd.read_csv(served["manifest"]).iloc[0]
    with pytest.raises(AppInputError, match="over the 0 MB upload limit"):
        predict_pair(served["run"], data / case["clinical"], data / case["wood"], max_bytes=100)


def test_the_apps_answer_equals_load_runs(served):
    """The app answers in memory through load_run's predict path: same probabilities, no table written."""
    from vitfeat import load_run
    from vitfeat.app.predict_case import predict_pair

    data, frame = served["data"], pd.read_csv(served["manifest"])
    case = frame.iloc[[5]]
    before = _files(served["run"])
    answer = predict_pair(served["run"], data / case["clinical"].iloc[0], data / case["wood"].iloc[0], details=False)
    proba = load_run(served["run"]).predict_proba(case.drop(columns=["clinical_mask", "wood_mask"], errors="ignore"),
                                                  data_root=data)
    assert answer["probabilities"] == pytest.approx(proba.iloc[0].to_dict(), abs=1e-9)
    assert _files(served["run"]) == before


def test_sigterm_stops_serve_and_removes_its_upload_folder(served, tmp_path):
    """`vitfeat serve` on SIGTERM exits and deletes Gradio's upload cache (nothing uploaded stays)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    port = _free_port()
    env = dict(os.environ, TMPDIR=str(tmp_path), GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, "-m", "vitfeat.cli.main", "serve", str(served["run"]), "--port",
                             str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.5)
        caches = list(tmp_path.glob("vitfeat-gradio-*"))
        assert len(caches) == 1
        (caches[0] / "an-upload.png").write_bytes(b"pretend upload")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(tmp_path.glob("vitfeat-gradio-*"))
