"""`vitfeat serve --data-root DIR`: the Batch tab predicts a manifest over a server folder inside DIR
exactly like `vitfeat predict`, and reads nothing outside DIR (``..``, absolute paths, symlinks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from gradio_client import Client, handle_file

from vitfeat.app.batch import predict_batch
from vitfeat.app.predict_case import AppInputError
from vitfeat.pipelines.predict import predict_run


@pytest.fixture(scope="module")
def served_root(tmp_path_factory):
    from tests.test_app import _free_port, make_synth_run
    from vitfeat.app.server import launch

    root = tmp_path_factory.mktemp("batch-root")
    manifest, run = make_synth_run(root)
    data_root = root / "data"
    app, _ = launch([run], port=_free_port(), block=False, data_root=data_root)
    try:
        yield {"run": run, "manifest": manifest, "root": root, "data_root": data_root,
               "client": Client(app.local_url, verbose=False)}
    finally:
        app.close()


def _batch_csv(served, tmp_path, rows=4):
    frame = pd.read_csv(served["manifest"]).head(rows)[["case_id", "patient_id", "clinical", "wood"]]
    frame.to_csv(tmp_path / "batch.csv", index=False)
    return frame


def test_batch_over_a_folder_under_data_root_equals_vitfeat_predict(served_root, tmp_path):
    frame = _batch_csv(served_root, tmp_path)
    out = served_root["client"].predict(handle_file(tmp_path / "batch.csv"), None, ".", "run", api_name="/batch")
    got = pd.read_csv(out)
    frame.to_csv(served_root["manifest"].parent / "expected.csv", index=False)  # `vitfeat predict` on the same cases
    expected = predict_run(served_root["run"], served_root["manifest"].parent / "expected.csv", tmp_path / "pred.csv")
    assert list(got["case_id"]) == list(frame["case_id"])
    for col in [c for c in expected.columns if "_proba_" in c]:
        np.testing.assert_allclose(got[col], expected[col], atol=1e-9)
    assert list(got["label_pred"].astype(str)) == list(expected["label_pred"].astype(str))
    assert list(got["in_scope"]) == list(expected["in_scope"])


def test_a_folder_outside_data_root_is_refused_without_server_paths(served_root, tmp_path):
    from gradio_client.exceptions import AppError

    _batch_csv(served_root, tmp_path)
    outside = served_root["root"]  # holds the run and the features: outside the data root
    (served_root["data_root"] / "link").symlink_to(outside, target_is_directory=True)
    for choice, expected in [("..", "'\\.\\.'"), (str(outside), "absolute path"), ("link", "leads outside")]:
        with pytest.raises(AppError, match=expected) as info:
            served_root["client"].predict(handle_file(tmp_path / "batch.csv"), None, choice, "run",
                                          api_name="/batch")
        assert str(outside) not in str(info.value) and "Traceback" not in str(info.value)


def test_manifest_paths_leaving_the_folder_are_refused(served_root, tmp_path):
    frame = _batch_csv(served_root, tmp_path, rows=2)
    secret = served_root["root"] / "secret.png"
    secret.write_bytes(b"x")
    (served_root["data_root"] / "sneaky.png").symlink_to(secret)
    for bad, expected in [("../secret.png", "'\\.\\.'"), (str(secret), "absolute path"),
                          ("sneaky.png", "leads outside")]:
        frame.loc[1, "clinical"] = bad
        frame.to_csv(tmp_path / "bad.csv", index=False)
        with pytest.raises(AppInputError, match=f"row 2, column clinical.*{expected}") as info:
            predict_batch(None, tmp_path / "bad.csv", folder=".", data_root=served_root["data_root"])
        assert str(served_root["root"]) not in str(info.value)


def test_without_data_root_server_folders_are_off(tmp_path):
    from vitfeat.app.folders import list_folders
    from vitfeat.cli.main import build_parser

    pd.DataFrame([{"case_id": "a", "clinical": "a.png"}]).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(AppInputError, match="started without --data-root"):
        predict_batch(None, tmp_path / "m.csv", folder=str(tmp_path))
    assert list_folders(None) == []
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    assert list_folders(tmp_path.resolve()) == [".", "sub", "sub/deeper"]
    assert build_parser().parse_args(["serve", "r", "--data-root", "/srv/x"]).data_root == "/srv/x"
    assert build_parser().parse_args(["serve", "r"]).data_root is None
