"""The library a notebook holds: FeatureExtractor, ModelSelector and load_run equal the CLI's files.

Each test runs the CLI (in process, ``vitfeat.cli.main.main``) and the in-memory object on the same
input and compares their tables value for value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils import estimator_checks as checks

from vitfeat import FeatureExtractor, ModelSelector, load_run
from vitfeat.cli.main import main as cli
from vitfeat.dataset import ManifestError
from vitfeat.featurize.table import read_feature_table
from vitfeat.pipelines.demo_data import make_feature_table

FAST_FAMILIES = ["shape", "pair", "wood", "color"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """8 synthetic pairs at 96 px, their manifest as a DataFrame and the `extract` Parquet of it."""
    from vitfeat.synth import generate

    root = tmp_path_factory.mktemp("api_synth")
    manifest = generate(root / "data", n=8, seed=11, size=96, jobs=1, progress=False)
    assert cli(["extract", str(manifest), "-o", str(root / "features.parquet"), "--no-progress"]) == 0
    table, _ = read_feature_table(root / "features.parquet")
    return {"root": root, "manifest": manifest, "frame": pd.read_csv(manifest), "table": table}


def test_feature_extractor_equals_the_extract_parquet_on_synth(synth):
    fx = FeatureExtractor(data_root=synth["manifest"].parent)
    out = fx.fit_transform(synth["frame"])
    pd.testing.assert_frame_equal(out, synth["table"])
    assert list(fx.get_feature_names_out()) == list(out.columns)
    assert fx.provenance_["families"] == fx.families_


def test_set_output_pandas_and_features_only(synth):
    frame = synth["frame"].set_index(pd.Index([f"r{i}" for i in range(len(synth["frame"]))]))
    fx = FeatureExtractor(data_root=synth["manifest"].parent, families=FAST_FAMILIES, features_only=True)
    out = fx.set_output(transform="pandas").fit_transform(frame)
    assert list(out.index) == list(frame.index)  # rows stay aligned with the manifest's
    names = list(fx.get_feature_names_out())
    assert names == list(out.columns) and all(n.startswith(("clinical_", "wood_", "pair_")) for n in names)
    np.testing.assert_allclose(out.to_numpy(), synth["table"][names].to_numpy())


def test_feature_extractor_equals_extract_on_real_dermoscopy(shared_data, tmp_path):
    ph2 = shared_data / "ph2"
    labels = pd.read_csv(ph2 / "labels.csv").head(3)
    frame = pd.DataFrame({"case_id": labels["image"].str.extract(r"(IMD\d+)")[0], "clinical": labels["image"],
                          "clinical_mask": labels["mask"], "label": labels["label"]})
    manifest = tmp_path / "manifest.csv"
    frame.assign(data_root=str(ph2)).to_csv(manifest, index=False)
    families = ["shape", "border", "color", "firstorder", "texture"]
    assert cli(["extract", str(manifest), "-o", str(tmp_path / "f.parquet"), "--families", *families,
                "--max-side", "256", "--no-progress"]) == 0
    expected, _ = read_feature_table(tmp_path / "f.parquet")
    out = FeatureExtractor(families=families, max_side=256, data_root=ph2).fit_transform(frame)
    assert out["error"].eq("").all() and out.filter(like="clinical_shape_").notna().all().all()
    pd.testing.assert_frame_equal(out, expected)


def test_feature_extractor_is_a_scikit_learn_estimator():
    fx = FeatureExtractor(families=["shape"], masks="auto", max_side=256)
    twin = clone(fx)
    assert twin is not fx and twin.get_params() == fx.get_params()
    assert twin.set_params(masks="given").masks == "given" and fx.masks == "auto"
    for check in (checks.check_parameters_default_constructible, checks.check_no_attributes_set_in_init,
                  checks.check_get_params_invariance, checks.check_set_params):
        check("FeatureExtractor", FeatureExtractor())
    with pytest.raises(Exception, match="not fitted"):
        FeatureExtractor().transform(pd.DataFrame())


def test_model_selector_is_a_scikit_learn_estimator():
    sel = ModelSelector(pipelines=["logreg"], folds=3)
    assert clone(sel).get_params() == sel.get_params()
    for check in (checks.check_parameters_default_constructible, checks.check_no_attributes_set_in_init,
                  checks.check_get_params_invariance, checks.check_set_params):
        check("ModelSelector", ModelSelector())


def test_in_memory_errors_carry_the_cli_messages(synth, tmp_path, capsys):
    # a missing file, named with its row
    broken = synth["frame"].copy()
    broken.loc[2, "clinical"] = "nowhere.jpg"
    broken.to_csv(synth["manifest"].parent / "broken.csv", index=False)
    assert cli(["extract", str(synth["manifest"].parent / "broken.csv"), "-o", str(tmp_path / "x.parquet")]) == 2
    cli_message = capsys.readouterr().err
    with pytest.raises(ManifestError, match="row 3, column 'clinical'") as err:
        FeatureExtractor(data_root=synth["manifest"].parent).fit(broken).transform(broken)
    assert str(err.value).splitlines()[-1].split("ERROR: ")[-1] in cli_message
    # a DataFrame without the columns the families need
    with pytest.raises(ManifestError, match="required column 'clinical' is missing"):
        FeatureExtractor(data_root=synth["manifest"].parent).fit_transform(broken.drop(columns=["clinical"]))
    # y with one class, groups of the wrong length
    table = make_feature_table(30, 4, seed=1)
    one_class = table.assign(label="stable")
    one_class.to_parquet(tmp_path / "one.parquet")
    assert cli(["fit", str(tmp_path / "one.parquet"), "-o", str(tmp_path / "run")]) == 2
    cli_message = capsys.readouterr().err
    with pytest.raises(ValueError, match="single class") as err:
        ModelSelector(pipelines=["logreg"], folds=3).fit(one_class, "label")
    assert str(err.value) in cli_message
    with pytest.raises(ValueError, match="groups has 5 value"):
        ModelSelector().fit(table.drop(columns=["label"]), table["label"], groups=table["patient_id"][:5])


@pytest.fixture(scope="module")
def selected(tmp_path_factory):
    """A ModelSelector fitted in memory on integer labels, saved as a run directory."""
    root = tmp_path_factory.mktemp("api_select")
    table = make_feature_table(60, 8, n_informative=3, cases_per_patient=2, seed=4)
    X = table.drop(columns=["label", "patient_id"])
    y = np.where(table["label"] == "active", 1, 0)
    sel = ModelSelector(pipelines=["logreg", "rf"], folds=3, n_boot=20).fit(X, y, groups=table["patient_id"])
    run_dir = sel.save(root / "run")
    X.iloc[:20].to_parquet(root / "new.parquet")
    return {"root": root, "sel": sel, "run": run_dir, "X": X, "y": y, "table": table}


def test_model_selector_answers_in_the_users_labels(selected):
    sel, X = selected["sel"], selected["X"]
    assert list(sel.classes_) == [0, 1] and sel.classes_.dtype.kind == "i"
    assert set(sel.predict(X)) <= {0, 1}
    proba = sel.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert (sel.predict(X) == sel.classes_[proba.argmax(1)]).all()
    board = sel.leaderboard_
    assert {"logreg", "rf", "nested-selection"} == set(board["pipeline"]) and board["rank"].tolist() == [1, 2, 3]
    assert sel.best_pipeline_ == board["pipeline"].iloc[0] and hasattr(sel.best_estimator_, "predict_proba")
    assert sel.score(X, selected["y"]) > 0.5


def test_saved_selector_predicts_like_vitfeat_predict(selected):
    root, sel = selected["root"], selected["sel"]
    assert cli(["predict", str(selected["run"]), str(root / "new.parquet"), "-o", str(root / "pred.csv")]) == 0
    written = pd.read_csv(root / "pred.csv")
    np.testing.assert_allclose(written[["label_proba_0", "label_proba_1"]].to_numpy(),
                               sel.predict_proba(selected["X"].iloc[:20]), rtol=0, atol=1e-12)
    run = load_run(selected["run"])
    np.testing.assert_allclose(run.predict_proba(selected["X"].iloc[:20]).to_numpy(),
                               written[["label_proba_0", "label_proba_1"]].to_numpy(), rtol=0, atol=1e-12)
    assert run.predict(selected["X"].iloc[:20]).astype(int).tolist() == written["label_pred"].tolist()
    assert run.metadata["kind"] == "sklearn" and run.targets == ["label"]


@pytest.mark.slow
def test_saved_selector_is_explained_by_vitfeat_explain(selected):
    assert cli(["explain", str(selected["run"]), "--repeats", "1"]) == 0
    assert (selected["run"] / "explain" / "label" / "explain.html").is_file()
    why = load_run(selected["run"]).explain(selected["X"].iloc[0])
    assert "toward" in why and why.split("=")[0] in selected["X"].columns


def test_load_run_on_a_manifest_equals_vitfeat_predict(synth, tmp_path):
    table = synth["table"]
    table.to_parquet(tmp_path / "features.parquet")
    assert cli(["fit", str(synth["root"] / "features.parquet"), "-o", str(tmp_path / "run"), "--pipelines",
                "logreg", "--folds", "2", "--no-nested", "--n-boot", "10"]) == 0
    assert cli(["predict", str(tmp_path / "run"), str(synth["manifest"]), "-o", str(tmp_path / "pred.csv")]) == 0
    written = pd.read_csv(tmp_path / "pred.csv")
    run = load_run(tmp_path / "run")
    proba = run.predict_proba(synth["frame"], data_root=synth["manifest"].parent)
    columns = [f"label_proba_{c}" for c in proba.columns]
    np.testing.assert_allclose(proba.to_numpy(), written[columns].to_numpy(), rtol=0, atol=1e-12)
    assert list(proba.index) == written["case_id"].astype(str).tolist()


@pytest.mark.slow
def test_model_selector_passes_scikit_learns_classifier_checks():
    """Every check of ``check_estimator`` but three, whose behaviour is vitfeat's on purpose."""
    import warnings

    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each check's tiny data set warns (few patients per fold, no groups)
        check_estimator(ModelSelector(pipelines=["logreg"], folds=2, nested=False, n_boot=0), expected_failed_checks={
            "check_classifier_data_not_an_array": "a DataFrame's features are named <modality>_<family>_<feature> "
                                                  "(the table `extract` writes); arrays are named for it",
            "check_fit2d_1sample": "the fold planner's message names its own limit (folds need patients)",
            "check_classifiers_classes": "binary labels that name no disease class ('one', 'two') need positive=...: "
                                         "vitfeat's positive-class rule refuses to guess (issue #28)"})
