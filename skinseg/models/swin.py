"""Swin Transformer v1 backbone (Liu et al., 2021) returning the four stage feature maps.

Shifted-window self-attention with a relative position bias, patch merging between
stages and a LayerNorm on every stage output, as in the detection/segmentation variant
of Swin: any input size works, because the image is padded to a multiple of the patch
size and every stage pads its map to a multiple of the window (and to an even size
before merging). Module and parameter names follow the original code.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch of a sample with probability p.

    Forward:
        x (B,...) -> x with some samples zeroed and the rest scaled by 1/(1-p) (training only).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class Mlp(nn.Module):
    """Two linear layers with a GELU between them: (..., C) -> (..., C)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """Cuts (B,H,W,C), H and W multiples of the window, into windows (B·nW, window², C)."""
    H, W, C = x.shape[1:]
    x = x.view(-1, H // window_size, window_size, W // window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, C)


def window_reverse(windows: torch.Tensor, window_size: int, H: int, W: int) -> torch.Tensor:
    """Inverse of `window_partition`: (B·nW, window², C) -> (B,H,W,C)."""
    C = windows.shape[-1]
    x = windows.view(-1, H // window_size, W // window_size, window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


def shifted_window_mask(H: int, W: int, window_size: int, shift: int, device: torch.device) -> torch.Tensor:
    """Attention mask (nW, N, N) of a cyclically shifted (H,W) map, H and W multiples of the window.

    After the shift a window can hold tokens from up to four regions that are not
    neighbours in the image; attention between different regions gets -inf. Built in
    NumPy from the sizes, so that an ONNX trace stores it as a constant (the traced
    slice assignments of a torch version gave wrong masks in ONNX Runtime).
    """
    regions = np.zeros((H, W), np.int64)
    bounds = (slice(0, -window_size), slice(-window_size, -shift), slice(-shift, None))
    for label, (rows, cols) in enumerate(itertools.product(bounds, bounds)):
        regions[rows, cols] = label
    windows = regions.reshape(H // window_size, window_size, W // window_size, window_size)
    windows = windows.transpose(0, 2, 1, 3).reshape(-1, window_size * window_size)  # nW, N
    different = windows[:, None, :] != windows[:, :, None]
    return torch.from_numpy(np.where(different, -np.inf, 0.0).astype(np.float32)).to(device)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias.

    Args:
        dim: token channels C.
        window_size: window side; a window holds N = window_size² tokens.
        num_heads: attention heads (C must be divisible by it).
        qkv_bias: whether the query/key/value projection has a bias.

    Forward:
        x (B·nW, N, C), mask (nW, N, N) additive or None -> (B·nW, N, C).
    """

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(
            torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
        ).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
        index = relative[..., 0] * (2 * window_size - 1) + relative[..., 1]  # N, N
        self.register_buffer("relative_position_index", index)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # batch-like sizes stay -1, so that an ONNX trace keeps the batch dynamic
        N, C = x.shape[1:]
        qkv = self.qkv(x).reshape(-1, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # B_, heads, N, C/heads
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = (q * self.scale) @ k.transpose(-2, -1) + bias.view(N, N, -1).permute(2, 0, 1)
        if mask is not None:
            attn = attn.view(-1, mask.shape[0], self.num_heads, N, N) + mask[None, :, None]
            attn = attn.view(-1, self.num_heads, N, N)
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(-1, N, C)
        return self.proj(x)


class SwinTransformerBlock(nn.Module):
    """(Shifted) window attention and an MLP, each pre-normed and residual.

    Args:
        dim: token channels.
        num_heads: attention heads.
        window_size: window side.
        shift_size: cyclic shift (0 for W-MSA, window_size // 2 for SW-MSA).
        mlp_ratio: MLP hidden width relative to dim.
        qkv_bias: bias of the query/key/value projection.
        drop_path: stochastic depth probability of both residual branches.

    Forward:
        x (B,H,W,C), mask (nW, N, N) of the padded map (used only when shifted) -> (B,H,W,C).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int = 7,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[1:3]
        ws, shift = self.window_size, self.shift_size
        h = F.pad(self.norm1(x), (0, 0, 0, (ws - W % ws) % ws, 0, (ws - H % ws) % ws))
        Hp, Wp = h.shape[1:3]
        if shift:
            h = torch.roll(h, shifts=(-shift, -shift), dims=(1, 2))
        h = self.attn(window_partition(h, ws), mask if shift else None)
        h = window_reverse(h, ws, Hp, Wp)
        if shift:
            h = torch.roll(h, shifts=(shift, shift), dims=(1, 2))
        x = x + self.drop_path(h[:, :H, :W, :])
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Concatenates each 2x2 neighbourhood (padding odd sizes) and projects 4C -> 2C.

    Forward:
        x (B,H,W,C) -> (B,ceil(H/2),ceil(W/2),2C).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[1:3]
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    """One Swin stage: `depth` blocks alternating W-MSA and SW-MSA, then optional patch merging.

    Forward:
        x (B,H,W,C) -> (stage output (B,H,W,C), merged (B,H/2,W/2,2C) or None).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop_path: Sequence[float],
        downsample: bool,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        shifts = [0 if i % 2 == 0 else window_size // 2 for i in range(depth)]
        self.blocks = nn.ModuleList(
            [
                SwinTransformerBlock(dim, num_heads, window_size, shift, mlp_ratio, qkv_bias, rate)
                for shift, rate in zip(shifts, drop_path)
            ]
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        ws = self.window_size
        H, W = x.shape[1:3]
        Hp, Wp = -(-H // ws) * ws, -(-W // ws) * ws
        mask = shifted_window_mask(Hp, Wp, ws, ws // 2, x.device) if len(self.blocks) > 1 else None
        for block in self.blocks:
            x = block(x, mask)
        return x, (self.downsample(x) if self.downsample is not None else None)


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection (padding H, W to the patch size) and LayerNorm.

    Forward:
        x (B,in,H,W) -> (B,ceil(H/p),ceil(W/p),embed_dim).
    """

    def __init__(self, patch_size: int, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        H, W = x.shape[-2:]
        x = F.pad(x, (0, (p - W % p) % p, 0, (p - H % p) % p))
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class SwinTransformer(nn.Module):
    """Swin Transformer v1 feature extractor; the defaults build Swin-T (27.5M parameters).

    Args:
        in_channels: input image channels.
        patch_size: side of the patches embedded at stage 1.
        embed_dim: channels of stage 1; stage i has embed_dim·2^i.
        depths: blocks per stage.
        num_heads: attention heads per stage.
        window_size: attention window side.
        mlp_ratio: MLP hidden width relative to the block width.
        qkv_bias: bias of the query/key/value projections.
        drop_path_rate: stochastic depth of the last block, rising linearly from 0.
        activation_checkpointing: recompute each stage in the backward pass (training
            with grad only) instead of storing its activations.

    Forward:
        x (B,in,H,W) -> list of stage maps (B, embed_dim·2^i, ~H/(p·2^i), ~W/(p·2^i)),
        i = 0..len(depths)-1; each side is the ceiling of the previous one halved
        (the first the ceiling of H/p).
    """

    # Window padding, shifts and attention masks are computed from the input's size in
    # Python: a trace freezes them for the example's size.
    onnx_fixed_size = True
    quantization_unsupported = "Swin's window partitioning depends on the input size in Python, which FX cannot trace"

    def __init__(
        self,
        in_channels: int = 3,
        patch_size: int = 4,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {tuple(depths)} and num_heads {tuple(num_heads)} differ in length")
        self.activation_checkpointing = activation_checkpointing
        self.out_channels = tuple(embed_dim * 2**i for i in range(len(depths)))
        self.patch_embed = PatchEmbed(patch_size, in_channels, embed_dim)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            first = sum(depths[:i])
            self.layers.append(
                BasicLayer(
                    self.out_channels[i],
                    depth,
                    heads,
                    window_size,
                    mlp_ratio,
                    qkv_bias,
                    rates[first : first + depth],
                    downsample=i < len(depths) - 1,
                )
            )
        for i, channels in enumerate(self.out_channels):
            self.add_module(f"norm{i}", nn.LayerNorm(channels))
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        recompute = self.activation_checkpointing and self.training and torch.is_grad_enabled()
        outs = []
        for i, layer in enumerate(self.layers):
            out, x = checkpoint(layer, x, use_reentrant=False) if recompute else layer(x)
            outs.append(getattr(self, f"norm{i}")(out).permute(0, 3, 1, 2).contiguous())
        return outs


def _init_weights(module: nn.Module) -> None:
    """Swin's initialisation: truncated normal (std 0.02) linear weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
