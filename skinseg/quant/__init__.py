"""Int8 quantization: post-training static (PTQ) and quantization-aware training (QAT) per engine.

`skinseg.quant.fx` holds the graph-mode functions (torch only); `QuantizationAwareTraining`
(Lightning) is imported on first use.
"""

from skinseg.lazy import lazy_getattr
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

__getattr__ = lazy_getattr("skinseg.quant", {"QuantizationAwareTraining": "skinseg.quant.callback"})
