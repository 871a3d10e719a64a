"""Int8 quantization: PTQ export per engine, QAT fine-tuning and its export, int8 state round trip."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from skinseg.checkpoints import load_network
from skinseg.export.checkpoint import export_checkpoint
from skinseg.export.cli import main as export_main
from skinseg.export.onnx import onnx_probabilities
from skinseg.inference import Session, TorchSession
from skinseg.models import ProbabilityHead
from skinseg.quant import ENGINES, QuantizationAwareTraining, load_int8, quantized_engine
from skinseg.training import train

from .conftest import compose_train, exit_2_message, tiny_overrides

# U²Net is the same class as U²NetP (deeper, wider): its int8 export parity for every engine is
# in test_models, and repeating PTQ and QAT here for it would add a minute to the suite
TINY = {name: tiny_overrides(name) for name in ("u2netp", "dlmv", "deeplabv3")}
DEMO = ["data.demo.num_train=32", "data.demo.num_val=8", "model.input_size=64", "data.batch_size=4",
        "data.num_workers=0", "callbacks.rich_progress_bar=null"]
# int8 vs fp32 on a briefly trained tiny model: mean |Δp| at the model's input size, and the
# fraction of full-resolution pixels on the same side of 0.5
INT8_MEAN_ABS_TOLERANCE = 0.03
INT8_SAME_DECISION = 0.95


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir, tiny_pretrained):
    """A tiny checkpoint per model, trained 6 epochs on demo data (fp32: a fair reference for int8).

    Enough to learn something (U²NetP: val mIoU@0.5 ~0.3, MAE ~45 against ~130 untrained).
    """
    paths = {}
    for name, extra in TINY.items():
        folder = tmp_path_factory.mktemp(f"float_{name}")
        if name == "deeplabv3":  # from a weights file, its encoder at a tenth of the rate
            extra = [*extra, f"model.encoder_weights={tiny_pretrained}", "model.encoder_lr_scale=0.1"]
        cfg = compose_train([f"model={name}", *extra, *DEMO, "trainer.max_epochs=6", "model.optimizer.lr=1e-2",
                             "trainer.precision=32-true"], folder, cache_dir)
        paths[name] = train(cfg)["best_checkpoint"]
    return paths


@pytest.mark.parametrize("name", sorted(TINY))
def test_ptq_export_for_every_engine_agrees_with_fp32(trained, tmp_path, name):
    card = export_checkpoint(trained[name], tmp_path, engines=ENGINES, calibration_images=8)
    assert set(card["int8"]) == set(ENGINES)
    scores = card["validation_at_full_resolution"]["scores"]
    for engine, info in card["int8"].items():
        assert info["method"] == "ptq" and info["calibration_images"] == 8
        assert info["onnx_vs_torch_int8"]["mean_abs"] <= 0.02
        assert info["vs_float_at_model_size"]["mean_abs"] <= INT8_MEAN_ABS_TOLERANCE, info
        assert scores[f"int8 {engine}"]["same_decision"] >= INT8_SAME_DECISION
        assert abs(scores[f"int8 {engine}"]["miou"] - scores["fp32"]["miou"]) <= 0.05
        int8_onnx = tmp_path / f"{name}.{engine}.int8.onnx"
        graph = onnx.load(str(int8_onnx)).graph
        assert sum(node.op_type == "QuantizeLinear" for node in graph.node) > 0
        metadata = {prop.key: prop.value for prop in onnx.load(str(int8_onnx)).metadata_props}
        assert metadata["skinseg.quantization"] == f"ptq/{engine}"
        assert card["files"][int8_onnx.name]["bytes"] > 0
        # dynamic batch, height and width survive quantization
        probabilities = onnx_probabilities(int8_onnx, np.random.rand(2, 3, 48, 80).astype(np.float32))
        assert probabilities.shape == (2, 1, 48, 80)
    assert json.loads((tmp_path / f"{name}.json").read_text())["int8"].keys() == card["int8"].keys()


def test_int8_state_round_trip_matches_the_onnx_model(trained, tmp_path):
    card = export_checkpoint(trained["u2netp"], tmp_path, engines=["qnnpack"], calibration_images=4, eval_images=0)
    assert card["validation_at_full_resolution"] == {}  # eval_images=0 skips the scoring
    model, engine = load_int8(tmp_path / "u2netp.qnnpack.int8.pt")
    images = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    with torch.inference_mode(), quantized_engine(engine):
        expected = ProbabilityHead(model)(torch.from_numpy(images)).numpy()
    got = onnx_probabilities(tmp_path / "u2netp.qnnpack.int8.onnx", images)
    assert np.abs(got - expected).mean() <= 0.02


def test_export_refuses_to_overwrite_and_unknown_engines(trained, tmp_path, capsys):
    export_checkpoint(trained["dlmv"], tmp_path)
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_checkpoint(trained["dlmv"], tmp_path)
    before = (tmp_path / "dlmv.onnx").stat().st_mtime_ns
    error = exit_2_message(export_main, ["--ckpt", trained["dlmv"], "--out", str(tmp_path)], capsys)
    assert "already exist" in error and (tmp_path / "dlmv.onnx").stat().st_mtime_ns == before
    assert export_main(["--ckpt", trained["dlmv"], "--out", str(tmp_path), "--overwrite", "--quantize", "x86",
                        "--calibration-images", "4", "--eval-images", "2"]) == 0
    out = capsys.readouterr().out
    assert "int8 x86 (ptq)" in out and "mIoU" in out and "dlmv.x86.int8.onnx" in out
    with pytest.raises(KeyError, match="valid engines"):
        export_checkpoint(trained["dlmv"], tmp_path / "other", engines=["tensorrt"])


@pytest.mark.parametrize("name", sorted(TINY))
def test_qat_fine_tunes_and_exports_its_engine(trained, tmp_path, cache_dir, name):
    cfg = compose_train([f"model={name}", *TINY[name], *DEMO, "qat=qnnpack", "trainer.max_epochs=3",
                         f"model.pretrained={trained[name]}"], tmp_path / "run", cache_dir)
    assert cfg.model.optimizer.lr == 1e-4
    result = train(cfg)
    assert result["precision"] == "32-true: quantization-aware training fakes int8 in fp32"
    checkpoint = torch.load(result["best_checkpoint"], weights_only=True)
    assert checkpoint["skinseg_quantization"] == {"method": "qat", "engine": "qnnpack", "size": 64}
    network = load_network(result["last_checkpoint"])
    assert network.quantization["engine"] == "qnnpack"
    # after freeze_observer_epochs=2 epochs the observers stopped
    observers = [m for m in network.net.modules() if hasattr(m, "observer_enabled")]
    assert observers and all(int(m.observer_enabled[0]) == 0 for m in observers)

    card = export_checkpoint(result["best_checkpoint"], tmp_path / "out", calibration_images=4)
    assert list(card["int8"]) == ["qnnpack"] and card["int8"]["qnnpack"]["method"] == "qat"
    assert not (tmp_path / "out" / f"{name}.onnx").exists()  # a QAT model has no fp32 export
    scores = card["validation_at_full_resolution"]["scores"]
    assert scores["int8 qnnpack"]["same_decision"] >= INT8_SAME_DECISION
    with pytest.raises(ValueError, match="only be exported for that engine"):
        export_checkpoint(result["best_checkpoint"], tmp_path / "other", engines=["x86"])

    # TorchSession runs the fake-quantized graph; it agrees with the int8 ONNX Session
    image = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    fake = TorchSession(result["best_checkpoint"]).predict(image)
    int8 = Session(tmp_path / "out" / f"{name}.qnnpack.int8.onnx", normalize="none").predict(image)
    assert np.abs(fake.astype(int) - int8).mean() <= 8


def test_qat_callback_rejects_bad_settings(cfg_factory):
    with pytest.raises(KeyError, match="valid engines"):
        QuantizationAwareTraining(engine="tflite")
    with pytest.raises(ValueError, match="freeze_bn_epochs"):
        QuantizationAwareTraining(freeze_bn_epochs=-1)
    cfg = cfg_factory(["qat=x86", "trainer.precision=bf16-mixed", "trainer.max_epochs=1", *DEMO, *TINY["u2netp"]])
    with pytest.raises(ValueError, match="precision=32"):
        train(cfg)


def test_the_layers_that_read_the_image_stay_in_float():
    """MobileNetV2's stem and first block read the colours skin is told by: int8 keeps them (and logits) in float."""
    from torch.ao.nn import quantized as nnq

    from skinseg.models import create_model
    from skinseg.quant.fx import calibrate, convert, float_layers, prepare_ptq

    net = create_model(name="unet", width_mult=0.5, decoder_channels=[16, 8, 8, 8]).eval()
    kept = float_layers(net)
    assert {"encoder.features.0", "encoder.features.1", "classifier"} <= set(kept)
    assert not any(name.startswith("encoder.features.2") for name in kept)
    prepared = prepare_ptq(net, "x86", 64)
    calibrate(prepared, [torch.rand(2, 3, 64, 64)])
    quantized = convert(prepared, "x86")
    int8_convs = [module for module in quantized.modules() if isinstance(module, nnq.Conv2d)]
    assert int8_convs and all(conv.in_channels != 3 for conv in int8_convs)  # the stem's 3-channel conv is float
    with quantized_engine("x86"), torch.no_grad():
        assert quantized(torch.rand(1, 3, 64, 64)).shape == (1, 1, 64, 64)
