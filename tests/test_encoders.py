"""Pretrained encoders: weights by name or path, strict keys, the PASCAL head, the input
normalisation they carry, and the fine-tuning options of the LightningModule."""

from __future__ import annotations

import json
import os
import re
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import mobilenet_v2

from skinseg.checkpoints import load_network
from skinseg.errors import MissingFileError, NotAModelError, UsageError
from skinseg.models import create_model
from skinseg.models.encoders import IMAGENET_MEAN, IMAGENET_STD, read_encoder_weights
from skinseg.module import SkinSegModule
from skinseg.training import train

from .conftest import (
    FP32,
    PUBLIC_DATA,
    ROOT,
    TINY_NETS,
    TINY_PRETRAINED_MEAN,
    TINY_PRETRAINED_STD,
    compose_train,
    tiny_overrides,
)
from .test_errors import run_entry_point

WEIGHTS = ROOT.parent / "shared" / "weights"
PASCAL, IMAGENET = WEIGHTS / "deeplabv3_mobilenet_v2_pascal.pt", WEIGHTS / "mobilenet_v2_imagenet.pt"
needs_weights = pytest.mark.skipif(not PASCAL.is_file(), reason=f"no pretrained weights in {WEIGHTS}")
TINY_ENCODER = {"width_mult": TINY_NETS["deeplabv3"]["width_mult"]}


