"""The app serves what ``fit`` recorded: a clinical-only model answers from one photo through the
/predict API (gradio_client, over HTTP), out-of-scope photos get no stage and a reason, a paired
model refuses a missing Wood's photo, and a drawn-mask model says when it drew the mask itself."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from vitfeat.pipelines.predict import predict_run


def make_clinical_only_run(root):
    """40 synthetic cases with the Wood's photos and all masks dropped (a manifest like
    shared/data vitiligo-cls): automatic masks, the same families as the paired test run, so the
    table still has (empty) Wood's and pair columns."""
    from vitfeat.featurize import extract
    from vitfeat.pipelines.select import FitConfig, fit_run
    from vitfeat.synth import generate

    paired = generate(root / "data", n=40, seed=4, size=128, jobs=1, progress=False)
    frame = pd.read_csv(paired)[["case_id", "patient_id", "clinical", "label"]]
    manifest = paired.with_name("clinical_only.csv")
    frame.to_csv(manifest, index=False)
    extract(manifest, root / "features.parquet", families=["shape", "pair", "wood", "color"], masks="auto",
            progress=False)
    run = fit_run(root / "features.parquet", root / "clinical-run",
                  FitConfig(pipelines=["logreg", "rf"], folds=3, n_boot=50, nested=False), progress=False)
    return manifest, run


@pytest.fixture(scope="module")
def served_clinical(tmp_path_factory):
    from tests.test_app import _free_port
    from vitfeat.app.server import launch

    root = tmp_path_factory.mktemp("clinical-app")
    manifest, run = make_clinical_only_run(root)
    app, _ = launch([run], port=_free_port(), block=False)
    try:
        yield {"run": run, "manifest": manifest, "client": Client(app.local_url, verbose=False), "url": app.local_url}
    finally:
        app.close()


def test_clinical_only_model_answers_one_photo_like_vitfeat_predict(served_clinical, tmp_path):
    import json

    run, manifest = served_clinical["run"], served_clinical["manifest"]
    assert json.loads((run / "run.json").read_text())["applicability"]["needs"]["modalities"] == ["clinical"]
    case = pd.read_csv(manifest).iloc[5]
    photo = manifest.parent / case["clinical"]
    answer = served_clinical["client"].predict(handle_file(photo), api_name="/predict")[0]
    one = pd.DataFrame([{"case_id": "x", "clinical": case["clinical"]}])
    one.to_csv(manifest.parent / "one.csv", index=False)
    expected = predict_run(run, manifest.parent / "one.csv", tmp_path / "pred.csv").iloc[0]
    assert answer["in_scope"] is bool(expected["in_scope"]) and answer["scope_reason"] == expected["scope_reason"]
    assert answer["stage"] == (expected["label_pred"] if expected["in_scope"] else None)
    for c, p in answer["probabilities"].items():
        assert abs(p - expected[f"label_proba_{c}"]) < 1e-9
    assert "{" + ", ".join(answer["prediction_set"]) + "}" == expected["label_prediction_set"]
    assert answer["mask_source"] == "automatic" and answer["model"] == "clinical-run"
    assert not any("Wood" in w for w in answer["warnings"])


def test_a_blank_photo_gets_no_stage_and_a_reason(served_clinical, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (128, 128), (210, 170, 150)).save(blank)
    answer = served_clinical["client"].predict(handle_file(blank), api_name="/predict")[0]
    assert answer["in_scope"] is False and answer["stage"] is None
    assert "sharpness" in answer["scope_reason"]
    assert set(answer["probabilities"]) == {"active", "stable"}  # the raw output stays in the JSON


@pytest.fixture(scope="module")
def paired_run(tmp_path_factory):
    from tests.test_app import make_synth_run

    return make_synth_run(tmp_path_factory.mktemp("paired"))


def test_paired_model_needs_the_wood_photo_and_names_its_mask_source(paired_run):
    from vitfeat.app.predict_case import AppInputError, predict_pair
    from vitfeat.app.scope import mask_note
    from vitfeat.app.summary import model_summary
    from vitfeat.app.ui import inputs_for
    from vitfeat.app.predict_case import RunInfo

    manifest, run = paired_run
    case = pd.read_csv(manifest).iloc[1]
    data = manifest.parent
    with pytest.raises(AppInputError, match="this model needs a Wood's-lamp photo"):
        predict_pair(run, data / case["clinical"], None, details=False)
    auto = predict_pair(run, data / case["clinical"], data / case["wood"], details=False)
    assert auto["mask_source"] == "automatic" and any("hand-drawn" in w for w in auto["warnings"])
    given = predict_pair(run, data / case["clinical"], data / case["wood"], clinical_mask=data / case["clinical_mask"],
                         wood_mask=data / case["wood_mask"], details=False)
    assert given["mask_source"] == "uploaded" and not any("hand-drawn" in w for w in given["warnings"])
    info = RunInfo(run)
    assert "needs a clinical and a Wood's-lamp photo" in model_summary(info)
    assert "hand-drawn" in mask_note(info) and inputs_for(info) == {
        "wood_visible": True, "mask_note": mask_note(info), "masks_open": True}


def test_a_wood_photo_given_to_a_clinical_only_model_is_left_out_and_said_so(served_clinical):
    from vitfeat.app.predict_case import predict_pair

    manifest = served_clinical["manifest"]
    case = pd.read_csv(manifest.with_name("manifest.csv")).iloc[2]  # the paired synth manifest beside it
    photo, wood = manifest.parent / case["clinical"], manifest.parent / case["wood"]
    alone = predict_pair(served_clinical["run"], photo, details=False)
    both = predict_pair(served_clinical["run"], photo, wood, details=False)
    assert both["probabilities"] == alone["probabilities"]
    assert any("Wood's-lamp photo was not used" in w for w in both["warnings"])
    assert not any("Wood" in w for w in alone["warnings"])


def test_the_model_tab_and_card_name_the_photos_the_model_was_trained_on(served_clinical, paired_run):
    """A clinical-only model's intended use never asks for Wood's-lamp photos; a paired model's does."""
    from vitfeat.app.predict_case import RunInfo
    from vitfeat.app.summary import model_summary

    clinical_only = model_summary(RunInfo(served_clinical["run"]))
    use = clinical_only.split("### Intended use and limits")[1]
    assert "clinical (daylight) photo" in use and "Wood" not in use
    card = (Path(served_clinical["run"]) / "model_card.md").read_text()
    assert "clinical (daylight) photographs" in card and "Wood's lamp photographs" not in card
    paired = model_summary(RunInfo(paired_run[1])).split("### Intended use and limits")[1]
    assert "Wood's-lamp photo" in paired
