"""Case galleries of explain: on synth, the extreme cases of a feature are the ones with extreme truth."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from vitfeat.featurize import extract
from vitfeat.pipelines.explain import explain_run
from vitfeat.pipelines.gallery import extreme_cases
from vitfeat.pipelines.select import FitConfig, fit_run
from vitfeat.synth import generate


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    root = tmp_path_factory.mktemp("gallery")
    manifest = generate(root / "synth", n=40, size=256, seed=3, jobs=1, progress=False)
    table = extract(manifest, root / "features.parquet", families=["border", "shape"], jobs=1, progress=False).path
    run = fit_run(table, root / "run", FitConfig(pipelines=["logreg"], folds=3, n_boot=10), progress=False)
    out = explain_run(run, n_repeats=2, progress=False)
    truth = pd.read_csv(root / "synth" / "truth.csv", dtype={"case_id": str}).set_index("case_id")
    return {"out": out, "truth": truth, "table": pd.read_parquet(table), "run": run}


def test_the_blurriest_borders_are_the_highest_transition_widths(explained):
    chosen = extreme_cases(explained["table"], "clinical_border_transition_width", "label")
    blur = explained["truth"]["blur_px"]
    low = blur[chosen.loc[chosen["end"] == "lowest", "case_id"]]
    high = blur[chosen.loc[chosen["end"] == "highest", "case_id"]]
    assert len(low) == len(high) == 4
    assert high.mean() > low.mean() + blur.std(), (low.to_dict(), high.to_dict())
    assert chosen.loc[chosen["end"] == "highest", "value"].min() >= chosen.loc[chosen["end"] == "lowest", "value"].max()


def test_top_groups_get_a_gallery_whose_extremes_follow_the_truth(explained):
    out, truth = explained["out"], explained["truth"]
    summary = json.loads((out / "summary.json").read_text())
    galleries = summary["galleries"]
    top3 = list(pd.read_csv(out / "importance_groups.csv")["group"].head(3))
    assert [g["group"] for g in galleries] == top3
    page = (out / "explain.html").read_text()
    for g in galleries:
        assert g["png"] == f"gallery_{g['group']}.png" and (out / g["png"]).stat().st_size > 5000
        assert f'src="{g["png"]}"' in page and g["feature"] in page
        assert g["feature"] in explained["table"].columns and g["feature"].startswith(g["group"] + "_")
    # every top-3 set of the four groups holds a border group: its extremes must differ in true blur
    border = next(g for g in galleries if g["group"].endswith("_border"))
    chosen = pd.read_csv(out / border["csv"], dtype={"case_id": str})
    blur_col = "blur_px" if border["group"].startswith("clinical") else "wood_blur_px"
    values = explained["table"].set_index("case_id")[border["feature"]]
    rho = spearmanr(values, truth.loc[values.index, blur_col], nan_policy="omit").statistic
    assert abs(rho) > 0.4, f"{border['feature']} hardly follows {blur_col} (rho {rho:.2f})"
    low = truth.loc[chosen.loc[chosen["end"] == "lowest", "case_id"], blur_col].mean()
    high = truth.loc[chosen.loc[chosen["end"] == "highest", "case_id"], blur_col].mean()
    assert np.sign(high - low) == np.sign(rho), (low, high, rho)


def test_missing_photos_skip_the_gallery_with_a_note_not_a_failure(explained, caplog):
    images = explained["out"].parents[2] / "synth" / "images"
    moved = images.with_name("images-moved")
    images.rename(moved)
    try:
        with caplog.at_level(logging.WARNING, logger="vitfeat.pipelines.explain"):
            out = explain_run(explained["run"], n_repeats=1, progress=False)
    finally:
        moved.rename(images)
    galleries = json.loads((out / "summary.json").read_text())["galleries"]
    assert all(g["png"] is None and "photo not found" in g["note"] for g in galleries)
    assert "No gallery:" in (out / "explain.html").read_text()
    assert "case gallery" in caplog.text
