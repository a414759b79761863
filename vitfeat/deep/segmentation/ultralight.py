"""UltraLight VM-UNet (Wu et al., 2024), re-implemented from the published description.

49,457 parameters with the default channel widths: three convolutional encoder stages, three
Parallel Vision Mamba (PVM) stages, a spatial + channel attention bridge over the five skip
connections, and a mirrored decoder. See ``/work/shared/notes/ultralight.md`` (or
``docs/segmentation.md``) for the stage table this module follows.

The Mamba blocks are mambapy's pure-PyTorch ``MambaBlock`` (same parameter names and shapes as
mamba_ssm's ``Mamba``). The module names around them differ from the original repository's, so an
official checkpoint loads through ``official.py`` (``vitfeat seg import-official``), not directly.
On a CUDA tensor, when mamba_ssm is installed, the selective scan runs in mamba_ssm's fused kernel
instead of mambapy's parallel scan.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mambapy.mamba import MambaBlock, MambaConfig

try:  # the CUDA kernel is optional; the pure-PyTorch scan gives the same numbers
    from mamba_ssm.ops.selective_scan_interface import (
        selective_scan_fn as _cuda_selective_scan,
    )
except Exception:  # noqa: BLE001 - optional: ImportError, or a broken CUDA build raising anything
    _cuda_selective_scan = None

DEFAULT_WIDTHS = (8, 16, 24, 32, 48, 64)


class Mamba(MambaBlock):
    """mamba_ssm-compatible Mamba mixer: mambapy's scan on CPU, mamba_ssm's kernel on CUDA if present.

    Parameters
    ----------
    d_model : int
        Token width.
    d_state : int, default 16
        SSM state size.
    d_conv : int, default 4
        Local convolution width.
    expand : int, default 2
        Inner expansion.
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2):
        super().__init__(MambaConfig(d_model=d_model, n_layers=1, d_state=d_state, d_conv=d_conv,
                                     expand_factor=expand))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The mixer's output for a token sequence (fused kernel on CUDA when available).

        Parameters
        ----------
        x : torch.Tensor
            (B, L, d_model) tokens.

        Returns
        -------
        torch.Tensor
        """
        if x.is_cuda and _cuda_selective_scan is not None:
            return self._forward_fused(x)
        return super().forward(x)

    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        length = x.shape[1]
        xs, z = self.in_proj(x).chunk(2, dim=-1)
        xs = F.silu(self.conv1d(xs.transpose(1, 2))[:, :, :length])  # (B, ED, L)
        dbc = self.x_proj(xs.transpose(1, 2))
        dt, b, c = torch.split(dbc, [cfg.dt_rank, cfg.d_state, cfg.d_state], dim=-1)
        dt = (self.dt_proj.weight @ dt.transpose(1, 2)).contiguous()  # bias is added inside the kernel
        y = _cuda_selective_scan(
            xs.contiguous(), dt, -torch.exp(self.A_log.float()), b.transpose(1, 2).contiguous(),
            c.transpose(1, 2).contiguous(), self.D.float(), z=z.transpose(1, 2).contiguous(),
            delta_bias=self.dt_proj.bias.float(), delta_softplus=True,
        )
        return self.out_proj(y.transpose(1, 2))


class PVMLayer(nn.Module):
    """Parallel Vision Mamba: LayerNorm, one Mamba shared by four channel groups, LayerNorm, Linear.

    Parameters
    ----------
    in_channels, out_channels : int
        Widths.
    groups : int, default 4
        Channel groups sharing the Mamba.
    d_state, d_conv, expand : int
        The Mamba's settings.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int = 4, d_state: int = 16,
                 d_conv: int = 4, expand: int = 2):
        super().__init__()
        if in_channels % groups:
            raise ValueError(f"PVM input width {in_channels} is not divisible into {groups} groups")
        self.groups = groups
        self.out_channels = out_channels
        self.norm = nn.LayerNorm(in_channels)  # applied before and after the Mamba (shared weights)
        self.mamba = Mamba(in_channels // groups, d_state=d_state, d_conv=d_conv, expand=expand)
        self.proj = nn.Linear(in_channels, out_channels)
        self.skip_scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mix the tokens of a (B, C, H, W) map through the shared Mamba, per channel group.

        Parameters
        ----------
        x : torch.Tensor
            (B, C, H, W) input.

        Returns
        -------
        torch.Tensor
        """
        if x.dtype == torch.float16:  # the scan is unstable in half precision
            x = x.float()
        b, c, h, w = x.shape
        tokens = self.norm(x.flatten(2).transpose(1, 2))  # (B, H*W, C), row-major scan order
        # The four channel groups share one Mamba: running them as one batch of 4B sequences is
        # the same computation, and one scan call instead of four.
        grouped = torch.cat(tokens.chunk(self.groups, dim=2), dim=0)  # (G*B, L, C/G)
        mixed = self.mamba(grouped) + self.skip_scale * grouped
        mixed = torch.cat(mixed.chunk(self.groups, dim=0), dim=2)  # (B, L, C)
        out = self.proj(self.norm(mixed))
        return out.transpose(1, 2).reshape(b, self.out_channels, h, w)


class SpatialAttentionBridge(nn.Module):
    """One dilated 7x7 conv over [channel mean, channel max], shared by all skip levels."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size=7, padding=9, dilation=3)

    def forward(self, skips):
        """One (B, 1, H, W) spatial weight map per skip level.

        Parameters
        ----------
        skips : list of torch.Tensor
            The encoder's skip maps, shallow to deep.

        Returns
        -------
        list of torch.Tensor
        """
        return [torch.sigmoid(self.conv(torch.cat([t.mean(1, keepdim=True), t.amax(1, keepdim=True)], 1)))
                for t in skips]


class ChannelAttentionBridge(nn.Module):
    """Channel weights for each skip level from the pooled descriptors of all levels together.

    Parameters
    ----------
    widths : sequence of int
        Channels of each skip level.
    split_att : {"fc", "conv"}, default "fc"
        How each level's weights are produced.
    """

    def __init__(self, widths, split_att: str = "fc"):
        super().__init__()
        total = sum(widths)
        self.mix = nn.Conv1d(1, 1, kernel_size=3, padding=1, bias=False)
        self.split_att = split_att
        if split_att == "fc":
            self.heads = nn.ModuleList(nn.Linear(total, c) for c in widths)
        else:
            self.heads = nn.ModuleList(nn.Conv1d(total, c, 1) for c in widths)

    def forward(self, skips):
        """One (B, C, 1, 1) channel weight per skip level.

        Parameters
        ----------
        skips : list of torch.Tensor
            The encoder's skip maps, shallow to deep.

        Returns
        -------
        list of torch.Tensor
        """
        pooled = torch.cat([t.mean((2, 3)) for t in skips], dim=1)  # (B, sum C)
        mixed = self.mix(pooled.unsqueeze(1))  # (B, 1, sum C)
        weights = []
        for head, _t in zip(self.heads, skips):
            if self.split_att == "fc":
                a = head(mixed).squeeze(1)
            else:
                a = head(mixed.transpose(1, 2)).squeeze(2)
            weights.append(torch.sigmoid(a)[:, :, None, None])
        return weights


class SCAttentionBridge(nn.Module):
    """The spatial then channel attention bridge over all skip levels (UltraLight's SC_Att_Bridge).

    Parameters
    ----------
    widths : sequence of int
        Channels of each skip level.
    split_att : {"fc", "conv"}, default "fc"
        The channel bridge's heads.
    """

    def __init__(self, widths, split_att: str = "fc"):
        super().__init__()
        self.spatial = SpatialAttentionBridge()
        self.channel = ChannelAttentionBridge(widths, split_att)

    def forward(self, skips):
        """The skip maps reweighted spatially, then per channel, with residuals.

        Parameters
        ----------
        skips : list of torch.Tensor
            The encoder's skip maps, shallow to deep.

        Returns
        -------
        list of torch.Tensor
        """
        u = [s * t for s, t in zip(self.spatial(skips), skips)]
        v = [ui + t for ui, t in zip(u, skips)]
        return [c * vi + ui for c, vi, ui in zip(self.channel(v), v, u)]


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=1, padding=1)


