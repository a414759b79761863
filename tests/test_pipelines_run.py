"""A fitted run directory: skops model, predict (feature table and manifest), report, explain, CLI."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pandas as pd
import pytest

from vitfeat.pipelines.demo_data import make_feature_table, write_feature_table
from vitfeat.pipelines.persist import load_model, save_model
from vitfeat.pipelines.predict import SchemaError, predict_run
from vitfeat.pipelines.select import FitConfig, fit_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    table = make_feature_table(160, 16, n_informative=3, cases_per_patient=2, seed=4, missing_rate=0.02)
    table.loc[5, "error"] = "clinical: file not found"  # a failed case is reported, not fitted
    table["wood_shape_constant"] = 1.0  # a feature without variance gets a warning
    path = write_feature_table(table, root / "features.parquet",
                               {"vitfeat_version": "test", "masks": "auto", "max_side": 256,
                                "families": {"testfam": {"version": "1", "config": {"band_px": 16.0}}}})
    run_dir = fit_run(path, root / "run", FitConfig(pipelines=["logreg", "lgbm", "rf+smote"], folds=4, n_boot=100),
                      progress=False)
    return {"dir": run_dir, "table": table, "features": path, "root": root}


def test_model_round_trips_through_skops_with_its_schema(run):
    bundle = load_model(run["dir"] / "model.skops")
    entry = bundle["targets"]["label"]
    assert bundle["features"][0] == "pair_area_wood_area_ratio" and "wood_shape_constant" in bundle["features"]
    X = run["table"][bundle["features"]].to_numpy(dtype=float)
    copy = run["root"] / "copy.skops"
    save_model(bundle, copy)
    again = load_model(copy)["targets"]["label"]["model"]
    np.testing.assert_allclose(again.predict_proba(X), entry["model"].predict_proba(X))
    assert entry["pipeline"] == json.loads((run["dir"] / "run.json").read_text())["targets"]["label"]["pipeline"]


def test_loading_refuses_types_outside_the_trusted_libraries(run, tmp_path):
    from fractions import Fraction

    bundle = load_model(run["dir"] / "model.skops")
    bundle["targets"]["label"]["payload"] = Fraction(1, 3)
    save_model(bundle, tmp_path / "evil.skops")
    with pytest.raises(ValueError, match="fractions.Fraction"):
        load_model(tmp_path / "evil.skops")


def test_predict_on_a_feature_table(run, tmp_path):
    new = run["table"].drop(columns=["label"]).iloc[:20]
    path = write_feature_table(new, tmp_path / "new.parquet")
    out = predict_run(run["dir"], path, tmp_path / "pred.csv", explain=True)
    written = pd.read_csv(tmp_path / "pred.csv")
    assert len(written) == 20 and list(written["case_id"]) == list(new["case_id"])
    probas = written[["label_proba_active", "label_proba_stable"]]
    ok = written["error"].isna()
    np.testing.assert_allclose(probas[ok].sum(1), 1.0, atol=1e-6)
    assert probas[~ok].isna().all().all() and written.loc[~ok, "error"].str.contains("not found").all()
    assert (written.loc[ok, "label_pred"] == np.where(probas[ok]["label_proba_active"] > 0.5, "active", "stable")).all()
    assert out.loc[ok.to_numpy(), "label_why"].str.contains("toward").all()


def test_predict_names_missing_and_extra_columns(run, tmp_path):
    table = run["table"]
    missing = write_feature_table(table.drop(columns=["wood_border_sharpness"]), tmp_path / "missing.parquet")
    with pytest.raises(SchemaError, match="missing: wood_border_sharpness"):
        predict_run(run["dir"], missing)
    extra = write_feature_table(table.assign(wood_color_new_feature=0.0), tmp_path / "extra.parquet")
    with pytest.raises(SchemaError, match="not trained on: wood_color_new_feature"):
        predict_run(run["dir"], extra)
    assert len(predict_run(run["dir"], extra, allow_extra=True)) == len(table)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_predict_from_a_manifest_extracts_with_the_recorded_settings(synth_small, tmp_path, fmt):
    """extract with non-default settings -> fit -> predict from the manifest: the new cases get the
    columns the model was trained on (a CSV table's settings come from its provenance sidecar)."""
    from vitfeat.cli.main import main

    table = tmp_path / f"features.{fmt}"
    assert main(["extract", str(synth_small), "-o", str(table), "--format", fmt, "--families", "shape",
                 "--max-side", "100", "--jobs", "1"]) == 0
    assert main(["fit", str(table), "-o", str(tmp_path / "run"), "--pipelines", "logreg", "--folds", "3",
                 "--n-boot", "0"]) == 0
    trained = json.loads((tmp_path / "run" / "run.json").read_text())
    assert trained["extraction"]["max_side"] == 100 and list(trained["extraction"]["families"]) == ["shape"]
    out = predict_run(tmp_path / "run", synth_small, tmp_path / "pred.csv")
    manifest = pd.read_csv(synth_small)
    assert list(out["case_id"]) == list(manifest["case_id"].astype(str))
    ok = out["error"].fillna("").eq("")
    assert ok.all()
    direct = predict_run(tmp_path / "run", table)  # the same settings give the training table's features
    proba = [c for c in out.columns if c.startswith("label_proba_")]
    np.testing.assert_allclose(out[proba].to_numpy(float), direct[proba].to_numpy(float), atol=1e-9)


def test_an_unknown_run_kind_names_the_registered_ones(run, tmp_path):
    from vitfeat.pipelines.run_kinds import RUN_KINDS

    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "run.json").write_text(json.dumps({"kind": "hologram"}))
    with pytest.raises(ValueError, match="unknown run kind 'hologram'.*sklearn.*vmtl"):
        predict_run(odd, run["features"])
    seen = []
    with RUN_KINDS.temporarily("hologram", lambda *a, **k: seen.append(a) or pd.DataFrame()):
        predict_run(odd, run["features"])
    assert seen and "hologram" not in RUN_KINDS


