"""Feature robustness (issue #29): ICC(1,1) against pingouin, seeded perturbations, the study run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pingouin as pg
import pytest

from vitfeat.evaluation.icc import icc_1_1, icc_1_1_many
from vitfeat.pipelines.perturb import DEFAULT_PERTURBATIONS, PERTURBATIONS, apply_perturbation
from vitfeat.pipelines.robustness import ICC_COLUMNS, feature_icc, resolve_perturbations, run_robustness
from vitfeat.registry import UnknownNameError


def _pingouin_icc1(x: np.ndarray, monkeypatch) -> tuple[float, np.ndarray]:
    monkeypatch.setitem(pg.options, "round.column.CI95", None)  # pingouin rounds the CI to 2 decimals
    long = pd.DataFrame([(i, j, x[i, j]) for i in range(x.shape[0]) for j in range(x.shape[1])],
                        columns=["case", "version", "value"])
    row = pg.intraclass_corr(long, targets="case", raters="version", ratings="value").iloc[0]
    assert row["Type"] == "ICC(1,1)"
    return float(row["ICC"]), np.asarray(row["CI95"], dtype=float)


@pytest.mark.parametrize("n, k, spread", [(8, 4, 2.0), (15, 3, 0.5), (5, 10, 1.0), (30, 2, 0.1)])
def test_icc_matches_pingouin(monkeypatch, n, k, spread):
    rng = np.random.default_rng(n * 100 + k)
    x = rng.normal(size=(n, 1)) * spread + rng.normal(size=(n, k)) + rng.normal(size=(1, k)) * 0.3
    icc, ci = _pingouin_icc1(x, monkeypatch)
    ours = icc_1_1(x)
    assert abs(ours.icc - icc) < 1e-6
    assert np.allclose([ours.low, ours.high], ci, atol=1e-6, rtol=0)
    # the vectorised form gives each feature its own ICC
    many = icc_1_1_many(np.stack([x, 3 * x + 1, x[:, ::-1]], axis=2))
    assert np.allclose(many[0], ours.icc, atol=1e-12)


def test_icc_degenerate_cases():
    assert np.isnan(icc_1_1(np.ones((4, 3))).icc)  # constant: undefined
    perfect = icc_1_1(np.repeat(np.arange(5.0)[:, None], 3, axis=1))
    assert (perfect.icc, perfect.low, perfect.high) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="at least 2 cases"):
        icc_1_1(np.ones((1, 3)))
    with pytest.raises(ValueError, match="missing"):
        icc_1_1(np.array([[1.0, np.nan], [2.0, 3.0]]))


def _case(seed=0, size=64):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8)
    mask = np.zeros((size, size + 8), bool)
    mask[20:44, 18:50] = True
    return {"clinical": img, "wood": img.copy()}, {"clinical": mask, "wood": mask.copy()}


@pytest.mark.parametrize("name", DEFAULT_PERTURBATIONS)
def test_perturbations_reproducible_from_seed(name):
    images, masks = _case()
    a = apply_perturbation(name, images, masks, seed=3, case_id="c1", repeat=0)
    b = apply_perturbation(name, images, masks, seed=3, case_id="c1", repeat=0)
    c = apply_perturbation(name, images, masks, seed=4, case_id="c1", repeat=0)
    assert a[2] == b[2] and a[2] != c[2] and a[2]  # parameters recorded, same seed same draw
    for m in ("clinical", "wood"):
        assert np.array_equal(a[0][m], b[0][m]) and np.array_equal(a[1][m], b[1][m])
        assert a[0][m].shape == images[m].shape and a[1][m].dtype == bool
    assert np.array_equal(images["clinical"], _case()[0]["clinical"])  # inputs untouched
    if name in ("rotation", "translation", "scale", "colour", "blur", "jpeg"):
        # deterministic transforms with the same draw for both photos: the pair stays registered
        assert np.array_equal(a[0]["clinical"], a[0]["wood"]) and np.array_equal(a[1]["clinical"], a[1]["wood"])
    changed = [not np.array_equal(a[0][m], images[m]) or not np.array_equal(a[1][m], masks[m])
               for m in ("clinical", "wood")]
    assert all(changed)


def test_geometric_perturbations_move_the_mask_with_the_photo():
    images, masks = _case()
    images = {m: np.repeat(np.where(masks[m][..., None], 255, 20), 3, axis=2).astype(np.uint8) for m in masks}
    new_images, new_masks, params = apply_perturbation("combined", images, masks, seed=0, case_id="x", repeat=1)
    # the painted lesion and the moved mask still coincide except within the contour change and edges
    bright = new_images["clinical"][..., 0] > 128
    assert (bright ^ new_masks["clinical"]).mean() < 0.08
    assert "angle_deg" in params and "clinical_contour_px" in params


def test_unknown_perturbation_is_named():
    with pytest.raises(UnknownNameError, match="rotaton.*valid: .*rotation"):
        resolve_perturbations("rotaton,noise")
    assert resolve_perturbations("none, noise noise") == ["noise"]
    assert set(DEFAULT_PERTURBATIONS) < set(PERTURBATIONS.names())


def _subset(manifest, path, n: int):
    """The first ``n`` cases of a synth manifest, written to ``path`` with its images' folder as data root."""
    frame = pd.read_csv(manifest).head(n)
    frame["data_root"] = str(manifest.parent)
    frame.to_csv(path, index=False)
    return path


