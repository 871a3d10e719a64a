"""BiRefNet_lite: bilateral reference network (Zheng et al., 2024) on a Swin-T backbone.

A re-implementation of ZhengPeng7/BiRefNet (MIT licence) in its BiRefNet_lite
configuration: the Swin backbone runs on the image and on the image at half size and
concatenates both features per stage; the three shallower features are resized onto
the deepest as context; a squeeze block and four decoder blocks (ASPP with deformable
convolutions) decode top-down with 1x1 lateral connections; every decoder stage also
sees the image cut into tiles stacked on channels ("inward reference"), predicts a side
map (multi-scale supervision) and attends with a map predicted from its own features,
supervised by the image's Laplacian ("outward reference", gradient attention).

Module and parameter names follow the original (the published BiRefNet_lite code), so
its state dicts should map one to one (not yet tried on a real checkpoint).

The model can be split over two devices (`device_map`), run each part at its own
precision (`stage_dtypes`) and recompute activations in the backward pass
(`activation_checkpointing`) to train at high resolution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from torchvision.ops import deform_conv2d

from skinseg.hardware import AUTO, autocast_dtype
from skinseg.models.registry import register
from skinseg.models.swin import SwinTransformer
from skinseg.outputs import TrainingOutputs, resize_to

PARTS = ("backbone", "decoder")
DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


def image_tiles(image: torch.Tensor, grid: int, size: Sequence[int]) -> torch.Tensor:
    """Cuts the image into grid x grid tiles of `size` and stacks them on channels.

    The image is first resized to grid·size where it has another size (never for sizes
    that are multiples of 32, the only ones the original accepts). Channel
    (j·grid + i)·C + c holds channel c of the tile in row i, column j: the order of the
    original's `get_patches_batch`, with which the published BiRefNet_lite weights were
    trained (the original's later `image2patches` uses another order).

    Args:
        image: (B,C,H,W).
        grid: tiles per side.
        size: (h,w) of each tile.

    Returns:
        (B, grid²·C, h, w).
    """
    h, w = size
    if tuple(image.shape[-2:]) != (grid * h, grid * w):
        image = resize_to(image, (grid * h, grid * w))
    B, C = image.shape[:2]
    tiles = image.reshape(B, C, grid, h, grid, w).permute(0, 4, 2, 1, 3, 5)  # B, column, row, C, h, w
    return tiles.reshape(B, grid * grid * C, h, w)


def laplacian(image: torch.Tensor) -> torch.Tensor:
    """5x5 Laplacian normalised by its absolute sum, reflect padding (kornia's `laplacian(x, 5)`).

    Forward:
        image (B,C,H,W), H and W > 2 -> (B,C,H,W).
    """
    kernel = torch.ones(5, 5, dtype=image.dtype, device=image.device)
    kernel[2, 2] = -24.0
    kernel = (kernel / 48.0).expand(image.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(image, (2, 2, 2, 2), mode="reflect"), kernel, groups=image.shape[1])


def deform_conv2d_sampled(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    padding: int,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Modulated deformable convolution (stride 1, no dilation, one offset group) by bilinear sampling.

    The function `torchvision.ops.deform_conv2d(x, offset, weight, bias, padding, mask=mask)`
    computes: every kernel tap samples the input at its shifted position (bilinear, zero
    outside, with `grid_sample`), is scaled by its modulation, and one matrix product
    applies the weights. On the CPU it runs 3x (forward) to 6x (backward) faster than
    torchvision's kernel, at the cost of keeping the sampled taps (B, C·k², H, W) for the
    backward pass (activation checkpointing frees them between blocks).

    Args:
        x: (B,C,H,W).
        offset: (B, 2·k², H', W'), (dy, dx) per tap, taps in row-major order.
        weight: (O, C, k, k).
        bias: (O,) or None.
        padding: zero padding on each side.
        mask: (B, k², H', W') modulation.

    Returns:
        (B, O, H', W'), H' = H + 2·padding - k + 1 (likewise W').
    """
    B, C, H, W = x.shape
    out_channels, _, kh, kw = weight.shape
    taps = kh * kw
    out_h, out_w = offset.shape[-2:]
    dy, dx = offset.view(B, taps, 2, out_h, out_w).unbind(2)
    tap_y, tap_x = torch.meshgrid(
        torch.arange(kh, dtype=x.dtype, device=x.device), torch.arange(kw, dtype=x.dtype, device=x.device), indexing="ij"
    )
    rows = torch.arange(out_h, dtype=x.dtype, device=x.device).view(1, 1, -1, 1) - padding
    cols = torch.arange(out_w, dtype=x.dtype, device=x.device).view(1, 1, 1, -1) - padding
    y = rows + tap_y.reshape(1, taps, 1, 1) + dy
    x_pos = cols + tap_x.reshape(1, taps, 1, 1) + dx
    # grid_sample's normalised coordinates, align_corners=True: -1 and 1 are the first and last pixel centres
    grid = torch.stack([x_pos * (2 / max(W - 1, 1)) - 1, y * (2 / max(H - 1, 1)) - 1], dim=-1)
    sampled = F.grid_sample(
        x, grid.view(B, taps * out_h, out_w, 2), mode="bilinear", padding_mode="zeros", align_corners=True
    )
    sampled = sampled.view(B, C, taps, out_h, out_w) * mask.view(B, 1, taps, out_h, out_w)
    out = torch.matmul(weight.reshape(out_channels, C * taps), sampled.reshape(B, C * taps, out_h * out_w))
    out = out.view(B, out_channels, out_h, out_w)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class DeformableConv2d(nn.Module):
    """Modulated deformable convolution (DCNv2) with offsets and modulation predicted by convs.

    Both predictors start at zero, so the layer starts as a plain convolution. On the CPU
    it runs `deform_conv2d_sampled` (unless `sampled_on_cpu` is set False), elsewhere and
    in ONNX export torchvision's `deform_conv2d` (the same function; tests check they agree).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel side.
        padding: zero padding (keep it (kernel_size - 1) // 2 to keep the size).
        bias: whether the convolution has a bias.

    Forward:
        x (B,in,H,W) -> (B,out,H,W).
    """

    onnx_opset = 19  # DeformConv
    quantization_unsupported = "torchvision's deform_conv2d has no int8 kernel"

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1, bias: bool = False
    ) -> None:
        super().__init__()
        self.padding = padding
        taps = kernel_size * kernel_size
        self.offset_conv = nn.Conv2d(in_channels, 2 * taps, kernel_size, padding=padding)
        self.modulator_conv = nn.Conv2d(in_channels, taps, kernel_size, padding=padding)
        for predictor in (self.offset_conv, self.modulator_conv):
            nn.init.zeros_(predictor.weight)
            nn.init.zeros_(predictor.bias)
        self.regular_conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self.sampled_on_cpu = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.offset_conv(x)
        modulator = 2.0 * torch.sigmoid(self.modulator_conv(x))
        weight, bias = self.regular_conv.weight, self.regular_conv.bias
        if len({x.dtype, offset.dtype, modulator.dtype, weight.dtype}) > 1:
            # Under autocast the dtypes mix; torchvision's CPU kernel does not check them (it
            # corrupts memory), and its CUDA autocast rule runs the op in float32 as well.
            x, offset, modulator, weight = x.float(), offset.float(), modulator.float(), weight.float()
            bias = bias.float() if bias is not None else None
        if x.device.type == "cpu" and self.sampled_on_cpu and not torch.onnx.is_in_onnx_export():
            return deform_conv2d_sampled(x, offset, weight, bias, self.padding, modulator)
        # torchvision's kernel: on CUDA, and for ONNX export (as DeformConv)
        return deform_conv2d(x, offset, weight, bias, padding=(self.padding, self.padding), mask=modulator)


class DeformableASPPBranch(nn.Module):
    """Deformable conv + BatchNorm + ReLU (the original `_ASPPModuleDeformable`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.atrous_conv = DeformableConv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.atrous_conv(x)))


class ASPPDeformable(nn.Module):
    """ASPP of deformable-conv branches plus a global-pooling branch, fused by a 1x1 conv.

    The branches are a 1x1 deformable conv (`aspp1`) and one deformable conv per kernel
    size (`aspp_deforms`; 1, 3 and 7 in BiRefNet_lite). The pooling branch normalises a
    1x1 map, so training needs batches of two or more.

    Args:
        channels: input and output channels.
        branch_channels: channels of each branch.
        kernel_sizes: kernel sizes of the `aspp_deforms` branches (odd).
        dropout: dropout probability after the fusion.

    Forward:
        x (B,C,H,W) -> (B,C,H,W).
    """

    def __init__(
        self,
        channels: int,
        branch_channels: int = 256,
        kernel_sizes: Sequence[int] = (1, 3, 7),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.aspp1 = DeformableASPPBranch(channels, branch_channels, 1)
        self.aspp_deforms = nn.ModuleList(
            [DeformableASPPBranch(channels, branch_channels, k) for k in kernel_sizes]
        )
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, branch_channels, 1, bias=False),
            nn.BatchNorm2d(branch_channels),
            nn.ReLU(inplace=True),
        )
        self.conv1 = nn.Conv2d((2 + len(kernel_sizes)) * branch_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.global_avg_pool(x).expand(-1, -1, *x.shape[-2:])
        branches = [self.aspp1(x), *(branch(x) for branch in self.aspp_deforms), pooled]
        return self.dropout(self.relu(self.bn1(self.conv1(torch.cat(branches, dim=1)))))


class BasicDecBlk(nn.Module):
    """3x3 conv + BN + ReLU, deformable ASPP, 3x3 conv + BN (no final activation, as the original).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        inter_channels: channels inside the block.
        aspp_channels: channels of each ASPP branch.
        aspp_kernel_sizes: kernel sizes of the ASPP's `aspp_deforms` branches.

    Forward:
        x (B,in,H,W) -> (B,out,H,W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        inter_channels: int = 64,
        aspp_channels: int = 256,
        aspp_kernel_sizes: Sequence[int] = (1, 3, 7),
    ) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, inter_channels, 3, padding=1)
        self.bn_in = nn.BatchNorm2d(inter_channels)
        self.relu_in = nn.ReLU(inplace=True)
        self.dec_att = ASPPDeformable(inter_channels, aspp_channels, aspp_kernel_sizes)
        self.conv_out = nn.Conv2d(inter_channels, out_channels, 3, padding=1)
        self.bn_out = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dec_att(self.relu_in(self.bn_in(self.conv_in(x))))
        return self.bn_out(self.conv_out(x))


