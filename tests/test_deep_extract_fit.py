"""Deep features end to end: `deep:` columns in an extracted table, through `fit` to a leaderboard,
and a trained YOLO segmenter as the extract mask source (`--masks model:PATH`)."""


import numpy as np
import pandas as pd
import pytest

pytest.importorskip("timm")
pytest.importorskip("ultralytics")

from vitfeat.featurize.engine import extract, read_features  # noqa: E402

DEEP = "deep:test_vit@random:margin=0.2"  # tiny timm model, random weights: plumbing, not accuracy

pytestmark = pytest.mark.usefixtures("yolo_config_dir")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from vitfeat.synth import generate

    return generate(tmp_path_factory.mktemp("synth"), n=16, seed=5, size=96, cases_per_patient=2,
                    jobs=1, progress=False)


def test_deep_columns_reach_fit_and_leaderboard(synth, tmp_path, refused):
    with pytest.warns(UserWarning, match="RANDOM"):
        result = extract(synth, tmp_path / "features.parquet", families=["shape", DEEP], progress=False)
    table, provenance = read_features(result.path)
    deep_cols = [c for c in table.columns if "_deep_test_vit_" in c]
    assert len(deep_cols) == 2 * 64
    assert {"clinical_deep_test_vit_000", "wood_deep_test_vit_063"} <= set(deep_cols)
    assert table[deep_cols].notna().all().all() and (table["error"].fillna("") == "").all()
    assert "random" in provenance["families"][DEEP]["version"]  # random weights are on record

    # Cached: a second extraction recomputes nothing and gives the same numbers.
    again = extract(synth, tmp_path / "features.parquet", families=["shape", DEEP], progress=False)
    assert again.n_computed == 0
    np.testing.assert_allclose(again.frame[deep_cols].to_numpy(float), table[deep_cols].to_numpy(float))

    from vitfeat.pipelines.select import FitConfig, fit_run

    deep_only = table.drop(columns=[c for c in table.columns if "_shape_" in c])
    deep_only.to_parquet(tmp_path / "deep_only.parquet")
    run = fit_run(tmp_path / "deep_only.parquet", tmp_path / "run",
                  FitConfig(pipelines=["logreg"], folds=3, n_boot=20), progress=False)
    board = pd.read_csv(run / "leaderboard.csv")
    assert "logreg" in board.to_string() and len(board) >= 1
    oof = pd.read_csv(run / "oof_predictions.csv")
    assert set(oof["case_id"].astype(str)) == set(table["case_id"].astype(str))
    assert refused == []


def test_yolo_segmenter_as_extract_mask_source(synth, tmp_path, refused):
    from vitfeat.deep.mask_source import load_mask_predictor
    from vitfeat.deep.yolo import train_yolo

    model = train_yolo(synth, tmp_path / "yolo", task="segment", modality="clinical", epochs=1, imgsz=64, batch=4)
    result = extract(synth, tmp_path / "f.parquet", families=["shape"], masks=f"model:{model}", progress=False)
    table, provenance = read_features(result.path)
    expected = load_mask_predictor(model).describe()
    assert provenance["mask_model"]["sha"] == expected["sha"] and provenance["mask_model"]["kind"] == "yolo"
    assert provenance["masks"] == f"model:{model}"
    assert len(table) == 16
    # Handcrafted features came from the predicted masks, not the given ones: the tables differ.
    given = extract(synth, tmp_path / "g.parquet", families=["shape"], progress=False).frame
    cols = [c for c in table.columns if c.startswith("clinical_shape_")]
    assert cols
    assert not table[cols].fillna(-1).equals(given[cols].fillna(-1))
    assert refused == []
