"""Tabular deep pipelines (issue #31): RealMLP and TabM in the zoo, saved without torch, and TabPFN from a
local checkpoint. The contract suites (tests/test_registries.py, tests/test_security.py) cover realmlp and
tabm like every other classifier; this file covers what is particular to them."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from vitfeat.pipelines import zoo
from vitfeat.pipelines.demo_data import make_feature_table
from vitfeat.pipelines.tabular_deep import INSTALL, RealMLPClassifier, TabMClassifier


def _table(n=48, p=10, seed=0):
    return make_feature_table(n_cases=n, n_features=p, n_informative=3, class_sep=1.5, seed=seed)


def _xy(n=60, p=8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, p))
    X[:, 0] += 2.0 * y
    return X, y


# --- RealMLP and TabM ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["realmlp", "tabm"])
def test_a_saved_run_predicts_exactly_what_the_fitted_selector_did(name, tmp_path):
    from vitfeat import ModelSelector
    from vitfeat.pipelines.runs import load_run

    table = _table()
    selector = ModelSelector(pipelines=[name], folds=3, nested=False, n_boot=20).fit(table, "label")
    assert selector.best_pipeline_ == name
    run = selector.save(tmp_path / "run", report=False)
    # the model file names only vitfeat's wrapper, never a torch type
    types = set(sio.get_untrusted_types(file=run / "model.skops"))
    assert not any(t.startswith("torch") for t in types)
    assert f"vitfeat.pipelines.tabular_deep.{'RealMLPClassifier' if name == 'realmlp' else 'TabMClassifier'}" in types
    loaded = load_run(run)
    expected = selector.predict_proba(table)
    got = loaded.predict_proba(table).to_numpy(dtype=float)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls", [RealMLPClassifier, TabMClassifier])
def test_fits_are_seeded_single_threaded_and_stop_on_an_inner_split(cls):
    import torch

    X, y = _xy()
    before = torch.get_num_threads()
    fast = {"max_epochs": 12} if cls is RealMLPClassifier else {"max_epochs": 12, "patience": 3}
    a = cls(random_state=3, **fast).fit(X, y)
    b = cls(random_state=3, **fast).fit(X, y)
    c = cls(random_state=4, **fast).fit(X, y)
    assert torch.get_num_threads() == before  # set to 1 for the fit only
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))
    assert 1 <= a.best_epoch_ <= a.n_epochs_ <= 12 and a.val_loss_ is not None
    # the fitted state is numpy only: nothing torch survives pickling-by-state
    state = a.__getstate__()
    assert "_module" not in state and all(isinstance(v, np.ndarray) for v in state["state_"].values())


def test_early_stopping_never_sees_rows_outside_fit():
    """The epoch is chosen on an inner split of the rows given to fit: rows the model is later scored on
    cannot change it (refit with different scoring rows appended elsewhere gives the same model)."""
    X, y = _xy(80)
    model = TabMClassifier(max_epochs=10, patience=2, random_state=0).fit(X[:60], y[:60])
    again = TabMClassifier(max_epochs=10, patience=2, random_state=0).fit(X[:60], y[:60])
    np.testing.assert_array_equal(model.predict_proba(X[60:]), again.predict_proba(X[60:]))
    assert model.best_epoch_ == again.best_epoch_


def test_in_fold_preprocessing_sits_inside_the_pipeline():
    realmlp, tabm = zoo.make_pipeline("realmlp", n_rows=300), zoo.make_pipeline("tabm", n_rows=300)
    assert [s for s, _ in realmlp.steps] == ["impute", "drop_constant", "scale", "classifier"]
    assert type(realmlp.named_steps["scale"]).__name__ == "RobustScaler"
    assert type(tabm.named_steps["scale"]).__name__ == "QuantileTransformer"
    assert tabm.named_steps["scale"].n_quantiles == 10  # pytabkit's rule: n // 30, at least 10


def test_a_missing_optional_package_is_named_with_the_install_command_before_any_fit(tmp_path):
    """The registry's declared requirement, with a module that is not importable, refuses the pipeline at
    config validation: no fold is fitted and the run directory stays empty."""
    from vitfeat.pipelines.select import FitConfig, fit_run

    missing = dataclasses.replace(zoo.CLASSIFIERS.get("tabm"), name="tabm_x",
                                  requires=(("vitfeat_no_such_module_31", INSTALL),))
    with zoo.CLASSIFIERS.temporarily("tabm_x", missing):
        with pytest.raises(ValueError) as err:
            zoo.expand_names("logreg,tabm_x+smote")
        assert str(err.value) == ("pipeline 'tabm_x+smote' needs vitfeat_no_such_module_31: "
                                  "pip install 'vitfeat[tabular-deep]'")
        table = tmp_path / "t.csv"
        _table().to_csv(table, index=False)
        with pytest.raises(ValueError, match=r"needs vitfeat_no_such_module_31: pip install 'vitfeat\[tabular-deep\]'"):
            fit_run(table, tmp_path / "run", FitConfig(pipelines=["tabm_x"], folds=3, nested=False), progress=False)
        assert not (tmp_path / "run").exists() or not any((tmp_path / "run").rglob("*.npz"))
    assert zoo.missing_requirement(zoo.CLASSIFIERS.get("tabm")) is None  # installed with the test extra


def test_the_cli_names_the_missing_package(tmp_path, capsys):
    from vitfeat.cli.main import main

    missing = dataclasses.replace(zoo.CLASSIFIERS.get("realmlp"), name="mlp_x",
                                  requires=(("vitfeat_no_such_module_31", INSTALL),))
    table = tmp_path / "t.csv"
    _table().to_csv(table, index=False)
    with zoo.CLASSIFIERS.temporarily("mlp_x", missing):
        code = main(["fit", str(table), "-o", str(tmp_path / "run"), "--pipelines", "mlp_x", "--folds", "3"])
    err = capsys.readouterr().err
    assert code == 2 and "pipeline 'mlp_x' needs vitfeat_no_such_module_31" in err and INSTALL in err
    assert "Traceback" not in err


# --- TabPFN from a local checkpoint --------------------------------------------------------------------

def _random_tabpfn_checkpoint(path: Path, **config) -> Path:
    """A random-initialised TabPFN v2 classifier saved in tabpfn's own safetensors checkpoint format."""
    import torch
    from tabpfn.architectures import ARCHITECTURES
    from tabpfn.checkpoint import save_as_safetensors

    config = {"emsize": 32, "nlayers": 2, "nhead": 2, "features_per_group": 2, "max_num_classes": 10, "seed": 0,
              **config}
    architecture = ARCHITECTURES["tabpfn_v2"]
    torch.manual_seed(0)
    model = architecture.get_architecture(architecture.parse_config(config)[0])
    save_as_safetensors({"state_dict": model.state_dict(), "config": config, "architecture_name": "tabpfn_v2"}, path)
    return path


