"""Every config in configs/ composes, and every object it describes instantiates."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from skinseg.data import SkinDataModule
from skinseg.module import SkinSegModule
from skinseg.settings import TRAINER_RULES, check_setting_ranges, check_setting_types
from skinseg.training import instantiate_list, resolve_hardware, unset_keys

from .conftest import CONFIGS, PRETRAINED_ENCODER, SHARED_WEIGHTS


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONFIGS / group).glob("*.yaml"))


def offline(model: str) -> list[str]:
    """The override that builds `model` without downloading its default ImageNet encoder (none here)."""
    return ["model.encoder_weights=null"] if model in PRETRAINED_ENCODER else []


@pytest.mark.parametrize("model", options("model"))
def test_model_configs(cfg_factory, model):
    if model in PRETRAINED_ENCODER:
        assert cfg_factory([f"model={model}"]).model.encoder_weights == "imagenet"
    cfg = cfg_factory([f"model={model}", *offline(model)])
    module = instantiate(cfg.model, _convert_="all")
    assert isinstance(module, SkinSegModule)
    assert cfg.model.net.name == model


@pytest.mark.parametrize("data", options("data"))
def test_data_configs(cfg_factory, tmp_path, data):
    overrides = [f"data={data}"] + ([f"data.root={tmp_path}"] if data == "folder" else [])
    cfg = cfg_factory(overrides)
    assert isinstance(instantiate(cfg.data, _convert_="all"), SkinDataModule)


@pytest.mark.parametrize("trainer", options("trainer"))
def test_trainer_configs(cfg_factory, trainer):
    cfg = cfg_factory([f"trainer={trainer}", "trainer.precision=auto"])
    if cfg.trainer.accelerator == "gpu":
        from skinseg.hardware import resolve_precision

        # without a GPU here: every other setting must still be a valid Trainer argument, and
        # auto must pick a CUDA precision (bf16 where the card has it, else fp16 mixed)
        cpu_trainer = instantiate(cfg.trainer, accelerator="cpu", devices=1, precision="32-true", _convert_="all")
        assert isinstance(cpu_trainer, L.Trainer)
        assert resolve_precision(cfg.trainer.precision, "gpu", cuda=True, cuda_bf16=True).precision == "bf16-mixed"
        assert resolve_precision(cfg.trainer.precision, "gpu", cuda=True, cuda_bf16=False).precision == "16-mixed"
        return
    assert isinstance(instantiate(cfg.trainer, precision="32-true", _convert_="all"), L.Trainer)


@pytest.mark.parametrize("logger", options("logger"))
def test_logger_configs(cfg_factory, logger):
    cfg = cfg_factory([f"logger={logger}"])
    loggers = instantiate_list(cfg.logger)
    assert loggers
    if logger == "wandb":
        assert cfg.logger.wandb.offline is True


@pytest.mark.parametrize("callbacks", options("callbacks"))
def test_callback_configs(cfg_factory, callbacks):
    cfg = cfg_factory([f"callbacks={callbacks}"])
    built = instantiate_list(cfg.callbacks)
    assert all(isinstance(callback, L.Callback) for callback in built)
    if callbacks == "default":
        assert len(built) == 4


@pytest.mark.parametrize("debug", [name for name in options("debug") if name != "default"])
def test_debug_configs(cfg_factory, debug):
    cfg = cfg_factory([f"debug={debug}"])
    assert cfg.task_name == "debug"
    instantiate(cfg.trainer, _convert_="all")


@pytest.mark.parametrize("engine", options("qat"))
@pytest.mark.parametrize("model", options("model"))
def test_qat_configs(cfg_factory, engine, model):
    from skinseg.quant import QuantizationAwareTraining

    cfg = cfg_factory([f"qat={engine}", f"model={model}", *offline(model)])
    callbacks = {type(callback) for callback in instantiate_list(cfg.callbacks)}
    assert QuantizationAwareTraining in callbacks and cfg.callbacks.qat.engine == engine
    assert resolve_hardware(cfg)["precision"].startswith("32-true: quantization-aware training")
    instantiate(cfg.trainer, _convert_="all")
    instantiate(cfg.model, _convert_="all")


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiment_configs(cfg_factory, tmp_path, experiment):
    cfg = cfg_factory([f"experiment={experiment}"])
    weights = cfg.model.get("encoder_weights")
    if weights not in (None, "imagenet"):  # a file of ../shared/weights (its README): loaded where it is there
        assert weights.startswith(cfg.paths.weights_dir), weights
        found = SHARED_WEIGHTS / Path(weights).name
        cfg.model.encoder_weights = str(found) if found.is_file() else None
    unset = unset_keys(OmegaConf.to_container(cfg))
    stage1 = None
    if unset:  # a second stage: it starts from the first stage's checkpoint, given on the command line
        assert unset == ["stage1_checkpoint"]
        stage1 = instantiate(cfg_factory([f"experiment={experiment}", "model.pretrained=null"]).model, _convert_="all")
        torch.save({"state_dict": stage1.state_dict()}, tmp_path / "stage1.ckpt")
        cfg = cfg_factory([f"experiment={experiment}", f"stage1_checkpoint={tmp_path / 'stage1.ckpt'}"])
    resolve_hardware(cfg)
    for group in ("data", "model", "trainer"):  # train.py's type checks refuse none of our settings
        check_setting_types(OmegaConf.to_container(cfg[group], resolve=True), group)
    check_setting_ranges(OmegaConf.to_container(cfg.trainer, resolve=True), "trainer", TRAINER_RULES)
    model = instantiate(cfg.model, _convert_="all")
    if stage1 is not None:
        assert all(torch.equal(value, stage1.state_dict()[key]) for key, value in model.state_dict().items())
    instantiate(cfg.data, _convert_="all")


def test_public_data_holds_the_scenes_sets(cfg_factory):
    datasets = list(cfg_factory(["data=public"]).data.datasets)
    assert datasets == ["sfa", "abd", "hgr_subset", "fasseg_frontal02", "ccp", "negatives"]
    for experiment in options("experiment"):
        cfg = cfg_factory([f"experiment={experiment}"])
        assert "negatives" in cfg.data.datasets and cfg.data.weights is None


def test_the_model_owns_the_input_spec_and_the_data_reads_it(cfg_factory):
    """model.input_size / model.resize_mode are set once; the data config reads them; the demo data asks
    any model for 128 px (configs/model_for_data/demo.yaml); a data setting of its own is refused."""
    import pytest

    from skinseg.errors import UsageError
    from skinseg.training import check_input_spec

    for overrides, spec in {("model=dlmv", "data=public"): (256, "squash"),
                            ("model=u2netp", "data=public"): (320, "squash"),
                            ("model=birefnet_lite", "data=public"): (1728, "letterbox"),
                            ("model=dlmv",): (128, "squash"),  # demo data
                            ("model.input_size=96", "model.resize_mode=letterbox"): (96, "letterbox")}.items():
        cfg = cfg_factory(list(overrides))
        assert (cfg.model.input_size, cfg.model.resize_mode) == spec
        assert (cfg.data.input_size, cfg.data.resize_mode) == spec
        check_input_spec(cfg)
    with pytest.raises(UsageError, match=r"data.input_size=64 differs from model.input_size=128: .* set "
                                         r"model.input_size=64 instead"):
        check_input_spec(cfg_factory(["data.input_size=64"]))


def test_model_configs_set_only_the_model(cfg_factory):
    """A model config changes nothing but `model.*` (the data reads the model's input spec); settings across
    groups live in experiment/ files (and model_for_data/, debug/, qat/, which exist to cross them)."""
    from omegaconf import OmegaConf

    def outside_model(cfg) -> dict:
        settings = OmegaConf.to_container(cfg, resolve=True)
        settings.pop("model")
        for key in ("input_size", "resize_mode"):
            settings["data"].pop(key)
        return settings

    baseline = outside_model(cfg_factory(["data=public"]))
    for model in options("model"):
        assert "@package" not in (CONFIGS / "model" / f"{model}.yaml").read_text(), model
        assert outside_model(cfg_factory([f"model={model}", "data=public", *offline(model)])) == baseline, model


def test_the_installed_commands_find_the_packaged_configs():
    """`skinseg-train` / `skinseg-evaluate` compose from the package (`pkg://skinseg.configs`), which is
    the repository's configs/; [project.scripts] names callables that exist."""
    import importlib
    import importlib.resources
    import tomllib

    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from .conftest import ROOT

    packaged = importlib.resources.files("skinseg.configs")
    assert sorted(p.name for p in packaged.joinpath("model").iterdir() if p.name.endswith(".yaml")) == [
        f"{name}.yaml" for name in options("model")]
    GlobalHydra.instance().clear()
    with initialize_config_module("skinseg.configs", version_base="1.3"):
        assert compose("train", overrides=["model=dlmv"]).model.net.name == "dlmv"
        assert compose("evaluate").split == "val"
    GlobalHydra.instance().clear()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"skinseg", "skinseg-train", "skinseg-evaluate", "skinseg-export", "skinseg-predict"}
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function))
