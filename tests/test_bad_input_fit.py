"""Degenerate feature tables for fit and predict (issue #25): named or warned, never a traceback,
never a model fitted on nothing.

Tables are real ``extract`` output of synthetic cases, then damaged the way users damage them.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from vitfeat.cli.main import main
from vitfeat.featurize import read_features, write_features

FIT = ["--pipelines", "logreg", "--folds", "3", "--no-nested", "--n-boot", "10"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """24 synthetic cases: manifest, feature table (shape + pair) and a fitted run on it."""
    from vitfeat.featurize import extract
    from vitfeat.synth import generate

    folder = tmp_path_factory.mktemp("fit_bad")
    manifest = generate(folder / "data", n=24, seed=7, size=128, jobs=1, progress=False)
    table = extract(manifest, folder / "feats.parquet", families=["shape", "pair"], progress=False).path
    assert main(["fit", str(table), "-o", str(folder / "run"), *FIT]) == 0
    return manifest, table, folder / "run"


def _features(frame):
    return [c for c in frame.columns if c.startswith(("clinical_", "wood_", "pair_"))]


def duplicated_case_two_patients(frame):
    frame.loc[1, "case_id"] = frame.loc[0, "case_id"]
    return frame


def duplicated_case_same_patient(frame):
    frame.loc[5] = frame.loc[4]
    return frame


def every_column_constant(frame):
    frame[_features(frame)] = 3.0
    return frame


def every_column_empty(frame):
    frame[_features(frame)] = np.nan
    return frame


def constant_and_empty_mixed(frame):
    cols = _features(frame)
    frame[cols[::2]] = 1.0
    frame[cols[1::2]] = np.nan
    return frame


def one_case(frame):
    return frame.iloc[:1].copy()


def every_case_failed_but_one(frame):
    frame.loc[1:, "error"] = "clinical: unreadable image"
    return frame


def no_feature_column(frame):
    return frame.drop(columns=_features(frame))


# (damage, text that must be in the error)
FATAL = [
    (duplicated_case_two_patients, "case_id(s) appear in more than one row: 'case0001' (rows 1, 2; patients "
                                   "p0001, p0002)"),
    (duplicated_case_same_patient, "'case0005' (rows 5, 6; patient p0005)"),
    (every_column_constant, "every one of the 43 feature column(s) is constant or empty (43 constant, 0 empty)"),
    (every_column_empty, "every one of the 43 feature column(s) is constant or empty (0 constant, 43 empty)"),
    (constant_and_empty_mixed, "(22 constant, 21 empty) over 24 case(s)"),
    (one_case, "1 usable case(s)"),
    (every_case_failed_but_one, "1 usable case(s)"),
    (no_feature_column, "no numeric feature columns named"),
]


def _write(base, tmp_path, damage):
    _, table, _ = base
    frame, provenance = read_features(table)
    path = tmp_path / f"{damage.__name__}.parquet"
    write_features(damage(frame.copy()), path, provenance, "parquet")
    return path


@pytest.mark.parametrize("damage, text", FATAL, ids=[d.__name__ for d, _ in FATAL])
def test_fit_refuses_a_table_nothing_can_be_learned_from(damage, text, base, tmp_path, capsys):
    path = _write(base, tmp_path, damage)
    run = tmp_path / "run"
    assert main(["fit", str(path), "-o", str(run), *FIT]) == 2
    err = capsys.readouterr().err
    assert f"vitfeat fit: error: {path}" in err and text in err, err
    assert "Traceback" not in err
    assert not (run / "model.skops").exists()  # no model fitted on nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name] + (["run"] if run.exists() else []))


def one_member_class(frame):
    frame.loc[0, "label"] = "rare"
    return frame


def empty_column(frame):
    frame[_features(frame)[0]] = np.nan
    return frame


def constant_column(frame):
    frame[_features(frame)[1]] = 0.5
    return frame


# (damage, warning in the run's warnings)
WARNED = [
    (one_member_class, "target 'label': class(es) 'rare' (1 case) too small to learn or to score"),
    (empty_column, "1 feature column(s) empty in every case, left out by the models: clinical_shape_area_fraction"),
    (constant_column, "have no variance and carry no information: clinical_shape_pixel_area"),
]


@pytest.mark.parametrize("damage, text", WARNED, ids=[d.__name__ for d, _ in WARNED])
def test_fit_warns_about_degenerate_but_usable_input(damage, text, base, tmp_path, caplog):
    path = _write(base, tmp_path, damage)
    run = tmp_path / "run"
    assert main(["fit", str(path), "-o", str(run), *FIT]) == 0
    warnings = json.loads((run / "data_summary.json").read_text())["warnings"]
    assert any(text in w for w in warnings), warnings
    assert text in caplog.text or damage is constant_column  # logged (stderr) as it happens
    assert (run / "model.skops").exists()


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.0])
def test_a_table_cut_short_is_named(cut, base, tmp_path, capsys):
    _, table, run = base
    raw = table.read_bytes()
    path = tmp_path / "cut.parquet"
    path.write_bytes(raw[: int(len(raw) * cut)])
    assert main(["fit", str(path), "-o", str(tmp_path / "run"), *FIT]) == 2
    err = capsys.readouterr().err
    assert f"{path}: not a readable Parquet table (truncated, damaged or not Parquet)" in err
    assert main(["predict", str(run), str(path), "-o", str(tmp_path / "p.csv")]) == 2
    assert f"{path}: not a readable Parquet table" in capsys.readouterr().err
    assert not (tmp_path / "run" / "model.skops").exists() and not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("as_type", [float, int])
def test_folds_from_matches_numeric_patient_ids_by_value(as_type, base, tmp_path, capsys):
    """The plan (written as text: "1") and a table whose patient_id is stored as numbers (1.0, 1)."""
    _, table, _ = base
    frame, provenance = read_features(table)
    text_ids = frame.copy()
    text_ids["patient_id"] = [str(i) for i in range(1, len(frame) + 1)]
    numeric = frame.copy()
    numeric["patient_id"] = [as_type(i) for i in range(1, len(frame) + 1)]
    write_features(text_ids, tmp_path / "text.parquet", provenance, "parquet")
    write_features(numeric, tmp_path / "numeric.parquet", provenance, "parquet")
    assert main(["fit", str(tmp_path / "text.parquet"), "-o", str(tmp_path / "r1"), *FIT]) == 0
    plan = tmp_path / "r1" / "folds.csv"
    assert main(["fit", str(tmp_path / "numeric.parquet"), "-o", str(tmp_path / "r2"), "--folds-from", str(plan),
                 "--pipelines", "logreg", "--no-nested", "--n-boot", "10"]) == 0
    assert (tmp_path / "r2" / "folds.csv").read_text() == plan.read_text()


def test_folds_from_names_a_patient_that_differs(base, tmp_path, capsys):
    _, table, run = base
    frame, provenance = read_features(table)
    frame.loc[3, "patient_id"] = "someone-else"
    path = tmp_path / "moved.parquet"
    write_features(frame, path, provenance, "parquet")
    assert main(["fit", str(path), "-o", str(tmp_path / "r"), "--folds-from", str(run / "folds.csv"),
                 "--pipelines", "logreg", "--no-nested"]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'folds.csv'}: case 'case0004' has patient 'p0004' in the fold plan but 'someone-else'" in err


def _other_version(p):
    p["families"]["shape"]["version"] = "1"
    p["vitfeat_version"] = "0.0.1"


def _other_max_side(p):
    p["max_side"] = 64


@pytest.mark.parametrize("change, text", [
    (_other_version, "family 'shape' is version 1 in the table but was version 2 when the run was fitted "
                     "(vitfeat 0.0.1 wrote the table, vitfeat"),
    (_other_max_side, "max_side is 64 in the table but was None when the run was fitted"),
])
def test_predict_refuses_a_table_of_another_family_version(change, text, base, tmp_path, capsys):
    """The table's Parquet metadata says how its columns were made; the run records its own."""
    _, table, run = base
    frame, provenance = read_features(table)
    provenance = copy.deepcopy(provenance)
    change(provenance)
    path = tmp_path / "other.parquet"
    write_features(frame, path, provenance, "parquet")
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: its features have the run's column names but another meaning" in err and text in err, err
    assert not out.exists()


def test_predict_refuses_a_table_extracted_with_other_family_options(base, tmp_path, capsys):
    """A real extraction with another option of the shape family: same columns, other values."""
    from vitfeat.featurize import extract

    manifest, _, run = base
    path = extract(manifest, tmp_path / "other.parquet", families=["shape", "pair"], progress=False,
                   family_config={"shape": {"min_component_px": 50}}).path
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "family 'shape' was extracted with other options (min_component_px=50 in the table, 5 in the run)" in err
    assert not out.exists()


def test_predict_accepts_the_same_extraction_and_warns_on_another_vitfeat_version(base, tmp_path, caplog):
    _, table, run = base
    frame, provenance = read_features(table)
    provenance = dict(provenance, vitfeat_version="0.0.1")
    path = tmp_path / "older.parquet"
    write_features(frame, path, provenance, "parquet")
    assert main(["predict", str(run), str(path), "-o", str(tmp_path / "p.csv")]) == 0
    assert "vitfeat 0.0.1 wrote the table" in caplog.text
    assert "the feature families are the same versions" in caplog.text
    assert main(["predict", str(run), str(table), "-o", str(tmp_path / "same.csv")]) == 0