@pytest.fixture()
def tiny_checkpoint(tmp_path_factory):
    yield _random_tabpfn_checkpoint(tmp_path_factory.mktemp("tabpfn") / "tiny.safetensors")
    zoo.CLASSIFIERS.unregister("tabpfn")  # registered by the fit: no leak into other tests


def test_a_random_tabpfn_checkpoint_loads_fits_and_survives_save_and_load(tiny_checkpoint, tmp_path):
    from vitfeat import ModelSelector

    table = _table(40, 6)
    selector = ModelSelector(pipelines=["logreg"], folds=3, nested=False, n_boot=20,
                             tabpfn_checkpoint=tiny_checkpoint).fit(table, "label")
    assert set(selector.leaderboard_["pipeline"]) >= {"logreg", "tabpfn"}
    assert selector.oof_predictions_.query("pipeline == 'tabpfn'")["case_id"].nunique() == len(table)
    assert selector.result_.config["tabpfn_checkpoint"] == str(tiny_checkpoint)
    from vitfeat.pipelines.cv import fit_estimator

    X = table[[c for c in table.columns if c.startswith(("clinical_", "wood_", "pair_"))]].to_numpy(float)
    y = (table["label"] == sorted(table["label"].unique())[1]).astype(int).to_numpy()
    est, _ = fit_estimator("tabpfn", X, y, table["patient_id"].astype(str).to_numpy())
    from vitfeat.pipelines.persist import load_model, save_model

    save_model({"features": [], "targets": {"label": {"model": est}}}, tmp_path / "m.skops")
    types = set(sio.get_untrusted_types(file=tmp_path / "m.skops"))
    assert "vitfeat.pipelines.foundation.TabPFNLocalClassifier" in types
    assert not any(t.startswith(("torch", "tabpfn")) for t in types)
    loaded = load_model(tmp_path / "m.skops")["targets"]["label"]["model"]
    np.testing.assert_allclose(loaded.predict_proba(X), est.predict_proba(X), atol=1e-6)
    # the saved model refers to the checkpoint by path and SHA-256: a changed file is refused by name
    _random_tabpfn_checkpoint(tiny_checkpoint, seed=1)
    with pytest.raises(ValueError, match="tiny.safetensors: the checkpoint changed since the model was fitted"):
        load_model(tmp_path / "m.skops")["targets"]["label"]["model"].predict_proba(X)


