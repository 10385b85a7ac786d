"""Parity of a conversion: the same inputs through PyTorch, ONNX Runtime, Keras (and onnx2tf)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from keras_alexnet.weights.state_dicts import import_torch

DEFAULT_MAX_REL = 1e-4  # a conversion whose Keras outputs differ more from PyTorch's is refused


@dataclasses.dataclass
class ParityRow:
    """Differences between two implementations' outputs on the same inputs."""

    reference: str
    candidate: str
    max_abs: float
    max_rel: float  # max_abs / max |reference|

    def __str__(self):
        return f"{self.candidate:>13} vs {self.reference:<12} max abs {self.max_abs:.3e}   max rel {self.max_rel:.3e}"


def parity_inputs(batch=2, size=224, seed=0):
    """Fixed inputs (NCHW float32) shaped like preprocessed images."""
    return np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)


def _compare(reference_name, reference, candidate_name, candidate):
    if not (np.all(np.isfinite(reference)) and np.all(np.isfinite(candidate))):
        return ParityRow(reference_name, candidate_name, math.inf, math.inf)
    diff = float(np.max(np.abs(reference - candidate)))
    scale = float(np.max(np.abs(reference))) or 1.0
    return ParityRow(reference_name, candidate_name, diff, diff / scale)


def _nhwc(x):
    return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x


def run_torch(torch_model, inputs):
    torch, _ = import_torch()
    with torch.no_grad():
        return torch_model(torch.from_numpy(inputs)).numpy()


def run_onnxruntime(onnx_path, inputs):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs})[0]


def run_onnx2tf(onnx_path, inputs, workdir):
    """Convert with onnx2tf (the independent converter) and run its model (NHWC in)."""
    import onnx2tf

    model = onnx2tf.convert(
        input_onnx_file_path=str(onnx_path),
        output_folder_path=str(workdir),
        disable_model_save=True,
        not_use_onnxsim=True,
        non_verbose=True,
    )
    return np.asarray(model(inputs.transpose(0, 2, 3, 1)))


def parity_report(torch_model, onnx_path, keras_model, inputs, check_onnx2tf=False, workdir=None):
    """Max absolute/relative differences: ONNX Runtime and Keras (and onnx2tf) vs PyTorch."""
    reference = _nhwc(run_torch(torch_model, inputs))
    rows = [
        _compare("PyTorch", reference, "ONNX Runtime", _nhwc(run_onnxruntime(onnx_path, inputs))),
        _compare("PyTorch", reference, "Keras", np.asarray(keras_model(inputs.transpose(0, 2, 3, 1), training=False))),
    ]
    if check_onnx2tf:
        rows.append(_compare("PyTorch", reference, "onnx2tf", run_onnx2tf(onnx_path, inputs, workdir)))
    return rows


def worst_difference(rows):
    """The largest relative difference of a report; NaN or infinity count as failures (inf)."""
    values = [row.max_rel for row in rows]
    return max((value if math.isfinite(value) else math.inf) for value in values)
