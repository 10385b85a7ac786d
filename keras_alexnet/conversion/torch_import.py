"""Importing torch in a process that runs TensorFlow (the only torch-dependent part)."""

from __future__ import annotations

import sys


def import_torch():
    """Import torch and torchvision in a process that already runs TensorFlow.

    torchvision imports triton when it is installed (CUDA builds of torch), and
    triton's LLVM clashes with TensorFlow's: the process segfaults. triton only
    compiles GPU kernels for torch.compile, which conversion never uses, so it is
    hidden unless it was already imported.
    """
    if "triton" not in sys.modules:
        sys.modules["triton"] = None  # `import triton` now raises ImportError
    import torch
    import torchvision

    return torch, torchvision
