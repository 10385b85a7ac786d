"""torchvision AlexNet state dicts (``.pth``, ``.npz``, torchvision's download, seeded random ones),
and importing torch beside TensorFlow. torch is imported only when a state dict needs it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from keras_alexnet.architecture import ALEXNET
from keras_alexnet.weights.readers import load_npz
from keras_alexnet.weights.sources import IMAGENET, sha256_of

FEATURE_KEYS = tuple(key for conv in ALEXNET.conv_names for key in ALEXNET.state_dict_keys[conv])


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


def load_state_dict(source, progress=print):
    """Return (state_dict of numpy arrays, features_only) for a weight source.

    ``source``: ``"torchvision"`` (official ImageNet weights, downloaded once into
    the torch hub cache and checked against the sha256 prefix in the file name),
    ``"random"`` or ``"random:SEED"`` (torchvision's own init, seeded), the path
    of a ``.pth``/``.pt`` state dict (loaded with ``weights_only=True``), or of
    an ``.npz`` state dict. A state dict without ``classifier.*`` is features-only.
    """
    torch, torchvision = import_torch()
    source = os.fspath(source)
    if source == "torchvision":
        progress(f"downloading {IMAGENET.url} (sha256 checked)")
        state = torch.hub.load_state_dict_from_url(IMAGENET.url, progress=False, check_hash=True, map_location="cpu")
    elif source == "random" or source.startswith("random:"):
        seed_text = source.partition(":")[2] or "0"
        if not seed_text.isdigit():
            raise ValueError(f"{source!r}: the seed after 'random:' must be a whole number, e.g. random:0.")
        torch.manual_seed(int(seed_text))
        state = torchvision.models.alexnet(weights=None).state_dict()
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(
                f"weight source {source!r} does not exist. Use 'torchvision', "
                "'random[:SEED]', or the path of a .pth or .npz state dict."
            )
        if path.suffix == ".npz":
            state = load_npz(path)
        elif path.suffix in (".pth", ".pt"):
            if path.name == IMAGENET.url_filename:
                _check_hash_prefix(path)
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as error:  # pickle errors come in many types
                raise ValueError(f"{path} is not a torch state dict loadable with weights_only=True: {error}") from None
        else:
            raise ValueError(
                f"{path} has suffix {path.suffix!r}; the converter reads .pth/.pt or .npz "
                "state dicts (or use 'torchvision' / 'random')."
            )
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        hint = " (a training checkpoint? save its 'state_dict' entry)" if isinstance(state, dict) else ""
        raise ValueError(
            f"weight source {source!r} holds a {type(state).__name__}, not a state dict: save "
            f"torchvision's model.state_dict(), a dict of tensors by name{hint}."
        )
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        raise ValueError(
            f"weight source {source!r} is a training checkpoint: save its 'state_dict' entry and convert that."
        )
    state = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in state.items()}
    missing = [k for k in FEATURE_KEYS if k not in state]
    if missing:
        raise ValueError(
            f"weight source {source!r} is not an AlexNet state dict: missing {missing[:4]}"
            f"{' ...' if len(missing) > 4 else ''} (torchvision names expected)."
        )
    features_only = not any(k.startswith("classifier.") for k in state)
    _check_shapes(state, source, features_only)
    return state, features_only


def _check_shapes(state, source, features_only):
    """Every AlexNet tensor in ``state`` has torchvision's shape; the first that does not is named."""
    output_weight = ALEXNET.state_dict_keys[ALEXNET.output_name][0]
    classes = None if features_only or output_weight not in state else int(state[output_weight].shape[0])
    for layer, shape in ALEXNET.torch_shapes(classes).items():
        if features_only and layer not in ALEXNET.conv_names:
            continue
        weight_key, bias_key = ALEXNET.state_dict_keys[layer]
        for key, expected in ((weight_key, shape), (bias_key, shape[:1])):
            if key not in state:
                raise ValueError(
                    f"weight source {source!r} is not an AlexNet state dict: {key!r} ({layer}) is missing."
                )
            if tuple(state[key].shape) != tuple(expected):
                raise ValueError(
                    f"weight source {source!r}: {key!r} ({layer}) has shape {tuple(state[key].shape)}, "
                    f"torchvision AlexNet's is {tuple(expected)}."
                )


def _check_hash_prefix(path):
    digest = sha256_of(path)
    if not digest.startswith(IMAGENET.url_sha256_prefix):
        raise ValueError(
            f"{path} has sha256 {digest[:8]}..., but torchvision's file starts with "
            f"{IMAGENET.url_sha256_prefix}: the file is damaged or not torchvision's."
        )
