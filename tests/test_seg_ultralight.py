"""UltraLight VM-UNet: exact published size, and a Mamba scan that computes what Mamba defines."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vitfeat.deep.segmentation.ultralight import Mamba, PVMLayer, UltraLightVMUNet


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_count_matches_the_published_model():
    model = UltraLightVMUNet()
    assert _params(model) == 49_457
    # per-stage counts of the reference implementation (see docs/segmentation.md)
    assert [_params(s) for s in model.encoder] == [224, 1168, 3480, 1749, 2945, 5465]
    assert [_params(s) for s in model.decoder] == [6609, 3897, 2153, 3472, 1160]
    assert _params(model.bridge) == 16_614
    # the PVM ablation sizes of the README: no split 0.136 M, 2-way 0.070 M
    assert _params(UltraLightVMUNet(pvm_groups=1)) == 136_269
    assert _params(UltraLightVMUNet(pvm_groups=2)) == 69_589


def test_state_dict_uses_mamba_ssm_parameter_names():
    keys = {k.split("mamba.", 1)[1] for k in UltraLightVMUNet().state_dict() if ".mamba." in k}
    assert keys == {"in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight", "dt_proj.weight",
                    "dt_proj.bias", "A_log", "D", "out_proj.weight"}


def test_forward_gives_probabilities_of_the_input_size_and_trains():
    torch.manual_seed(0)
    model = UltraLightVMUNet()
    x = torch.rand(2, 3, 64, 64) * 255
    out = model(x)
    assert out.shape == (2, 1, 64, 64)
    assert float(out.detach().min()) >= 0.0 and float(out.detach().max()) <= 1.0
    model.return_logits = True
    logits = model(x)
    assert torch.allclose(torch.sigmoid(logits), out, atol=1e-6)
    logits.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def _naive_mamba(block: Mamba, x: torch.Tensor) -> torch.Tensor:
    """Mamba written out step by step from its definition (no convolution op, no parallel scan)."""
    cfg = block.config
    xs, z = (x @ block.in_proj.weight.T).chunk(2, dim=-1)
    length, k = x.shape[1], cfg.d_conv
    w = block.conv1d.weight[:, 0, :]  # (ED, K), causal: output t sees inputs t-K+1 .. t
    conv = torch.zeros_like(xs) + block.conv1d.bias
    for t in range(length):
        for j in range(k):
            src = t - (k - 1) + j
            if src >= 0:
                conv[:, t] += xs[:, src] * w[:, j]
    u = F.silu(conv)
    dt, b, c = torch.split(u @ block.x_proj.weight.T, [cfg.dt_rank, cfg.d_state, cfg.d_state], dim=-1)
    delta = F.softplus(dt @ block.dt_proj.weight.T + block.dt_proj.bias)  # (B, L, ED)
    a = -torch.exp(block.A_log)  # (ED, N)
    h = torch.zeros(x.shape[0], cfg.d_inner, cfg.d_state, dtype=x.dtype)
    ys = []
    for t in range(length):
        h = torch.exp(delta[:, t, :, None] * a) * h + delta[:, t, :, None] * b[:, t, None, :] * u[:, t, :, None]
        ys.append((h * c[:, t, None, :]).sum(-1) + block.D * u[:, t])
    y = torch.stack(ys, dim=1) * F.silu(z)
    return y @ block.out_proj.weight.T


@pytest.mark.parametrize("length", [16, 37])  # a power of two, and one the parallel scan pads
def test_pure_pytorch_scan_matches_naive_sequential_reference(length):
    torch.manual_seed(1)
    block = Mamba(d_model=8).double()
    with torch.no_grad():  # move away from the zero dt bias of the init so that every term matters
        block.dt_proj.bias.uniform_(-2, 1)
        block.D.uniform_(0.5, 1.5)
    x = torch.randn(3, length, 8, dtype=torch.float64)
    # mambapy evaluates A = -exp(A_log) in float32, hence ~1e-8 differences, not 1e-15
    assert torch.allclose(block(x), _naive_mamba(block, x), atol=1e-7, rtol=1e-6)


def test_pvm_shares_one_mamba_across_the_four_channel_groups():
    torch.manual_seed(2)
    layer = PVMLayer(24, 32).double()
    x = torch.randn(2, 24, 4, 5, dtype=torch.float64)
    tokens = layer.norm(x.flatten(2).transpose(1, 2))
    groups = [layer.mamba(g) + layer.skip_scale * g for g in tokens.chunk(4, dim=2)]
    expected = layer.proj(layer.norm(torch.cat(groups, dim=2))).transpose(1, 2).reshape(2, 32, 4, 5)
    assert torch.allclose(layer(x), expected, atol=1e-12)


def test_flops_match_the_reference_count():
    from vitfeat.deep.segmentation.info import count_flops

    macs = count_flops(UltraLightVMUNet(), 256) / 2
    assert 0.060e9 < macs < 0.075e9  # ~0.068 GMACs with flop_counter (0.060 G with thop, scan excluded)


def test_mamba_ssm_kernel_gives_the_same_output():
    try:
        from mamba_ssm import Mamba as MambaSSM
    except ImportError:
        pytest.skip("mamba_ssm is not installed (it needs CUDA); the pure-PyTorch scan is used")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: mamba_ssm's kernel cannot run")
    torch.manual_seed(3)
    ours = Mamba(d_model=8)
    with torch.no_grad():
        ours.dt_proj.bias.uniform_(-2, 1)
    ref = MambaSSM(d_model=8, d_state=16, d_conv=4, expand=2).cuda()
    ref.load_state_dict(ours.state_dict())  # same names and shapes
    x = torch.randn(2, 64, 8)
    expected = ref(x.cuda()).cpu()
    assert torch.allclose(ours(x), expected, atol=1e-4)  # mambapy scan on CPU
    assert torch.allclose(ours.cuda()(x.cuda()).cpu(), expected, atol=1e-4)  # fused path
