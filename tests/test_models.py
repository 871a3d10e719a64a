"""One parametrised suite over every registered model, in the spirit of smp's model tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from skinseg.export.onnx import export_onnx, has_dynamic_size, onnx_probabilities
from skinseg.models import MODELS, ProbabilityHead, create_model
from skinseg.module import load_weights
from skinseg.outputs import TrainingOutputs, final_logits
from skinseg.quant import ENGINES, calibrate, convert, prepare_ptq, quantized_engine

from .conftest import TINY_NETS

PARAMETERS = {"u2net": 44_009_869, "u2netp": 1_131_181, "dlmv": 11_020_337, "birefnet_lite": 44_313_720,
              "unet": 2_612_177, "deeplabv3": 2_152_946}
# outputs in training mode: the final logits, then side outputs
TRAINING_OUTPUTS = {"u2net": 7, "u2netp": 7, "dlmv": 1, "birefnet_lite": 10, "unet": 1, "deeplabv3": 1}



def test_registry_covers_every_model():
    assert set(MODELS) == set(PARAMETERS) == set(TINY_NETS) == set(TRAINING_OUTPUTS)


def test_a_network_is_one_module_and_one_model_config():
    """Every registered network has its configs/model/NAME.yaml and every model config a network; the
    lists of models elsewhere (benches, flops, configs) are read from the registry."""
    from skinseg.bench.train import benchmarked_models
    from skinseg.models import register

    from .conftest import ROOT

    assert {path.stem for path in (ROOT / "configs" / "model").glob("*.yaml")} == set(MODELS)
    assert set(benchmarked_models()) == {name for name in MODELS if (ROOT / "configs" / "experiment" /
                                                                     f"{name}_public.yaml").is_file()}
    with pytest.raises(ValueError, match="registered twice"):
        register("u2netp")(nn.Identity)
    assert MODELS["u2netp"] is not nn.Identity


def test_unknown_name_lists_valid_names():
    with pytest.raises(KeyError, match="birefnet_lite, deeplabv3, dlmv, u2net, u2netp, unet"):
        create_model("u3net")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_parameter_count_matches_original(name):
    model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[name]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_tiny_variant_is_much_smaller(name):
    tiny = create_model(name, **TINY_NETS[name])
    assert sum(p.numel() for p in tiny.parameters()) < PARAMETERS[name] / 20


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_backward_at_odd_size(name):
    torch.manual_seed(0)
    model = create_model(name)
    x = torch.rand(2, 3, 97, 131, requires_grad=True)
    model.train()
    outputs = model(x)
    outputs = outputs.tensors() if isinstance(outputs, TrainingOutputs) else (outputs,)
    assert len(outputs) == TRAINING_OUTPUTS[name]
    assert outputs[0].shape == (2, 1, 97, 131)
    for output in outputs:
        assert output.shape[:2] == (2, 1) and torch.isfinite(output).all()
    sum(o.mean() for o in outputs).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads), "every parameter takes part in the loss"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_side_outputs_only_in_training(name):
    model = create_model(name, **TINY_NETS[name])
    x = torch.rand(2, 3, 64, 80)
    model.train()
    train_out = model(x)
    model.eval()
    with torch.no_grad():
        eval_out = model(x)
    assert isinstance(eval_out, torch.Tensor) and eval_out.shape == (2, 1, 64, 80)
    expected = len(model.side_heads) + 1 if hasattr(model, "side_heads") else TRAINING_OUTPUTS[name]  # tiny U²Nets
    if expected > 1:
        assert isinstance(train_out, TrainingOutputs) and len(train_out.tensors()) == expected
    else:
        assert isinstance(train_out, torch.Tensor)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_eval_output_is_the_fused_training_output(name):
    model = create_model(name, **TINY_NETS[name]).eval()
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        eval_out = model(x)
        model.training = True  # the top module only: layers keep eval-mode statistics
        train_out = model(x)
    torch.testing.assert_close(final_logits(train_out), eval_out)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_four_channel_input(name):
    model = create_model(name, in_channels=4, **TINY_NETS[name]).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 4, 64, 64)).shape == (1, 1, 64, 64)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_export_parity_fp32_and_every_int8_engine(tmp_path, name):
    """fp32 ONNX matches PyTorch to 1e-4 (at an odd size where the graph is dynamic); each engine's
    int8 ONNX matches PyTorch int8, or quantization refuses the model with its reason."""
    torch.manual_seed(0)
    head = ProbabilityHead(create_model(name, **TINY_NETS[name])).eval()
    images = torch.rand(2, 3, 72, 88) if has_dynamic_size(head) else torch.rand(2, 3, 64, 64)
    fp32 = export_onnx(head, tmp_path / f"{name}.onnx", 64)
    with torch.inference_mode():
        expected = head(images).numpy()
    assert np.abs(onnx_probabilities(fp32, images.numpy()) - expected).max() <= 1e-4
    if name == "birefnet_lite":
        with pytest.raises(ValueError, match="cannot be quantized.*deform_conv2d has no int8 kernel"):
            prepare_ptq(head.net, "x86", 64)
        return
    for engine in ENGINES:
        prepared = prepare_ptq(head.net, engine, 64)
        calibrate(prepared, [torch.rand(2, 3, 64, 64) for _ in range(2)])
        int8 = ProbabilityHead(convert(prepared, engine)).eval()
        with quantized_engine(engine):
            path = export_onnx(int8, tmp_path / f"{name}.{engine}.onnx", 64)
            with torch.inference_mode():
                expected_int8 = int8(images).numpy()
        assert np.abs(onnx_probabilities(path, images.numpy()) - expected_int8).mean() <= 0.01, engine


def test_pretrained_weights_load_from_state_dict_and_checkpoints(tmp_path):
    source = create_model("u2netp", **TINY_NETS["u2netp"])
    bare = tmp_path / "bare.pth"
    torch.save(source.state_dict(), bare)
    lightning = tmp_path / "run.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in source.state_dict().items()}, "epoch": 3}, lightning)
    original = tmp_path / "original.pth.tar"
    torch.save({"state": {"state_dict": source.state_dict(), "epoch_count": 5}}, original)
    for path in (bare, lightning, original):
        target = create_model("u2netp", **TINY_NETS["u2netp"])
        load_weights(target, path)
        for key, value in source.state_dict().items():
            torch.testing.assert_close(target.state_dict()[key], value)


def test_pretrained_errors_are_clear(tmp_path):
    model = create_model("u2netp", **TINY_NETS["u2netp"])
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_weights(model, tmp_path / "missing.ckpt")
    other = tmp_path / "dlmv.pth"
    torch.save(create_model("dlmv", **TINY_NETS["dlmv"]).state_dict(), other)
    with pytest.raises(ValueError, match="does not fit U2NetP"):
        load_weights(model, other)


def test_dlmv_running_statistics_follow_a_network_trained_from_scratch():
    """By default DLMV's eval mode keeps up with train mode; torchvision's momentum 0.01 would not."""
    torch.manual_seed(0)
    batch = torch.rand(16, 3, 64, 64) * 0.5 + 0.5
    gaps = {}
    cases = (("default", {}, 0.1), ("torchvision", {"bn_momentum": 0.01}, 0.01))
    for name, momentum_args, expected_momentum in cases:
        model = create_model("dlmv", **TINY_NETS["dlmv"], **momentum_args)
        assert {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {expected_momentum}
        model.train()
        for dropout in (m for m in model.modules() if isinstance(m, torch.nn.Dropout)):
            dropout.eval()  # only BatchNorm may differ between the two modes
        with torch.no_grad():
            for _ in range(150):
                training_logits = model(batch)
            gaps[name] = (model.eval()(batch) - training_logits).abs().mean().item()
    assert gaps["default"] < 0.3 * gaps["torchvision"]