def test_bad_tabpfn_checkpoints_are_named_before_any_fit(tmp_path, capsys):
    from vitfeat.cli.main import main
    from vitfeat.pipelines.foundation import TabPFNCheckpointError, check_checkpoint

    cases = {}
    cases["missing"] = (tmp_path / "nope.safetensors", "not found")
    (tmp_path / "corrupt.safetensors").write_bytes(np.random.default_rng(8).bytes(256))
    cases["corrupt"] = (tmp_path / "corrupt.safetensors", "damaged TabPFN checkpoint")
    (tmp_path / "trunc.ckpt").write_bytes(b"PK\x03\x04 truncated")
    cases["truncated ckpt"] = (tmp_path / "trunc.ckpt", "damaged TabPFN checkpoint")
    other = _random_tabpfn_checkpoint(tmp_path / "other.safetensors")
    from safetensors.torch import load_file, save_file

    save_file(load_file(other), str(tmp_path / "future.safetensors"),
              metadata={"config": json.dumps({"emsize": 32, "max_num_classes": 10}),
                        "architecture_name": json.dumps("tabpfn_v99")})
    cases["other version"] = (tmp_path / "future.safetensors", "architecture 'tabpfn_v99', which tabpfn")
    save_file(load_file(other), str(tmp_path / "mismatch.safetensors"),
              metadata={"config": json.dumps({"emsize": 64, "nlayers": 2, "nhead": 2, "max_num_classes": 10}),
                        "architecture_name": json.dumps("tabpfn_v2")})
    cases["weights of another shape"] = (tmp_path / "mismatch.safetensors", "does not load as a 'tabpfn_v2' model")
    (tmp_path / "weights.txt").write_text("hello")
    cases["other format"] = (tmp_path / "weights.txt", "expected .safetensors or .ckpt")
    for what, (path, message) in cases.items():
        with pytest.raises(TabPFNCheckpointError) as err:
            check_checkpoint(path)
        assert str(path.name) in str(err.value) and message in str(err.value), what
    table = tmp_path / "t.csv"
    _table().to_csv(table, index=False)
    code = main(["fit", str(table), "-o", str(tmp_path / "run"), "--pipelines", "logreg",
                 "--tabpfn-checkpoint", str(tmp_path / "future.safetensors")])
    zoo.CLASSIFIERS.unregister("tabpfn")
    err = capsys.readouterr().err
    assert code == 2 and "future.safetensors" in err and "tabpfn_v99" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "leaderboard.csv").exists()


def test_a_pickled_checkpoint_that_runs_code_is_refused_unopened(tmp_path):
    import builtins

    import torch

    from vitfeat.pipelines.foundation import TabPFNCheckpointError, check_checkpoint

    canary = tmp_path / "canary"

    class Payload:
        def __reduce__(self):
            return builtins.exec, (f"open({str(canary)!r}, 'w').write('pwned')",)

    torch.save({"state_dict": {"w": torch.zeros(2)}, "config": {"max_num_classes": 2}, "x": Payload()},
               tmp_path / "evil.ckpt")
    with pytest.raises(TabPFNCheckpointError, match="evil.ckpt: refusing a pickled checkpoint"):
        check_checkpoint(tmp_path / "evil.ckpt")
    assert not canary.exists()


def _random_tabicl_checkpoint(path: Path, **config) -> Path:
    """A random-initialised TabICL model saved as tabicl saves its checkpoints ({"config", "state_dict"})."""
    import torch
    from tabicl._model.tabicl import TabICL

    config = {"max_classes": 10, "embed_dim": 16, "col_num_blocks": 1, "col_nhead": 2, "col_num_inds": 8,
              "row_num_blocks": 1, "row_nhead": 2, "row_num_cls": 2, "icl_num_blocks": 1, "icl_nhead": 2, **config}
    torch.manual_seed(0)
    torch.save({"config": config, "state_dict": TabICL(**config).state_dict()}, path)
    return path