def test_predict_refuses_a_family_whose_code_version_changed(run, tmp_path):
    from vitfeat.featurize import get_family

    from vitfeat.pipelines.predict import extract_like_run

    current = get_family("shape").version
    pd.DataFrame({"case_id": ["a"], "clinical": ["a.png"]}).to_csv(tmp_path / "m.csv", index=False)
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="re-fit the run"):
        extract_like_run(tmp_path / "m.csv", {"families": {"shape": {"version": current + "-old"}}},
                         tmp_path / "f.parquet")
    assert not (tmp_path / "f.parquet").exists()  # refused before any extraction work


def test_report_is_self_contained_and_readable(run):
    page = (run["dir"] / "report.html").read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]{2000,})"', page)
    alts = {a for a, _ in images}
    for figure in ("class balance", "ROC curves label", "PR curves label", "confusion matrices label",
                   "calibration label", "fold spread label"):
        assert figure in alts
    assert "src=\"http" not in page and "<script" not in page
    for text in ("Leaderboard", "Warnings", "Provenance", "no variance", "failed feature extraction",
                 "winner's curse", "Best pipeline"):
        assert text in html.unescape(page), text
    md = (run["dir"] / "report.md").read_text()
    assert "| rank | pipeline | Balanced accuracy |" in md
    board = pd.read_csv(run["dir"] / "leaderboard.csv")
    assert board["pipeline"].iloc[0] in md


def test_explain_ranks_the_informative_groups_and_links_from_the_report(run):
    from vitfeat.pipelines.explain import explain_run

    out = explain_run(run["dir"], n_repeats=3, progress=False)
    groups = pd.read_csv(out / "importance_groups.csv")
    # the generator makes the first three columns informative: area ratio, Wood's border, clinical border
    top = set(groups["group"].head(3))
    assert len(top & {"pair_area", "wood_border", "clinical_border"}) >= 2, groups.head(5)
    assert groups.loc[groups["group"] == "pair_area", "description"].str.contains("area ratio").all()
    clusters = pd.read_csv(out / "importance_clusters.csv")
    assert clusters["features"].str.split(";").map(len).sum() == 17
    for name in ("explain.html", "groups_permutation.png", "clusters_permutation.png", "summary.json"):
        assert (out / name).is_file(), name
    assert out == run["dir"] / "explain" / "label"
    assert 'href="explain/label/explain.html"' in (run["dir"] / "report.html").read_text()


def test_correlated_features_are_clustered_together():
    from vitfeat.pipelines.explain import correlation_clusters

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200)
    X = np.column_stack([a, a * 3 + rng.normal(0, 0.05, 200), np.exp(a), b])
    labels = correlation_clusters(X, ["w", "x", "y", "z"])
    assert labels[0] == labels[1] == labels[2] != labels[3]


def test_cli_fit_predict_explain(run, tmp_path, capsys):
    from vitfeat.cli.main import main

    rc = main(["fit", str(run["features"]), "-o", str(tmp_path / "cli"), "--pipelines", "logreg,lgbm+smote",
               "--folds", "3", "--n-boot", "20"])
    assert rc == 0
    assert "report:" in capsys.readouterr().out
    assert main(["predict", str(tmp_path / "cli"), str(run["features"]), "-o", str(tmp_path / "p.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(run["table"])
    assert main(["explain", str(tmp_path / "cli"), "--repeats", "1"]) == 0
    assert "most important feature groups" in capsys.readouterr().out
    assert main(["fit", str(run["features"]), "-o", str(tmp_path / "bad"), "--pipelines", "lgbm+nosuch"]) == 2
    assert "unknown part 'nosuch'" in capsys.readouterr().err
    assert main(["fit", str(run["features"]), "-o", str(tmp_path / "bad"), "--target", "stage"]) == 2
    assert "target column 'stage' not found" in capsys.readouterr().err