class BasicLatBlk(nn.Module):
    """1x1 lateral projection of an encoder feature: (B,in,H,W) -> (B,out,H,W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SimpleConvs(nn.Module):
    """Two 3x3 convs without activation, embedding image tiles: (B,in,H,W) -> (B,out,H,W)."""

    def __init__(self, in_channels: int, out_channels: int, inter_channels: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, inter_channels, 3, padding=1)
        self.conv_out = nn.Conv2d(inter_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv1(x))


def run_block(module: nn.Module, x: torch.Tensor, recompute: bool) -> torch.Tensor:
    """module(x), recomputed in the backward pass instead of stored where `recompute`."""
    return checkpoint(module, x, use_reentrant=False) if recompute else module(x)


class Decoder(nn.Module):
    """BiRefNet's decoder: four decoder blocks top-down with lateral, tile and gradient branches.

    Level k = 4, 3, 2 works at the resolution of encoder feature x_k+1 (H/32, H/16, H/8):
    decoder block, side logits (`conv_ms_spvn_k`, training only), gradient features
    (`gdt_convs_k`) that predict the gradient map (`gdt_convs_pred_k`, training only) and
    an attention map (`gdt_convs_attn_k`) multiplying the block output, then upsampling
    plus the lateral projection of the next encoder feature and the embedded image tiles.
    `decoder_block1` works at H/4; the full-resolution head (`ipt_blk1`, `conv_out1`) is
    `head`, separate so that it can run on another device.

    Args:
        encoder_channels: channels of the encoder features x4, x3, x2, x1 (only the last
            three are read here: x4 arrives squeezed).
        decoder_channels: output channels c0..c3 of the squeeze block and decoder blocks
            4..2; decoder block 1 gives c3 // 2. The tile embeddings `ipt_blk5`..`ipt_blk1`
            give c0, c0, c1, c2, c3 // 8 channels (as the original).
        in_channels: image channels.
        num_classes: channels of the side and final logits.
        block_channels: channels inside decoder blocks and tile embeddings.
        aspp_channels: channels of each ASPP branch.
        aspp_kernel_sizes: kernel sizes of the ASPP's `aspp_deforms` branches.
        gradient_channels: channels of the gradient-attention features.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        decoder_channels: Sequence[int],
        in_channels: int = 3,
        num_classes: int = 1,
        block_channels: int = 64,
        aspp_channels: int = 256,
        aspp_kernel_sizes: Sequence[int] = (1, 3, 7),
        gradient_channels: int = 16,
    ) -> None:
        super().__init__()
        c = decoder_channels
        tile_widths = [c[i] // 8 for i in range(4)]

        self.ipt_blk5 = SimpleConvs(in_channels * 32**2, tile_widths[0], block_channels)
        self.ipt_blk4 = SimpleConvs(in_channels * 16**2, tile_widths[0], block_channels)
        self.ipt_blk3 = SimpleConvs(in_channels * 8**2, tile_widths[1], block_channels)
        self.ipt_blk2 = SimpleConvs(in_channels * 4**2, tile_widths[2], block_channels)
        self.ipt_blk1 = SimpleConvs(in_channels, tile_widths[3], block_channels)

        def block(cin: int, cout: int) -> BasicDecBlk:
            return BasicDecBlk(cin, cout, block_channels, aspp_channels, aspp_kernel_sizes)

        self.decoder_block4 = block(c[0] + tile_widths[0], c[1])
        self.decoder_block3 = block(c[1] + tile_widths[0], c[2])
        self.decoder_block2 = block(c[2] + tile_widths[1], c[3])
        self.decoder_block1 = block(c[3] + tile_widths[2], c[3] // 2)
        self.conv_out1 = nn.Sequential(nn.Conv2d(c[3] // 2 + tile_widths[3], num_classes, 1))

        self.lateral_block4 = BasicLatBlk(encoder_channels[1], c[1])
        self.lateral_block3 = BasicLatBlk(encoder_channels[2], c[2])
        self.lateral_block2 = BasicLatBlk(encoder_channels[3], c[3])

        for k, channels in zip((4, 3, 2), c[1:]):
            self.add_module(f"conv_ms_spvn_{k}", nn.Conv2d(channels, num_classes, 1))
            self.add_module(
                f"gdt_convs_{k}",
                nn.Sequential(
                    nn.Conv2d(channels, gradient_channels, 3, padding=1),
                    nn.BatchNorm2d(gradient_channels),
                    nn.ReLU(inplace=True),
                ),
            )
            self.add_module(f"gdt_convs_pred_{k}", nn.Sequential(nn.Conv2d(gradient_channels, 1, 1)))
            self.add_module(f"gdt_convs_attn_{k}", nn.Sequential(nn.Conv2d(gradient_channels, 1, 1)))

    def forward(
        self, image: torch.Tensor, features: Sequence[torch.Tensor], supervision: bool, recompute: bool
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Decodes down to H/4.

        Args:
            image: (B,in,H,W).
            features: x1..x4 at H/4..H/32, x4 already squeezed to decoder_channels[0].
            supervision: whether to compute the side and gradient outputs (training).
            recompute: whether to checkpoint the decoder blocks.

        Returns:
            (decoder block 1 output (B, decoder_channels[3]//2, H/4, W/4), side logits,
            gradient predictions, gradient labels); the three lists are filled with
            supervision only, levels 4, 3, 2 in that order: side logits (B,num_classes,h_k,w_k)
            and gradient predictions (B,1,h_k,w_k) at H/32, H/16, H/8, gradient labels
            (B,num_classes,H,W).
        """
        x1, x2, x3, x4 = features
        gradient = laplacian(image.mean(dim=1, keepdim=True)) if supervision else None
        sides, gradient_preds, gradient_labels = [], [], []
        h = torch.cat([x4, self.ipt_blk5(image_tiles(image, 32, x4.shape[-2:]))], dim=1)
        levels = ((4, x3, 16, self.ipt_blk4), (3, x2, 8, self.ipt_blk3), (2, x1, 4, self.ipt_blk2))
        for k, skip, grid, tile_block in levels:
            p = run_block(getattr(self, f"decoder_block{k}"), h, recompute)
            gradient_features = getattr(self, f"gdt_convs_{k}")(p)
            if supervision:
                side = getattr(self, f"conv_ms_spvn_{k}")(p)
                sides.append(side)
                gradient_preds.append(getattr(self, f"gdt_convs_pred_{k}")(gradient_features))
                # As the original, the label is not detached: it also trains the side map.
                gradient_labels.append(gradient * resize_to(side, gradient.shape[-2:]))
            p = p * getattr(self, f"gdt_convs_attn_{k}")(gradient_features).sigmoid()
            h = resize_to(p, skip.shape[-2:]) + getattr(self, f"lateral_block{k}")(skip)
            h = torch.cat([h, tile_block(image_tiles(image, grid, skip.shape[-2:]))], dim=1)
        return run_block(self.decoder_block1, h, recompute), sides, gradient_preds, gradient_labels

    def head(self, p1: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Full-resolution head: (B,c,H/4,W/4) and the image (B,in,H,W) -> logits (B,num_classes,H,W)."""
        p1 = resize_to(p1, image.shape[-2:])
        return self.conv_out1(torch.cat([p1, self.ipt_blk1(image)], dim=1))


@register("birefnet_lite")
class BiRefNetLite(nn.Module):
    """BiRefNet_lite; the defaults build the original (44,313,720 parameters).

    Args:
        in_channels: input image channels.
        num_classes: output channels (1 for skin).
        embed_dim: Swin stage-1 channels (stage i has embed_dim·2^i).
        depths: Swin blocks per stage.
        num_heads: Swin attention heads per stage.
        window_size: Swin attention window side.
        drop_path_rate: Swin stochastic depth (last block; linear from 0).
        decoder_channels: squeeze/decoder widths, deepest first; None uses the lateral
            channels, twice the Swin widths deepest first ((1536, 768, 384, 192) for Swin-T),
            as the original. Each should be at least 8 (tile embeddings get width // 8).
        block_channels: channels inside decoder blocks and tile embeddings.
        aspp_channels: channels of each deformable ASPP branch.
        aspp_kernel_sizes: kernel sizes of the deformable ASPP branches besides its 1x1 one.
        gradient_channels: channels of the gradient-attention features.
        device_map: None, or the device of each part, e.g. {"backbone": "cuda:0",
            "decoder": "cuda:1"}; call `place()` to move the parts there.
        stage_dtypes: None, or the autocast precision of parts, e.g. {"backbone": "bf16",
            "decoder": "fp32"} (torch dtypes or "fp32", "fp16", "bf16", or "auto": bf16
            where the part's device computes it natively, fp16 on older GPUs, else fp32;
            `skinseg.hardware.autocast_dtype`); a part left out runs under whatever
            autocast surrounds the call, "fp32" turns autocast off.
        activation_checkpointing: in training with grad, recompute each Swin stage, the
            squeeze block and each decoder block in the backward pass (BatchNorm running
            statistics then see each recomputed batch twice).

    Parts: "backbone" is `bb` (Swin, run on the image and on the image at half size);
    "decoder" is `squeeze_module` and `decoder` except the full-resolution head
    (`decoder.ipt_blk1`, `decoder.conv_out1`), which runs on the backbone device at the
    decoder precision, so that only H/4 maps cross devices.

    Forward:
        x (B,in,H,W), any H, W >= 3 -> in eval mode the logits (B,num_classes,H,W); in
        training mode `TrainingOutputs` with
        logits: (B,num_classes,H,W), as in eval mode;
        sides: side logits of decoder levels 4, 3, 2, (B,num_classes,h,w) at H/32, H/16, H/8
            (sizes rounded up: ceil(ceil(H/4)/2^j));
        gradient_predictions: gradient-map logits of levels 4, 3, 2, (B,1,h,w) at the same sizes;
        gradient_labels: levels 4, 3, 2, (B,num_classes,H,W): the 5x5 Laplacian of the
            channel-mean image times the side logits resized to H,W (not detached).
        The original training adds, per level, BCE(sigmoid(prediction resized to H,W),
        sigmoid(label)) to its pixel losses of the final and side logits.
        Outputs are on the backbone device (the input's device without a device map),
        in float32 where stage_dtypes is set.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        drop_path_rate: float = 0.0,
        decoder_channels: Sequence[int] | None = None,
        block_channels: int = 64,
        aspp_channels: int = 256,
        aspp_kernel_sizes: Sequence[int] = (1, 3, 7),
        gradient_channels: int = 16,
        device_map: Mapping[str, str | torch.device] | None = None,
        stage_dtypes: Mapping[str, str | torch.dtype] | None = None,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if len(depths) != 4:
            raise ValueError(f"BiRefNetLite needs a four-stage backbone, got depths {tuple(depths)}")
        self.bb = SwinTransformer(
            in_channels, 4, embed_dim, depths, num_heads, window_size, drop_path_rate=drop_path_rate
        )
        lateral = [2 * c for c in reversed(self.bb.out_channels)]  # image and half-size image concatenated
        decoder_channels = tuple(decoder_channels) if decoder_channels is not None else tuple(lateral)
        if len(decoder_channels) != 4:
            raise ValueError(f"decoder_channels needs four widths, got {decoder_channels}")
        context = sum(lateral[1:])  # x1, x2, x3 resized onto x4
        self.squeeze_module = nn.Sequential(
            BasicDecBlk(
                lateral[0] + context, decoder_channels[0], block_channels, aspp_channels, aspp_kernel_sizes
            )
        )
        self.decoder = Decoder(
            lateral,
            decoder_channels,
            in_channels,
            num_classes,
            block_channels,
            aspp_channels,
            aspp_kernel_sizes,
            gradient_channels,
        )
        self.device_map = device_map
        self.stage_dtypes = stage_dtypes
        self.activation_checkpointing = activation_checkpointing

    @property
    def device_map(self) -> dict[str, torch.device] | None:
        return self._device_map

    @device_map.setter
    def device_map(self, device_map: Mapping[str, str | torch.device] | None) -> None:
        if device_map is not None and set(device_map) != set(PARTS):
            raise ValueError(f"device_map needs exactly the keys {PARTS}, got {sorted(device_map)}")
        self._device_map = None if device_map is None else {k: torch.device(v) for k, v in device_map.items()}

    @property
    def stage_dtypes(self) -> dict[str, torch.dtype | str] | None:
        """Each part's autocast dtype, or "auto" (decided per device by `part_dtype`)."""
        return self._stage_dtypes

    @stage_dtypes.setter
    def stage_dtypes(self, stage_dtypes: Mapping[str, str | torch.dtype] | None) -> None:
        if stage_dtypes is None:
            self._stage_dtypes = None
            return
        unknown = set(stage_dtypes) - set(PARTS)
        if unknown:
            raise ValueError(f"stage_dtypes keys must be among {PARTS}, got {sorted(unknown)}")
        dtypes = {}
        for part, dtype in stage_dtypes.items():
            if isinstance(dtype, str) and dtype.lower() != AUTO:
                if dtype.lower() not in DTYPES:
                    raise ValueError(
                        f"unknown precision {dtype!r} for {part}; use one of {sorted([*DTYPES, AUTO])}"
                    )
                dtype = DTYPES[dtype.lower()]
            dtypes[part] = dtype.lower() if isinstance(dtype, str) else dtype
        self._stage_dtypes = dtypes

    @property
    def activation_checkpointing(self) -> bool:
        return self.bb.activation_checkpointing

    @activation_checkpointing.setter
    def activation_checkpointing(self, enabled: bool) -> None:
        self.bb.activation_checkpointing = enabled

    def place(self) -> BiRefNetLite:
        """Moves each part to its device in `device_map` (nothing without one); returns self.

        A later `.to(device)` moves everything back onto one device.
        """
        if self.device_map is not None:
            backbone, decoder = self.device_map["backbone"], self.device_map["decoder"]
            self.bb.to(backbone)
            self.squeeze_module.to(decoder)
            self.decoder.to(decoder)
            self.decoder.ipt_blk1.to(backbone)
            self.decoder.conv_out1.to(backbone)
        return self

    def part_dtype(self, part: str, device: torch.device) -> torch.dtype | None:
        """A part's autocast dtype on a device ("auto" resolved for that device); None: not set."""
        dtype = (self.stage_dtypes or {}).get(part)
        return DTYPES[autocast_dtype(device.type)] if dtype == AUTO else dtype

    def _precision(self, part: str, device: torch.device) -> AbstractContextManager:
        """Autocast context of a part on a device (no change where the part has no dtype)."""
        dtype = self.part_dtype(part, device)
        if dtype is None:
            return nullcontext()
        if dtype == torch.float32:
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=dtype)

    def _enter(self, part: str, tensors: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
        """Moves activations to a part's device, then to float32 unless the part runs in low precision."""
        low_precision = self.part_dtype(part, device) not in (None, torch.float32)
        return [t.to(device) if low_precision else t.to(device).float() for t in tensors]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Swin features of the image and of its half-size copy, concatenated per stage.

        Returns:
            x1..x4, (B, lateral channels deepest last, ~H/4..~H/32, ~W/4..~W/32).
        """
        half = resize_to(x, (x.shape[-2] // 2, x.shape[-1] // 2))
        full_features, half_features = self.bb(x), self.bb(half)
        return [
            torch.cat([full, resize_to(small, full.shape[-2:])], dim=1)
            for full, small in zip(full_features, half_features)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor | TrainingOutputs:
        if self.device_map is None:
            backbone = decoder = x.device
        else:
            backbone, decoder = self.device_map["backbone"], self.device_map["decoder"]

        (x,) = self._enter("backbone", [x], backbone)
        with self._precision("backbone", backbone):
            features = self.encode(x)

        x_dec, *features = self._enter("decoder", [x, *features], decoder)
        with self._precision("decoder", decoder):
            x1, x2, x3, x4 = features
            x4 = torch.cat([resize_to(f, x4.shape[-2:]) for f in (x1, x2, x3)] + [x4], dim=1)
            recompute = self.activation_checkpointing and self.training and torch.is_grad_enabled()
            x4 = run_block(self.squeeze_module, x4, recompute)
            p1, sides, gradient_preds, gradient_labels = self.decoder(
                x_dec, (x1, x2, x3, x4), self.training, recompute
            )

        p1, x_head = self._enter("decoder", [p1, x], backbone)
        with self._precision("decoder", backbone):
            logits = self.decoder.head(p1, x_head)

        def out(tensors):
            return tuple(o.to(backbone, torch.float32 if self.stage_dtypes else None) for o in tensors)

        if self.training:
            return TrainingOutputs(*out([logits]), out(sides), out(gradient_preds), out(gradient_labels))
        return out([logits])[0]
