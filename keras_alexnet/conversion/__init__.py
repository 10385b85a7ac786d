"""torchvision AlexNet -> ONNX -> Keras weights, with a parity report. Needs torch (as do the
state-dict readers it starts from, ``keras_alexnet.weights.state_dicts``).

A pipeline of small steps, each usable alone: ``load_state_dict`` ->
``torchvision_alexnet`` -> ``export_onnx`` -> ``keras_model_from_onnx`` ->
``parity_report`` -> ``save_weights_atomic``. ``convert`` runs them all. Needs
the ``convert`` extra (torch, torchvision, onnxruntime; onnx2tf for the optional
second check).
"""

from keras_alexnet.conversion.parity import (
    DEFAULT_MAX_REL,
    ParityRow,
    parity_inputs,
    parity_report,
    run_onnx2tf,
    run_onnxruntime,
    run_torch,
    worst_difference,
)
from keras_alexnet.conversion.pipeline import (
    FEATURE_KEYS,
    ConversionResult,
    ParityError,
    convert,
    default_output,
    export_onnx,
    keras_model_from_onnx,
    load_state_dict,
    save_weights_atomic,
    torchvision_alexnet,
)
from keras_alexnet.weights.state_dicts import import_torch

__all__ = [
    "DEFAULT_MAX_REL",
    "FEATURE_KEYS",
    "ConversionResult",
    "ParityError",
    "ParityRow",
    "convert",
    "default_output",
    "export_onnx",
    "import_torch",
    "keras_model_from_onnx",
    "load_state_dict",
    "parity_inputs",
    "parity_report",
    "run_onnx2tf",
    "run_onnxruntime",
    "run_torch",
    "save_weights_atomic",
    "torchvision_alexnet",
    "worst_difference",
]