class UltraLightVMUNet(nn.Module):
    """UltraLight VM-UNet. Input (B, 3, H, W) with H, W multiples of 32.

    ``forward`` returns probabilities (sigmoid, one class) as the reference model does, or logits
    when ``return_logits`` is set (training uses logits with BCE-with-logits, which is the same loss,
    computed stably). With ``num_classes > 1`` the output is always logits (softmax outside).

    Parameters
    ----------
    num_classes : int, default 1
        Output channels.
    in_channels : int, default 3
        Input channels.
    widths : sequence of int
        The six stage widths.
    split_att : {"fc", "conv"}, default "fc"
        The channel bridge's heads.
    bridge : bool, default True
        Use the attention bridge on the skips.
    pvm_groups : int, default 4
        Channel groups of the PVM layers.
    """

    def __init__(self, num_classes: int = 1, in_channels: int = 3, widths=DEFAULT_WIDTHS,
                 split_att: str = "fc", bridge: bool = True, pvm_groups: int = 4):
        super().__init__()
        c = list(widths)
        self.num_classes = num_classes
        self.return_logits = False
        self.use_bridge = bridge
        self.encoder = nn.ModuleList([
            _conv3x3(in_channels, c[0]), _conv3x3(c[0], c[1]), _conv3x3(c[1], c[2]),
            PVMLayer(c[2], c[3], pvm_groups), PVMLayer(c[3], c[4], pvm_groups), PVMLayer(c[4], c[5], pvm_groups),
        ])
        self.encoder_norms = nn.ModuleList(nn.GroupNorm(4, w) for w in c[:5])
        self.bridge = SCAttentionBridge(c[:5], split_att) if bridge else None
        self.decoder = nn.ModuleList([
            PVMLayer(c[5], c[4], pvm_groups), PVMLayer(c[4], c[3], pvm_groups), PVMLayer(c[3], c[2], pvm_groups),
            _conv3x3(c[2], c[1]), _conv3x3(c[1], c[0]),
        ])
        self.decoder_norms = nn.ModuleList(nn.GroupNorm(4, w) for w in (c[4], c[3], c[2], c[1], c[0]))
        self.final = nn.Conv2d(c[0], num_classes, kernel_size=1)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities (or logits, see above) of the lesion mask.

        Parameters
        ----------
        x : torch.Tensor
            (B, C, H, W) input.

        Returns
        -------
        torch.Tensor
        """
        skips = []
        out = x
        for stage, norm in zip(self.encoder[:5], self.encoder_norms):
            out = F.gelu(F.max_pool2d(norm(stage(out)), 2))
            skips.append(out)
        if self.bridge is not None:
            skips = self.bridge(skips)
        out = F.gelu(self.encoder[5](out))  # the deepest stage sees the un-bridged t5
        for i, (stage, norm) in enumerate(zip(self.decoder, self.decoder_norms)):
            out = norm(stage(out))
            if i > 0:  # the first decoder stage works at the bottleneck resolution
                out = _up2(out)
            out = F.gelu(out) + skips[4 - i]
        logits = _up2(self.final(out))
        if self.return_logits or self.num_classes > 1:
            return logits
        return torch.sigmoid(logits)


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


def _init_weights(m: nn.Module) -> None:
    """The reference initialisation; it also overrides Mamba's own dt init (dt bias becomes 0)."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv1d):
        fan_out = m.kernel_size[0] * m.out_channels
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)
