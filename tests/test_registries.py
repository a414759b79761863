"""Contract suites over every member of every registry, in the spirit of ``parametrize_with_checks``.

Each kind's tests are parametrized over ``registry.list()``, so a new member (one file plus its
registration) is tested without editing this file. Feature families have their own suite
(tests/test_featurize_contract.py). ``vitfeat list KIND`` prints each registry.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from vitfeat.cli.listing import KINDS, registry
from vitfeat.cli.main import main as cli
from vitfeat.registry import Registry, UnknownNameError


def _names(kind: str) -> list[str]:
    return registry(kind).list()


def _data(n: int = 48, p: int = 40, seed: int = 0):
    """A small imbalanced two-class table with missing values and one informative column."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3 == 0).astype(int)  # 1 : 2 imbalance
    X = rng.normal(size=(n, p))
    X[:, 0] += 2.5 * y
    X[rng.random(X.shape) < 0.03] = np.nan
    return X, y


# --- every kind ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_is_a_registry_that_lists_and_refuses_unknown_names(kind, capsys):
    reg = registry(kind)
    assert isinstance(reg, Registry) and reg.kind and reg.list() == sorted(reg.list()) and len(reg) > 0
    with pytest.raises(UnknownNameError, match=f"unknown {reg.kind} 'no-such-thing'.*valid: "):
        reg.get("no-such-thing")
    assert cli(["list", kind]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{len(reg)} {reg.kind}(s):") and all(f"  {name}" in out for name in reg.list())


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_member_describes_itself(kind):
    reg = registry(kind)
    undescribed = [name for name in reg.list() if not reg.describe(name)]
    assert undescribed == [], f"{kind} members without a description: {undescribed}"


# --- classifiers -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _names("classifier"))
def test_classifier_fits_and_gives_probabilities_in_a_pipeline(name):
    from vitfeat.pipelines.zoo import make_pipeline

    X, y = _data()
    pipe = make_pipeline(name, random_state=0)
    proba = clone(pipe).fit(X, y).predict_proba(X)
    assert proba.shape == (len(y), 2) and np.allclose(proba.sum(1), 1.0)
    assert proba[y == 1, 1].mean() > proba[y == 0, 1].mean()  # it learns the informative column


@pytest.mark.parametrize("name", _names("classifier"))
def test_classifier_search_space_names_real_parameters(name):
    from vitfeat.pipelines.zoo import make_pipeline, search_space

    pipe = make_pipeline(name)
    for key, dist in search_space(name).items():
        pipe.set_params(**{key: dist.rvs(random_state=0)})  # raises for a parameter the estimator lacks


# --- samplers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _names("sampler"))
def test_sampler_balances_the_classes_and_runs_in_a_pipeline(name):
    from vitfeat.pipelines.zoo import SAMPLERS, make_pipeline

    X, y = _data()
    Xr, yr = SAMPLERS.get(name).make(0).fit_resample(np.nan_to_num(X), y)
    assert Xr.shape[1] == X.shape[1]
    before, after = np.bincount(y), np.bincount(yr)
    assert after.min() / after.max() > before.min() / before.max()
    proba = make_pipeline(f"logreg+{name}").fit(X, y).predict_proba(X)
    assert proba.shape == (len(y), 2)


@pytest.mark.parametrize("name", _names("selector"))
def test_selector_keeps_fewer_columns_fitted_on_the_training_rows(name):
    from vitfeat.pipelines.zoo import SELECTORS

    X, y = _data(p=60)
    kept = SELECTORS.get(name).make(0).fit(np.nan_to_num(X), y)
    assert 0 < kept.transform(np.nan_to_num(X)).shape[1] < X.shape[1] and kept.get_support()[0]


def test_a_registered_classifier_is_usable_everywhere_and_leaves_no_trace():
    from sklearn.neighbors import KNeighborsClassifier

    from vitfeat.pipelines import zoo

    with zoo.CLASSIFIERS.temporarily("knn", zoo.Part("knn", "classifier", lambda rs: KNeighborsClassifier(5),
                                                     "k nearest neighbours", needs_scaling=True)):
        X, y = _data()
        pipe = zoo.make_pipeline("knn+smote")
        assert [s for s, _ in pipe.steps][-3:] == ["scale", "sampler", "classifier"]
        assert pipe.fit(X, y).predict_proba(X).shape == (len(y), 2)
        assert "classifier:knn" in zoo.registered_factories()
    assert "knn" not in zoo.CLASSIFIERS
    with pytest.raises(ValueError, match="unknown part 'knn'"):
        zoo.make_pipeline("knn")


# --- run kinds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _names("run-kind"))
def test_run_kind_has_the_predictor_signature_and_names_a_broken_run(name, tmp_path, synth_small):
    predictor = registry("run-kind").get(name)
    params = inspect.signature(predictor).parameters
    assert list(params)[:3] == ["run_dir", "input_path", "out_path"]
    assert {"allow_extra", "explain"} <= set(params)
    run = tmp_path / "broken-run"
    run.mkdir()
    (run / "run.json").write_text('{"kind": "%s"}' % name)
    frame = pd.read_csv(synth_small).head(1)
    frame.assign(data_root=str(synth_small.parent)).to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises((FileNotFoundError, ValueError)) as err:
        predictor(run, tmp_path / "one.csv", tmp_path / "pred.csv")
    assert str(run) in str(err.value)


# --- mask sources -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _names("mask-source"))
def test_mask_source_names_a_missing_model_file(name, tmp_path):
    loader = registry("mask-source").get(name)
    with pytest.raises((FileNotFoundError, ValueError), match=str(tmp_path / "absent.pt")):
        loader(str(tmp_path / "absent.pt"))


# --- backbones ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _names("backbone"))
def test_backbone_names_a_timm_model_that_accepts_its_arguments(name):
    import timm

    from vitfeat.deep.embedders import get_backbone

    bb = get_backbone(name)
    assert timm.is_model(bb.timm_name)
    if bb.img_size is not None:
        assert bb.create_kwargs["img_size"] == bb.img_size


# --- segmentation architectures -------------------------------------------------------------------


@pytest.mark.parametrize("name", _names("segmentation"))
def test_segmentation_architecture_maps_images_to_logits_of_their_size(name):
    import torch

    from vitfeat.deep.segmentation.models import build_model, get_architecture

    spec = get_architecture(name)
    assert spec.normalize in ("imagenet", "minmax255")
    torch.manual_seed(0)
    model = build_model(name, num_classes=1, encoder="resnet18").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 1, 64, 64) and torch.isfinite(out).all()