def test_a_random_tabicl_checkpoint_fits_in_the_leaderboard_and_round_trips(tmp_path):
    from vitfeat import ModelSelector
    from vitfeat.pipelines.cv import fit_estimator
    from vitfeat.pipelines.persist import load_model, save_model

    checkpoint = _random_tabicl_checkpoint(tmp_path / "tiny.ckpt")
    table = _table(40, 6)
    try:
        selector = ModelSelector(pipelines=["logreg"], folds=3, nested=False, n_boot=20,
                                 tabicl_checkpoint=checkpoint).fit(table, "label")
        assert set(selector.leaderboard_["pipeline"]) >= {"logreg", "tabicl"}
        X, y = _xy(40, 6)
        est, _ = fit_estimator("tabicl", X, y, np.arange(40).astype(str))
    finally:
        zoo.CLASSIFIERS.unregister("tabicl")
    save_model({"features": [], "targets": {"label": {"model": est}}}, tmp_path / "m.skops")
    types = set(sio.get_untrusted_types(file=tmp_path / "m.skops"))
    assert "vitfeat.pipelines.foundation.TabICLLocalClassifier" in types and not any("torch" in t for t in types)
    loaded = load_model(tmp_path / "m.skops")["targets"]["label"]["model"]
    np.testing.assert_allclose(loaded.predict_proba(X), est.predict_proba(X), atol=1e-6)


def test_bad_tabicl_checkpoints_are_named(tmp_path):
    import builtins

    import torch

    from vitfeat.pipelines.foundation import TabPFNCheckpointError, check_tabicl_checkpoint

    canary = tmp_path / "canary"

    class Payload:
        def __reduce__(self):
            return builtins.exec, (f"open({str(canary)!r}, 'w').write('pwned')",)

    good = _random_tabicl_checkpoint(tmp_path / "good.ckpt")
    data = torch.load(good, weights_only=True)
    torch.save({"config": dict(data["config"], new_option_of_v9=1), "state_dict": data["state_dict"]},
               tmp_path / "future.ckpt")
    torch.save({"config": data["config"], "state_dict": data["state_dict"], "x": Payload()}, tmp_path / "evil.ckpt")
    (tmp_path / "corrupt.ckpt").write_bytes(np.random.default_rng(7).bytes(300))
    cases = {"nope.ckpt": "TabICL checkpoint not found", "future.ckpt": "does not load as a TabICL model",
             "evil.ckpt": "refusing a pickled checkpoint", "corrupt.ckpt": "damaged TabICL checkpoint"}
    for name, message in cases.items():
        with pytest.raises(TabPFNCheckpointError) as err:
            check_tabicl_checkpoint(tmp_path / name)
        assert name in str(err.value) and message in str(err.value), name
    assert not canary.exists()
    assert check_tabicl_checkpoint(good)["architecture"] == "tabicl"


def _real_checkpoint() -> Path | None:
    candidates = [os.environ.get("VITFEAT_TABPFN_CHECKPOINT", "")]
    candidates += [str(p) for p in sorted(Path("~/.cache/tabpfn").expanduser().glob("*classifier*"))]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@pytest.mark.skipif(_real_checkpoint() is None,
                    reason="no real TabPFN checkpoint (set VITFEAT_TABPFN_CHECKPOINT or put one in ~/.cache/tabpfn)")
def test_a_real_tabpfn_checkpoint_learns_the_synthetic_signal():
    from vitfeat.pipelines.foundation import register_tabpfn

    register_tabpfn(_real_checkpoint())
    X, y = _xy(120, 6)
    try:
        model = zoo.make_pipeline("tabpfn").fit(X[:80], y[:80])
    finally:
        zoo.CLASSIFIERS.unregister("tabpfn")
    proba = model.predict_proba(X[80:])[:, 1]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[80:], proba) > 0.8


def test_tabm_quantiles_follow_the_training_rows_whatever_the_bins_rule():
    """The bins rule decides the boosting models' bins only; TabM's quantile transform is sized to the rows."""
    from vitfeat.pipelines.cv import build_estimator, fit_estimator

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(600, 3)), np.repeat([0, 1], 300)
    groups = np.arange(600).astype(str)
    for rule in ("full", "rows"):
        tabm = build_estimator("tabm", "none", 1, 0, 3, n_rows=600, bins_rule=rule)
        assert tabm.named_steps["scale"].n_quantiles == 20
    fitted, _ = fit_estimator("tabm", X[:300], y[::2], groups[:300])  # fit's default: gbm_bins="full"
    assert fitted.named_steps["scale"].n_quantiles == 300 // 30
    for rule, bins in (("full", 255), ("rows", zoo.gbm_bins(480, 16))):
        lgbm = build_estimator("lgbm", "none", 1, 0, 3, n_rows=480, bins_rule=rule)
        assert lgbm.named_steps["classifier"].max_bin == bins
