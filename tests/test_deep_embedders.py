"""timm embedders: shapes, determinism, local weights, offline failure, and no network use."""

import time
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from vitfeat.deep.embedders import (  # noqa: E402
    Embedder, RandomWeightsWarning, WeightsUnavailableError, available_backbones, describe_weights, get_backbone,
)

TINY = "test_vit"  # 64-dim timm test model at 160 px: fast on CPU


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(40 + 7 * i, 60, 3), dtype=np.uint8) for i in range(n)]


def test_random_embedder_shape_determinism_and_warning(no_network):
    with pytest.warns(RandomWeightsWarning):
        emb = Embedder(TINY, "random", device="cpu", batch_size=2)
    imgs = _images(5)
    a = emb.embed(imgs)
    assert a.shape == (5, emb.num_features) and emb.num_features == 64
    assert a.dtype == np.float32 and np.isfinite(a).all()
    # Same inputs, other batch size and a second seeded model: identical vectors.
    with pytest.warns(RandomWeightsWarning):
        emb2 = Embedder(TINY, "random", device="cpu", batch_size=5)
    np.testing.assert_allclose(emb2.embed(imgs), a, rtol=1e-5, atol=1e-5)
    # Different images give different vectors (the model is not constant).
    assert not np.allclose(a[0], a[1])
    info = emb.describe()
    assert info["random_weights"] is True and info["weights"] == "random"
    assert emb.model.training is False
    assert no_network == []


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_equal_saved_state(tmp_path, suffix, no_network):
    torch.manual_seed(123)
    reference = timm.create_model(TINY, pretrained=False).eval()  # with its classifier, as users save it
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(reference.state_dict(), str(path))
    else:
        torch.save(reference.state_dict(), path)

    with warnings.catch_warnings():
        warnings.simplefilter("error", RandomWeightsWarning)  # a file is not random: no warning
        emb = Embedder(TINY, path, device="cpu")
    loaded = emb.model.state_dict()
    saved = reference.state_dict()
    assert set(loaded) <= set(saved)
    for key, value in loaded.items():
        assert torch.equal(value.cpu(), saved[key]), key
    # The embedding equals the saved model's pooled features (its forward without the classifier).
    img = _images(1)[0]
    x = torch.from_numpy(emb._prepare([img])).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(emb.mean).view(1, 3, 1, 1)) / torch.tensor(emb.std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference.forward_head(reference.forward_features(x), pre_logits=True).numpy()
    np.testing.assert_allclose(emb.embed([img]), expected, rtol=1e-4, atol=1e-5)
    assert emb.weights_id == describe_weights(path)[1] and emb.describe()["weights"] == "file"
    assert no_network == []


def test_weights_identity_follows_file_content(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "w.pth"
    torch.save(timm.create_model(TINY).state_dict(), path)
    first = describe_weights(path)[1]
    torch.manual_seed(1)
    torch.save(timm.create_model(TINY).state_dict(), path)
    assert describe_weights(path)[1] != first
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        describe_weights(tmp_path / "missing.safetensors")


def test_hub_weights_offline_fail_fast_with_instructions(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE")  # vitfeat must notice by itself that the hub is unreachable
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as err:
        Embedder(TINY, "hub", device="cpu")
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "safetensors" in message and f"deep:{TINY}@" in message


def test_backbone_registry():
    names = available_backbones()
    for required in ("convnextv2_tiny", "resnet50", "samvit_base_patch16"):
        assert required in names
    assert any(n.startswith("vit_") for n in names)
    assert get_backbone("samvit_base_patch16").create_kwargs["img_size"] == 224
    assert get_backbone("resnet18").timm_name == "resnet18"  # any timm name works
    with pytest.raises(KeyError, match="unknown backbone"):
        get_backbone("no_such_net")