def equal_states(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    own = module.state_dict()
    return all(torch.equal(own[key], value) for key, value in state.items())


@needs_weights
def test_offline_files_load_whole_with_their_normalisation():
    pascal = torch.load(PASCAL, weights_only=True)
    net = create_model("deeplabv3", encoder_weights=PASCAL)
    assert net.pretrained_parts == ["encoder", "head"]
    assert equal_states(net.encoder.features, pascal["backbone"])
    head = {key: value for key, value in pascal["head"].items() if not key.startswith("classifier")}
    assert equal_states(net.head, head)
    person = pascal["meta"]["person_class"]
    expected = pascal["head"]["classifier.weight"][person] - pascal["head"]["classifier.weight"][0]
    torch.testing.assert_close(net.head.classifier.weight[0], expected)
    assert net.input_mean == net.input_std == (128 / 255,) * 3

    imagenet = torch.load(IMAGENET, weights_only=True)["backbone"]
    for name in ("unet", "deeplabv3"):  # the 1x1 1280-channel block 18 is left out
        net = create_model(name, encoder_weights=IMAGENET)
        assert equal_states(net.encoder.features, {k: v for k, v in imagenet.items() if not k.startswith("18.")})
        assert net.pretrained_parts == ["encoder"] and net.input_mean == net.input_std == (0.5,) * 3


@needs_weights
@pytest.mark.public_data
def test_the_pascal_network_starts_out_segmenting_people():
    """Loaded into deeplabv3 (skin logit = person - background), the PASCAL model marks the ccp
    photos' people: a wrong stride, dilation or module order would not (measured 0.65-0.94)."""
    root = PUBLIC_DATA / "ccp"
    if not (root / "persons").is_dir():
        pytest.skip(f"no {root}")
    torch.set_num_threads(2)
    net = create_model("deeplabv3", encoder_weights=PASCAL).eval()
    mean, std = (torch.tensor(values).view(1, 3, 1, 1) for values in (net.input_mean, net.input_std))
    ious = []
    for stem in json.loads((root / "splits.json").read_text())["val"][:4]:
        photo = Image.open(root / "images" / f"{stem}.jpg").convert("RGB")
        person = np.asarray(Image.open(root / "persons" / f"{stem}.png")) > 127
        x = torch.from_numpy(np.array(photo.resize((513, 513)))).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            logits = net((x - mean) / std)[0, 0].numpy()
        predicted = np.asarray(Image.fromarray((logits > 0).astype(np.uint8)).resize(photo.size)) > 0
        ious.append((predicted & person).sum() / (predicted | person).sum())
    assert np.mean(ious) >= 0.7, ious


def test_a_fresh_low_level_skip_predicts_what_the_head_does(tiny_pretrained):
    with_skip = create_model("deeplabv3", encoder_weights=tiny_pretrained, **TINY_NETS["deeplabv3"]).eval()
    without = create_model("deeplabv3", encoder_weights=tiny_pretrained, low_level_skip=False,
                           **TINY_NETS["deeplabv3"]).eval()
    x = torch.rand(2, 3, 70, 90)
    with torch.no_grad():
        torch.testing.assert_close(with_skip(x), without(x))
    assert with_skip.input_mean == tuple(value / 255 for value in TINY_PRETRAINED_MEAN)
    assert with_skip.input_std == tuple(value / 255 for value in TINY_PRETRAINED_STD)


def test_unet_takes_the_encoder_of_a_deeplab_file(tiny_pretrained):
    net = create_model("unet", encoder_weights=tiny_pretrained, **TINY_NETS["unet"])
    assert net.pretrained_parts == ["encoder"]
    assert equal_states(net.encoder.features, torch.load(tiny_pretrained, weights_only=True)["backbone"])


@pytest.mark.parametrize(("change", "message"), [
    ("drop", "1 missing keys"),
    ("shape", r"\d+ keys of another shape"),
    ("extra", "1 unexpected keys"),
])
def test_weights_that_do_not_fit_are_refused_by_name(tiny_pretrained, tmp_path, change, message):
    state = torch.load(tiny_pretrained, weights_only=True)
    if change == "drop":
        del state["backbone"]["3.conv.0.0.weight"]
    elif change == "shape":
        state["backbone"] = create_model("unet", width_mult=0.25).encoder.features.state_dict()
    else:
        state["backbone"]["3.conv.9.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    expected = rf"encoder_weights={re.escape(str(path))} does not fit the encoder: {message}"
    with pytest.raises(UsageError, match=expected):
        create_model("unet", encoder_weights=path, **TINY_NETS["unet"])


def test_later_stages_are_allowed_and_other_inputs_are_not(tiny_pretrained, tmp_path):
    state = torch.load(tiny_pretrained, weights_only=True)
    state["backbone"]["18.0.weight"] = torch.zeros(1280, 32, 1, 1)  # MobileNetV2's block 18, unused
    path = tmp_path / "with_block_18.pt"
    torch.save(state, path)
    create_model("unet", encoder_weights=path, **TINY_NETS["unet"])
    with pytest.raises(UsageError, match="0.0.weight"):  # a 4-channel stem cannot take RGB weights
        create_model("unet", encoder_weights=path, in_channels=4, **TINY_NETS["unet"])
    with pytest.raises(UsageError, match="head has 21 classes, the network 3"):
        create_model("deeplabv3", encoder_weights=path, num_classes=3, **TINY_NETS["deeplabv3"])


def test_torchvision_state_dicts_load_with_imagenet_normalisation(tmp_path):
    classifier = mobilenet_v2(**TINY_ENCODER)
    path = tmp_path / "torchvision.pth"
    torch.save(classifier.state_dict(), path)
    weights = read_encoder_weights(path, "mobilenet_v2")
    assert (weights.mean, weights.std) == (IMAGENET_MEAN, IMAGENET_STD) and not weights.head
    net = create_model("deeplabv3", encoder_weights=path, **TINY_NETS["deeplabv3"])
    assert net.pretrained_parts == ["encoder"]
    assert equal_states(net.encoder.features, {key.removeprefix("features."): value
                                               for key, value in classifier.state_dict().items()
                                               if key.startswith("features.") and not key.startswith("features.18.")})
    torch.save({**classifier.state_dict(), "fc.weight": torch.zeros(1)}, path)
    with pytest.raises(UsageError, match="keys of another network"):
        read_encoder_weights(path, "mobilenet_v2")


def test_imagenet_by_name_downloads_or_names_the_local_file(monkeypatch):
    import torchvision.models._api as torchvision_api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url", offline)
    with pytest.raises(UsageError, match=r"could not download MobileNet_V2_Weights.IMAGENET1K_V1 \(Name or service "
                                         r"not known\); offline, .*encoder_weights=\S+/mobilenet_v2_imagenet.pt"):
        read_encoder_weights("imagenet", "mobilenet_v2")
    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url", lambda url, **kwargs: mobilenet_v2().state_dict())
    net = create_model("unet", encoder_weights="imagenet")
    assert (net.input_mean, net.input_std) == (IMAGENET_MEAN, IMAGENET_STD)


def test_train_py_offline_imagenet_is_one_error_line(tmp_path, cache_dir):
    # a proxy that refuses connections: offline here and on any CI machine
    env = {"TORCH_HOME": str(tmp_path / "torch"), "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    result = run_entry_point("train.py", ["model=unet", FP32, f"hydra.run.dir={tmp_path / 'run'}"], cache_dir, **env)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "model.encoder_weights=imagenet" in errors[0]
    assert "mobilenet_v2_imagenet.pt" in errors[0]
    assert "Traceback" not in result.stderr


def test_unreadable_weight_files_are_named(tmp_path):
    with pytest.raises(MissingFileError, match="nope.pt: no such file"):
        read_encoder_weights(tmp_path / "nope.pt", "mobilenet_v2")
    text = tmp_path / "text.pt"
    text.write_text("not weights")
    with pytest.raises(NotAModelError, match="cannot be read as a state dict"):
        read_encoder_weights(text, "mobilenet_v2")
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, other)
    with pytest.raises(NotAModelError, match="expected a torchvision state dict"):
        read_encoder_weights(other, "mobilenet_v2")
    with pytest.raises(KeyError, match="valid encoders: mobilenet_v2"):
        create_model("unet", encoder="resnet999")


def test_module_records_the_weights_normalisation(tiny_pretrained):
    net = {"name": "deeplabv3", **TINY_NETS["deeplabv3"]}
    module = SkinSegModule(net, encoder_weights=str(tiny_pretrained))
    assert module.hparams.input_mean == [value / 255 for value in TINY_PRETRAINED_MEAN]
    assert module.hparams.input_std == [value / 255 for value in TINY_PRETRAINED_STD]
    explicit = SkinSegModule(net, encoder_weights=str(tiny_pretrained), input_mean=[0.5] * 3, input_std=[0.5] * 3)
    assert explicit.hparams.input_mean == [0.5] * 3
    assert SkinSegModule(net).hparams.input_mean is None  # random weights: no normalisation
    with pytest.raises(UsageError, match="u2netp has no pretrained encoder"):
        SkinSegModule({"name": "u2netp"}, encoder_weights=str(tiny_pretrained))
    with pytest.raises(UsageError, match="encoder_lr_scale must be > 0"):
        SkinSegModule(net, encoder_lr_scale=0)


@pytest.mark.parametrize("freeze_steps", [2, 1])
def test_fine_tuning_freezes_the_encoder_first_and_keeps_pretrained_statistics(tiny_pretrained, tmp_path, cache_dir,
                                                                              freeze_steps):
    cfg = compose_train([
        "model=deeplabv3", *tiny_overrides("deeplabv3"), f"model.encoder_weights={tiny_pretrained}",
        "model.freeze_pretrained_bn=true", "model.encoder_lr_scale=0.1", f"model.freeze_encoder_steps={freeze_steps}",
        "data.demo.num_train=8", "data.demo.num_val=4", "model.input_size=64", "data.batch_size=4",
        "data.num_workers=0", "trainer.max_epochs=1", "callbacks.rich_progress_bar=null",
    ], tmp_path, cache_dir)
    summary = train(cfg)
    checkpoint = torch.load(summary["last_checkpoint"], weights_only=True)
    state = {key.removeprefix("net."): value for key, value in checkpoint["state_dict"].items()}
    pretrained = torch.load(tiny_pretrained, weights_only=True)
    batchnorm = {key: value for key, value in pretrained["backbone"].items() if "running" in key}
    assert all(torch.equal(state[f"encoder.features.{key}"], value) for key, value in batchnorm.items())
    convs = {key: value for key, value in pretrained["backbone"].items() if key.endswith("0.weight")}
    encoder_trained = any(not torch.equal(state[f"encoder.features.{key}"], value) for key, value in convs.items())
    assert encoder_trained is (freeze_steps < 2)  # two steps in the epoch
    assert not torch.equal(state["head.project.0.weight"], pretrained["head"]["project.0.weight"])
    groups = checkpoint["optimizer_states"][0]["param_groups"]
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(0.1 * groups[0]["lr"])
    trained = load_network(summary["best_checkpoint"])  # rebuilt without the weights file
    assert trained.hparams["input_mean"] == [value / 255 for value in TINY_PRETRAINED_MEAN]
    assert "encoder_weights" not in trained.hparams["net"] and os.fspath(tiny_pretrained) in str(trained.hparams)