def test_one_case_manifest_is_refused(synth_small, tmp_path):
    path = _subset(synth_small, tmp_path / "one.csv", 1)
    with pytest.raises(ValueError, match=r"one\.csv: 1 case\(s\).*at least 2"):
        run_robustness(path, tmp_path / "out", perturbations="noise", progress=False)


def test_feature_icc_table_leaves_incomplete_cases_out():
    rows = []
    rng = np.random.default_rng(1)
    for case in range(6):
        base = rng.normal()
        for pert, rep in (("none", 0), ("noise", 0), ("noise", 1)):
            rows.append({"source_case": f"c{case}", "perturbation": pert, "repeat": rep,
                         "clinical_shape_perimeter": base + 0.01 * rng.normal(),
                         "clinical_shape_solidity": np.nan if (case == 0 and rep == 1) else rng.normal()})
    icc = feature_icc(pd.DataFrame(rows), ["clinical_shape_perimeter", "clinical_shape_solidity"])
    assert list(icc.columns) == ICC_COLUMNS
    assert icc["n_cases"].tolist() == [6, 5] and icc["n_perturbations"].tolist() == [1, 1]
    assert icc["family"].tolist() == ["shape", "shape"] and icc["modality"].tolist() == ["clinical"] * 2
    assert icc.at[0, "icc"] > 0.99 and icc.at[1, "icc"] < 0.75


def test_robustness_run_writes_its_tables_and_resumes(synth_small, tmp_path):
    man = _subset(synth_small, tmp_path / "four.csv", 4)
    frame = pd.read_csv(man)
    out = tmp_path / "rob"
    kwargs = dict(perturbations=["rotation", "contour"], repeats=2, seed=5, families=["shape"], progress=False)
    res = run_robustness(man, out, **kwargs)
    table = pd.read_parquet(out / "perturbed_features.parquet")
    assert len(table) == 4 * (1 + 2 * 2)
    assert set(table["perturbation"]) == {"none", "rotation", "contour"} and set(table["repeat"]) == {0, 1}
    icc = pd.read_csv(out / "feature_icc.csv")
    assert list(icc.columns) == ICC_COLUMNS and set(icc["family"]) == {"shape"}
    assert (icc["n_perturbations"] == 2).all() and (icc["n_cases"] == 4).all()
    assert icc["icc"].between(-1, 1).all() or icc["icc"].isna().any()
    params = pd.read_csv(out / "perturbations.csv")
    angles = [json.loads(p).get("angle_deg") for p in params.loc[params["perturbation"] == "rotation", "params"]]
    assert all(abs(a) <= 10 for a in angles) and len(set(angles)) == 8
    for name in ("robustness.md", "robustness.html", "icc_by_family.png", "feature_icc_by_perturbation.csv"):
        assert (out / name).is_file()
    assert "least robust" in (out / "robustness.md").read_text()
    # area is more robust to rotation than to redrawing the contour is not asserted; the none row is the
    # unperturbed extraction: its pixel area equals the given mask's
    none = table[table["perturbation"] == "none"].set_index("case_id")
    first = frame.iloc[0]
    from vitfeat.dataset import read_mask

    mask = read_mask(synth_small.parent / first["clinical_mask"])
    assert none.at[str(first["case_id"]), "clinical_shape_pixel_area"] == mask.sum()
    # resume: the versions are not rendered again and the tables are equal
    stamp = {p: p.stat().st_mtime_ns for p in (out / "perturbed").rglob("params.json")}
    again = run_robustness(man, out, **kwargs)
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    pd.testing.assert_frame_equal(again.icc, res.icc)
    # another seed in the same folder draws (and renders) new versions instead of reusing the old ones
    other = run_robustness(man, out, **{**kwargs, "seed": 6})
    assert not other.icc["icc"].equals(res.icc["icc"])
    new_angles = pd.read_csv(out / "perturbations.csv").query("perturbation == 'rotation'")["params"]
    assert set(new_angles).isdisjoint(params.loc[params["perturbation"] == "rotation", "params"])


def test_cli_names_an_unknown_perturbation(synth_small, tmp_path, capsys):
    from vitfeat.cli.main import main

    man = _subset(synth_small, tmp_path / "two.csv", 2)
    assert main(["robustness", str(man), "-o", str(tmp_path / "o"), "--perturbations", "noise,rotaton"]) == 2
    err = capsys.readouterr().err
    assert "unknown perturbation 'rotaton'" in err and "rotation" in err
    assert main(["robustness", str(man), "-o", str(tmp_path / "o"), "--perturbations", "noise", "--families",
                 "shape", "--no-progress"]) == 0
    assert "shape" in capsys.readouterr().out and (tmp_path / "o" / "feature_icc.csv").is_file()
