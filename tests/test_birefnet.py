"""BiRefNet_lite and its Swin backbone: shapes, training outputs, size, device split, precision,
activation checkpointing."""

from __future__ import annotations

import pytest
import torch

from skinseg.models.birefnet_lite import BiRefNetLite, image_tiles
from skinseg.models.swin import SwinTransformer
from skinseg.outputs import TrainingOutputs

from .conftest import TINY_NETS

TINY = TINY_NETS["birefnet_lite"]


@pytest.fixture(autouse=True)
def one_thread():
    """Runs each test on one thread: with two, the many tiny ops wait on each other far longer
    than they compute when the cores are shared (a test took 30 s instead of 1 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**kwargs) -> BiRefNetLite:
    torch.manual_seed(0)
    return BiRefNetLite(**TINY, **kwargs)


def training_loss(outputs: TrainingOutputs) -> torch.Tensor:
    return sum(o.float().square().mean() for o in outputs.tensors())


def test_full_size_parameter_count_matches_original():
    assert sum(p.numel() for p in BiRefNetLite().parameters()) == 44_313_720


def test_swin_t_stage_shapes_at_odd_size():
    swin = SwinTransformer(embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 2)).eval()
    with torch.no_grad():
        features = swin(torch.rand(1, 3, 97, 131))
    assert [tuple(f.shape) for f in features] == [
        (1, 24, 25, 33),
        (1, 48, 13, 17),
        (1, 96, 7, 9),
        (1, 192, 4, 5),
    ]


def test_image_tiles_stack_columns_then_rows():
    image = torch.arange(2 * 4 * 6, dtype=torch.float32).view(1, 2, 4, 6)
    tiles = image_tiles(image, 2, (2, 3))
    assert tiles.shape == (1, 8, 2, 3)
    for row in range(2):
        for column in range(2):
            for channel in range(2):
                tile = image[0, channel, 2 * row : 2 * row + 2, 3 * column : 3 * column + 3]
                torch.testing.assert_close(tiles[0, (column * 2 + row) * 2 + channel], tile)


@pytest.mark.parametrize("size", [(64, 64), (72, 88)])
def test_forward_shapes_and_backward_reach_every_parameter(size):
    model = tiny()
    x = torch.rand(2, 3, *size)
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 1, *size)

    model.train()
    outputs = model(x)
    assert isinstance(outputs, TrainingOutputs) and len(outputs.tensors()) == 10
    H, W = size
    sides = [(-(-H // s), -(-W // s)) for s in (32, 16, 8)]
    assert [o.shape[-2:] for o in outputs.tensors()] == [size, *sides, *sides, size, size, size]
    assert all(o.shape[:2] == (2, 1) and torch.isfinite(o).all() for o in outputs.tensors())
    training_loss(outputs).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


def test_eval_output_is_the_first_training_output():
    model = tiny().eval()
    x = torch.rand(2, 3, 72, 88)
    with torch.no_grad():
        eval_out = model(x)
        model.training = True  # the top module only: layers keep eval-mode statistics
        train_out = model(x)
    assert isinstance(train_out, TrainingOutputs) and len(train_out.sides) == 3
    torch.testing.assert_close(train_out.logits, eval_out)


def test_cpu_device_map_equals_the_unsplit_model_exactly():
    model = tiny().eval()
    split = tiny(device_map={"backbone": "cpu", "decoder": "cpu"}).place().eval()
    split.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 72, 88)
    with torch.no_grad():
        assert torch.equal(split(x), model(x))
    model.train()
    split.train()
    torch.manual_seed(1)
    expected = model(x)
    torch.manual_seed(1)
    for got, want in zip(split(x).tensors(), expected.tensors(), strict=True):
        assert torch.equal(got, want)


def test_device_map_and_precision_are_validated():
    with pytest.raises(ValueError, match="device_map"):
        tiny(device_map={"backbone": "cpu"})
    with pytest.raises(ValueError, match="precision"):
        tiny(stage_dtypes={"decoder": "int4"})


@pytest.mark.parametrize("decoder_dtype", ["bf16", "fp32"])
def test_per_stage_bf16_autocast_runs(decoder_dtype):
    model = tiny(
        device_map={"backbone": "cpu", "decoder": "cpu"},
        stage_dtypes={"backbone": torch.bfloat16, "decoder": decoder_dtype},
    )
    model.place().train()
    outputs = model(torch.rand(2, 3, 64, 64))
    assert all(o.dtype == torch.float32 and torch.isfinite(o).all() for o in outputs.tensors())
    training_loss(outputs).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 1, 64, 64)


def test_activation_checkpointing_gives_the_same_gradients():
    x = torch.rand(2, 3, 64, 64)
    grads = []
    for checkpointing in (False, True):
        model = tiny(activation_checkpointing=checkpointing).train()
        torch.manual_seed(1)  # the same dropout masks; checkpointing replays them
        training_loss(model(x)).backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("kernel_size", [1, 3, 7])
def test_sampled_deformable_conv_equals_torchvision(kernel_size):
    """Same values and gradients as torchvision's kernel, offsets reaching outside the image included."""
    from torchvision.ops import deform_conv2d

    from skinseg.models.birefnet_lite import deform_conv2d_sampled

    generator = torch.Generator().manual_seed(kernel_size)
    taps, padding = kernel_size**2, kernel_size // 2
    inputs = [
        torch.randn(2, 5, 11, 13, generator=generator, dtype=torch.float64),
        3 * torch.randn(2, 2 * taps, 11, 13, generator=generator, dtype=torch.float64),
        torch.randn(4, 5, kernel_size, kernel_size, generator=generator, dtype=torch.float64),
        torch.randn(4, generator=generator, dtype=torch.float64),
        torch.rand(2, taps, 11, 13, generator=generator, dtype=torch.float64),
    ]
    results = []
    for function in ("torchvision", "sampled"):
        x, offset, weight, bias, mask = [t.clone().requires_grad_() for t in inputs]
        if function == "torchvision":
            out = deform_conv2d(x, offset, weight, bias, padding=(padding, padding), mask=mask)
        else:
            out = deform_conv2d_sampled(x, offset, weight, bias, padding, mask)
        out.square().sum().backward()
        results.append([out, x.grad, offset.grad, weight.grad, bias.grad, mask.grad])
    for expected, actual in zip(*results):
        torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-9)