# --- VMTL variants ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _names("vmtl-variant"))
def test_vmtl_variant_names_an_importable_network_and_valid_defaults(name):
    import importlib

    from vitfeat.deep.vmtl.config import VARIANTS, preset

    variant = VARIANTS.get(name)
    module, _, attr = variant.network.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    cfg = preset(name, weights="random")
    assert cfg.variant == name and cfg.network == variant.network


# --- import layouts -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", _names("layout"))
def test_layout_refuses_an_empty_folder_by_name(name, tmp_path):
    from vitfeat.importers import LayoutError, import_folder

    with pytest.raises(LayoutError) as err:
        import_folder(tmp_path, name)
    assert str(tmp_path) in str(err.value)


def test_the_cli_offers_exactly_the_registered_layouts():
    from vitfeat.cli.manifest import LAYOUTS as CLI_LAYOUTS
    from vitfeat.importers import IMPORT_LAYOUTS, LAYOUTS

    assert set(CLI_LAYOUTS) == set(LAYOUTS) == {"auto", *IMPORT_LAYOUTS.list()}


@pytest.mark.parametrize("name", _names("segmentation"))
def test_train_seg_accepts_every_registered_architecture(name):
    from vitfeat.cli.main import build_parser

    args = build_parser().parse_args(["train", "seg", "m.csv", "-o", "out", "--arch", name])
    assert args.arch == name


def test_train_seg_names_the_registered_architectures_for_an_unknown_one(tmp_path, capsys):
    assert cli(["train", "seg", str(tmp_path / "m.csv"), "-o", str(tmp_path / "out"), "--arch", "nonet"]) == 2
    err = capsys.readouterr().err
    assert "unknown architecture 'nonet'" in err and all(name in err for name in _names("segmentation"))


@pytest.mark.parametrize("name", _names("segmentation"))
def test_seg_info_accepts_every_registered_architecture(name):
    from vitfeat.cli.main import build_parser

    assert build_parser().parse_args(["seg", "info", "--arch", name]).arch == name
