"""Cross-validation engine: no leakage, patient-grouped folds, multi-class, several targets,
fold plans shared between runs, included external predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import RandomOverSampler
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from vitfeat.pipelines import zoo
from vitfeat.pipelines.cv import cross_validate
from vitfeat.pipelines.demo_data import make_feature_table, write_feature_table
from vitfeat.evaluation.folds import check_folds, make_folds, read_folds
from vitfeat.evaluation.metrics import _metrics, fast_metrics, score_oof
from vitfeat.pipelines.select import FitConfig, fit_run


def test_cv_estimate_matches_held_out_while_oversampling_first_is_inflated():
    # Weak signal, 15 % minority: duplicating minority cases before splitting puts copies of the
    # same case on both sides of the split, and a random forest recognises them.
    X, y = make_classification(n_samples=2200, n_features=15, n_informative=3, n_redundant=0, class_sep=0.5,
                               weights=[0.85], flip_y=0.05, random_state=3)
    dev, held = slice(0, 200), slice(200, None)
    case_ids = np.array([f"C{i}" for i in range(200)])
    frame = pd.DataFrame({"case_id": case_ids, "patient_id": case_ids, "label": y[dev]})
    plan = make_folds(frame, "label", n_splits=5, seed=0)

    oof, _, failures = cross_validate(X[dev], y[dev], case_ids, case_ids, plan, ["rf+ros"], n_jobs=1,
                                      progress=False)
    assert not failures
    cv_estimate = score_oof(oof, ["0", "1"], positive="1", n_boot=0)["balanced_accuracy"]["value"]

    model = zoo.make_pipeline("rf+ros").fit(X[dev], y[dev])
    held_out = balanced_accuracy_score(y[held], model.predict(X[held]))

    X_over, y_over = RandomOverSampler(random_state=0).fit_resample(X[dev], y[dev])
    naive_pred = cross_val_predict(RandomForestClassifier(n_estimators=200, random_state=0), X_over, y_over,
                                   cv=StratifiedKFold(5, shuffle=True, random_state=0))
    naive = balanced_accuracy_score(y_over, naive_pred)

    print(f"CV {cv_estimate:.3f} held-out {held_out:.3f} naive {naive:.3f}")
    assert abs(cv_estimate - held_out) < 0.1, (cv_estimate, held_out)
    assert naive - held_out > 0.15, (naive, held_out)


def test_feature_selection_inside_folds_finds_nothing_in_noise():
    # Pure noise: choosing the 30 best of 2000 features on all cases before CV "finds" signal.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2000))
    y = np.repeat([0, 1], 40)
    ids = np.array([f"C{i}" for i in range(80)])
    plan = make_folds(pd.DataFrame({"case_id": ids, "patient_id": ids, "label": y}), "label", n_splits=5)
    oof, _, _ = cross_validate(X, y, ids, ids, plan, ["logreg+kbest"], progress=False)
    honest = score_oof(oof, ["0", "1"], positive="1", n_boot=0)["balanced_accuracy"]["value"]

    from sklearn.feature_selection import SelectKBest, f_classif

    X_sel = SelectKBest(f_classif, k=30).fit_transform(X, y)
    naive = balanced_accuracy_score(y, cross_val_predict(zoo.make_pipeline("logreg"), X_sel, y,
                                                         cv=StratifiedKFold(5, shuffle=True, random_state=0)))
    assert abs(honest - 0.5) < 0.15, honest
    assert naive > 0.8, naive


def test_no_patient_in_two_test_folds():
    frame = make_feature_table(180, 5, cases_per_patient=3, seed=1)
    frame["patient_id"] = frame["patient_id"].sample(frac=1, random_state=0).to_numpy()  # uneven groups
    plan = make_folds(frame, "label", n_splits=5, repeats=3, seed=0)
    assert plan.groupby(["repeat", "patient_id"])["fold"].nunique().max() == 1
    assert plan.groupby("repeat")["case_id"].nunique().eq(len(frame)).all()
    # each repeat is a real reshuffle, not the same plan three times
    folds = plan.pivot(index="case_id", columns="repeat", values="fold")
    assert (folds[0] != folds[1]).any()

    leaky = plan.copy()
    first = leaky.index[(leaky["repeat"] == 0) & (leaky["patient_id"] == leaky["patient_id"].iloc[0])]
    leaky.loc[first[0], "fold"] = (leaky.loc[first[0], "fold"] + 1) % 5
    with pytest.raises(ValueError, match="leaks patients"):
        check_folds(leaky)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    two = make_feature_table(120, 12, n_informative=3, cases_per_patient=2, seed=0)
    rng = np.random.default_rng(0)
    # a second target, related to the first only through the features
    two["activity"] = np.where(two["wood_border_sharpness"] + rng.normal(0, 0.5, len(two)) > 0, "high", "low")
    three = make_feature_table(150, 12, n_informative=4, n_classes=3, seed=2,
                               class_names=["common_nevus", "atypical_nevus", "melanoma"])
    return {"two": write_feature_table(two, root / "two.parquet"),
            "three": write_feature_table(three, root / "three.parquet"), "root": root}


def test_multiclass_leaderboard_has_per_class_scores(tables):
    run = fit_run(tables["three"], tables["root"] / "run3",
                  FitConfig(pipelines=["logreg", "lgbm"], folds=3, n_boot=50), progress=False)
    board = pd.read_csv(run / "leaderboard.csv")
    assert set(board["pipeline"]) == {"logreg", "lgbm", "nested-selection"}
    for c in ("common_nevus", "atypical_nevus", "melanoma"):
        assert board[f"f1_{c}_mean"].notna().all()
    assert (board["balanced_accuracy_mean"] > 0.45).all()  # chance is 0.33
    assert (board["balanced_accuracy_ci_low"] <= board["balanced_accuracy_value"]).all()
    oof = pd.read_csv(run / "oof_predictions.csv")
    probas = oof[["proba_common_nevus", "proba_atypical_nevus", "proba_melanoma"]].to_numpy()
    np.testing.assert_allclose(probas.sum(1), 1.0, atol=1e-6)
    assert len(oof) == 3 * 150  # two pipelines and the nested selection between them


def test_several_targets_give_one_leaderboard_each_and_one_model_each(tables):
    run = fit_run(tables["two"], tables["root"] / "multi",
                  FitConfig(targets=["label", "activity"], pipelines=["logreg", "rf"], folds=4, n_boot=50,
                            positive="high"),  # high/low names neither disease nor health: chosen explicitly
                  progress=False)
    board = pd.read_csv(run / "leaderboard.csv")
    assert sorted(board.groupby("target")["rank"].apply(list).to_dict().items()) == [
        ("activity", [1, 2, 3]), ("label", [1, 2, 3])]  # two pipelines + nested selection
    from vitfeat.pipelines.persist import load_model

    bundle = load_model(run / "model.skops")
    assert set(bundle["targets"]) == {"label", "activity"}
    assert bundle["targets"]["activity"]["classes"] == ["high", "low"]
    # activity is driven by one feature: the best model must find it
    assert board.loc[board["target"] == "activity", "auroc_mean"].max() > 0.8


def test_folds_from_round_trip_and_include_external_predictions(tables):
    root = tables["root"]
    first = fit_run(tables["two"], root / "a", FitConfig(pipelines=["logreg"], folds=4, n_boot=0), progress=False)
    second = fit_run(tables["two"], root / "b",
                     FitConfig(pipelines=["lgbm"], folds_from=str(first / "folds.csv"), n_boot=0), progress=False)
    assert pd.read_csv(first / "folds.csv").equals(pd.read_csv(second / "folds.csv"))

    # an external model (e.g. VMTL) scored on the same folds, with its own OOF file
    ext = root / "vmtl"
    ext.mkdir()
    (ext / "folds.csv").write_text((first / "folds.csv").read_text())
    oof = pd.read_csv(first / "oof_predictions.csv")
    oof["pipeline"] = "vmtl"
    oof.to_csv(ext / "oof_predictions.csv", index=False)
    third = fit_run(tables["two"], root / "c", FitConfig(pipelines=["lgbm"], folds_from=str(first / "folds.csv"),
                                                         include=[str(ext)], n_boot=0), progress=False)
    board = pd.read_csv(third / "leaderboard.csv").set_index("pipeline")
    ref = pd.read_csv(first / "leaderboard.csv").set_index("pipeline")
    assert "vmtl" in board.index
    assert board.loc["vmtl", "auroc_value"] == pytest.approx(ref.loc["logreg", "auroc_value"])
    assert pd.read_json(third / "run.json", typ="series")["targets"]["label"]["pipeline"] == "lgbm"

    other_plan = make_folds(pd.read_parquet(tables["two"]), "label", n_splits=4, seed=99)
    other_plan.to_csv(ext / "folds.csv", index=False)
    with pytest.raises(ValueError, match="different fold plan"):
        fit_run(tables["two"], root / "d", FitConfig(pipelines=["logreg"], folds_from=str(first / "folds.csv"),
                                                     include=[str(ext)], n_boot=0), progress=False)

    subset = pd.read_parquet(tables["two"]).iloc[:100]
    with pytest.raises(ValueError, match="absent from the table"):
        read_folds(first / "folds.csv", subset)


def test_nested_search_runs_inside_training_folds(tables, monkeypatch):
    from sklearn.model_selection import RandomizedSearchCV

    import vitfeat.pipelines.cv as cv_module

    seen = []

    class Recording(RandomizedSearchCV):
        def fit(self, X, y=None, *, groups=None, **params):
            seen.append(set(groups))
            return super().fit(X, y, groups=groups, **params)

    monkeypatch.setattr(cv_module, "RandomizedSearchCV", Recording)
    run = fit_run(tables["two"], tables["root"] / "search",
                  FitConfig(pipelines=["logreg"], folds=3, search="random", n_iter=3, n_boot=0), progress=False)
    plan = pd.read_csv(run / "folds.csv", dtype={"patient_id": str})
    test_patients = [set(p) for _, p in plan.groupby("fold")["patient_id"]]
    everyone = set(plan["patient_id"])
    assert len(seen) == 3 + 1  # one search per outer training part, one for the final refit
    # every outer search saw exactly the patients outside one test fold, none of that fold
    for searched in seen[:3]:
        assert any(searched == everyone - held for held in test_patients)
    assert seen[3] == everyone
    fits = pd.read_csv(run / "fold_fits.csv")
    assert fits["params"].map(lambda s: json.loads(s)["classifier__C"]).notna().all()


def test_failing_pipeline_is_reported_and_the_others_go_on(tables):
    @zoo.register_pipeline("broken")
    def broken(random_state=0):
        return zoo.make_pipeline("logreg").set_params(classifier__C=-1.0)  # invalid: fails in fit

    run = fit_run(tables["two"], tables["root"] / "broken",
                  FitConfig(pipelines=["broken", "logreg"], folds=3, n_boot=0), progress=False)
    board = pd.read_csv(run / "leaderboard.csv")
    assert list(board["pipeline"]) == ["logreg"]
    summary = pd.read_json(run / "data_summary.json", typ="series")
    assert any("'broken' failed" in w for w in summary["warnings"])


@pytest.mark.parametrize("n_classes", [2, 3])
def test_fast_bootstrap_metrics_equal_scikit_learn(n_classes):
    rng = np.random.default_rng(n_classes)
    classes = [f"k{i}" for i in range(n_classes)]
    y_true = rng.choice(classes, 90)
    proba = rng.dirichlet(np.ones(n_classes), 90)
    proba[:, 0] = np.round(proba[:, 0], 1)  # ties in the scores
    y_pred = np.asarray(classes)[proba.argmax(1)]
    ref = _metrics(y_true, y_pred, proba, classes, "k1" if n_classes == 2 else None)
    fast = fast_metrics(y_true, y_pred, proba, classes, "k1" if n_classes == 2 else None)
    assert ref.keys() == fast.keys()
    for key in ref:
        assert fast[key] == pytest.approx(ref[key], abs=1e-9, nan_ok=True), key


def test_fit_killed_mid_cv_resumes_and_equals_an_uninterrupted_run(tables, tmp_path):
    """A real ``vitfeat fit`` child is SIGKILLed once some fold results are cached; the resumed run
    keeps those results (files untouched) and its OOF predictions equal an uninterrupted run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    killed, clean = tmp_path / "killed", tmp_path / "clean"
    args = ["fit", str(tables["two"]), "--pipelines", "rf,et,logreg", "--folds", "5", "--no-nested",
            "--n-boot", "0", "--jobs", "1"]
    code = f"from vitfeat.cli.main import main; raise SystemExit(main({args + ['-o', str(killed)]!r}))"
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    cache = killed / ".cv_cache"

    def finished():  # a half-written result of the killed child stays behind as a hidden temp file
        return [p for p in cache.glob("*.npz") if not p.name.startswith(".")]

    deadline = time.time() + 120
    while time.time() < deadline and child.poll() is None and len(finished()) < 2:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in finished()}
    assert child.returncode == -signal.SIGKILL
    assert 2 <= len(done_before) < 15 and not (killed / "leaderboard.csv").exists()  # killed mid-CV

    config = FitConfig(pipelines=["rf", "et", "logreg"], folds=5, nested=False, n_boot=0)
    fit_run(tables["two"], killed, config, progress=False)
    fit_run(tables["two"], clean, config, progress=False)
    assert done_before == {p.name: p.stat().st_mtime_ns for p in finished()
                                                      if p.name in done_before}  # reused, not recomputed
    assert len(finished()) == 15
    pd.testing.assert_frame_equal(pd.read_csv(killed / "oof_predictions.csv"),
                                  pd.read_csv(clean / "oof_predictions.csv"))
    timing = ["fit_time_mean", "fit_time_sd"]
    pd.testing.assert_frame_equal(pd.read_csv(killed / "leaderboard.csv").drop(columns=timing),
                                  pd.read_csv(clean / "leaderboard.csv").drop(columns=timing))


def test_gradient_boosting_bins_follow_the_training_rows():
    """With ``gbm_bins="rows"`` (off by default since issue #31) histogram bins are sized to the
    training part (8 rows per bin for HGB, 63..255; 16 for LightGBM and XGBoost, 31..255), through
    the same path the CV uses; registered pipelines and unknown sizes keep the libraries' 255."""
    from vitfeat.pipelines import zoo
    from vitfeat.pipelines.cv import fit_estimator

    assert [zoo.gbm_bins(n) for n in (None, 100, 480, 1000, 2048, 10_000)] == [255, 63, 63, 124, 255, 255]
    assert [zoo.gbm_bins(n, 16) for n in (None, 100, 480, 1000, 2048, 4096)] == [255, 31, 31, 61, 127, 255]
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(1000, 5)), np.arange(1000) % 2
    groups = np.array([f"P{i // 2}" for i in range(1000)])
    for name, param, bins in (("lgbm", "max_bin", 61), ("xgb", "max_bin", 62), ("hgb", "max_bins", 124)):
        model, _ = fit_estimator(name, X, y, groups, gbm_bins="rows")
        assert model[-1].get_params()[param] == bins
        assert zoo.make_pipeline(name)[-1].get_params()[param] == 255 + (name == "xgb")
