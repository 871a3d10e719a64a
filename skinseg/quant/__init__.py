"""Int8 quantization: post-training static (PTQ) and quantization-aware training (QAT) per engine.

`skinseg.quant.fx` holds the graph-mode functions (torch only); `QuantizationAwareTraining`
(Lightning) is imported on first use.
"""

from importlib import import_module

from skinseg.quant.fx import (
    ENGINES,
    METHODS,
    calibrate,
    convert,
    int8_network,
    load_int8,
    prepare_ptq,
    prepare_qat,
    quantized_engine,
    save_int8,
)

__all__ = [
    "ENGINES",
    "METHODS",
    "QuantizationAwareTraining",
    "calibrate",
    "convert",
    "int8_network",
    "load_int8",
    "prepare_ptq",
    "prepare_qat",
    "quantized_engine",
    "save_int8",
]


def __getattr__(name: str):
    if name == "QuantizationAwareTraining":
        return import_module("skinseg.quant.callback").QuantizationAwareTraining
    raise AttributeError(f"module 'skinseg.quant' has no attribute {name!r}")
