"""The Stage tab reads at a glance: per-feature range notes never contradict the in-scope verdict (and
do not warn on the empty Wood's columns of a clinical-only model), the "why" table is five readable
rows (plain name, value, percentile among training cases, which way it pushes), and a score interval
that would read "1.00–1.00" is replaced by the reason there is none."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from vitfeat.app.features import range_notes
from vitfeat.app.summary import interval_text
from vitfeat.app.ui import FEATURE_HEADERS, _features_rows, _stage_markdown, features_note


def test_range_notes_skip_empty_columns_without_all_nan_warnings():
    train = pd.DataFrame({"clinical_color_lab_L_mean": [10.0, 20.0, 30.0], "wood_shape_pixel_area": [np.nan] * 3})
    schema = ["clinical_color_lab_L_mean", "wood_shape_pixel_area"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        inside = range_notes(train, schema, np.array([15.0, np.nan]))
        outside = range_notes(train, schema, np.array([45.0, 3.0]))
    assert inside == []
    assert len(outside) == 1 and "clinical_color_lab_L_mean" in outside[0] and "45" in outside[0]


@pytest.mark.parametrize("perf, expected", [
    ({"mean": 0.8, "ci_low": 0.7, "ci_high": 0.9}, "95% CI 0.70–0.90"),
    ({"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0}, "no interval: the classes were perfectly separated"),
    ({"mean": 1.0, "ci_low": 0.998, "ci_high": 1.0}, "no interval: the classes were perfectly separated"),
    ({"mean": 0.5, "ci_low": 0.5, "ci_high": 0.5}, "no interval: the score did not vary"),
    ({"mean": 0.5}, "no interval recorded"),
])
def test_interval_is_shown_only_when_informative(perf, expected):
    text = interval_text(perf)
    assert expected in text
    assert "1.00–1.00" not in _stage_markdown({"performance": {**perf, "row": "logreg"}, "probabilities": {"a": 1.0},
                                               "stage": "a", "warnings": [], "in_scope": True})


@pytest.fixture(scope="module")
def clinical_run(tmp_path_factory):
    from tests.test_app_scope import make_clinical_only_run

    return make_clinical_only_run(tmp_path_factory.mktemp("readable"))


def test_why_table_is_short_readable_and_consistent_with_the_verdict(clinical_run, tmp_path):
    from PIL import Image

    from vitfeat.app.predict_case import predict_pair

    manifest, run = clinical_run
    frame = pd.read_csv(manifest)
    # a training photo upscaled by 1.25: pixel-unit features leave the training range, the case stays in scope
    bigger = tmp_path / "bigger.png"
    Image.open(manifest.parent / frame.iloc[5]["clinical"]).convert("RGB").resize((160, 160)).save(bigger)
    seen_in_scope = seen_notes = False
    for photo in [manifest.parent / frame.iloc[i]["clinical"] for i in (0, 11)] + [bigger]:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # e.g. "All-NaN slice" on the empty wood_* columns
            result = predict_pair(run, photo)
        rows, headers = _features_rows(result)
        assert headers == FEATURE_HEADERS and 1 <= len(rows) <= 5
        classes = set(result["probabilities"])
        for name, value, pct, toward, inside in rows:
            assert name and "_" not in name.split(" (")[0], name  # plain words, not a column name
            assert len(name) <= 90 and np.isfinite(value)
            assert pct == "" or 0 <= int(pct.rstrip("stndrh")) <= 100
            assert toward in classes or toward.startswith("away from")
            assert inside in ("yes", "below the training range", "above the training range", "unknown")
        page = _stage_markdown(result)
        if result["in_scope"] is True:
            seen_in_scope = True
            # the verdict says "in scope": nothing on the page claims the case is outside the training range
            assert "outside the training range" not in page and "Outside what the model saw" not in page
            if result["range_notes"]:
                seen_notes = True
                assert "Detail" in features_note(result) and "outside the training range" in features_note(result)
        else:
            assert "Cannot assess" in page
    assert seen_in_scope and seen_notes  # in scope with features beyond the training range: the case tested


def test_example_pairs_are_small_synthetic_pairs_of_both_classes(tmp_path):
    from PIL import Image

    from vitfeat.app.examples import make_examples, preview

    examples = make_examples(tmp_path / "examples", side=128)
    assert len(examples) == 4 and {e["label"] for e in examples} == {"active", "stable"}
    for e in examples:
        assert Image.open(e["clinical"]).size == (128, 128) and Image.open(e["wood"]).size == (128, 128)
    big = tmp_path / "big.png"
    Image.new("RGB", (900, 600), (200, 150, 120)).save(big)
    assert preview(big, max_pixels=10**7).shape == (171, 256, 3)
    assert preview(big, max_pixels=1000) is None and preview(None, max_pixels=10) is None
