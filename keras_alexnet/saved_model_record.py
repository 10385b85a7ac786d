"""A SavedModel read as data: the Keras model it was exported from, rebuilt without running its graph.

``keras-alexnet export --format savedmodel`` writes, beside the serving graph, a record of the model
(``assets.extra/keras-alexnet.json``: the Keras config, class names, temperature, image size and the
checkpoint key of each variable). ``read_saved_model`` rebuilds the model from that config under
Keras's safe mode and reads the variables with TensorFlow's checkpoint reader, which parses tensor
data and runs no op: the graph, its functions, its init op and its saver never run, whatever they
hold. A SavedModel without the record (TF1-style, another exporter, keras-alexnet before 0.8) is
refused in one line. Every size is checked before it is allocated: the record's length, the
variables' declared bytes against the bytes on disk, each variable's shape against the rebuilt model.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet._utils.errors import root_cause
from keras_alexnet.model import SUPPORTED_MODELS, is_alexnet

RECORD = Path("assets.extra") / "keras-alexnet.json"  # TF Serving ignores assets.extra/ (warm-up data lives there)
RECORD_VERSION = 1
MAX_RECORD_BYTES = 16 << 20  # AlexNet's config is about 20 KB
MAX_LAYERS, MAX_WIDTH = 256, 65536  # bounds on the config before it is built (AlexNet: 23 layers, 9216 wide)
VARIABLES = Path("variables") / "variables"  # the checkpoint prefix inside a SavedModel


class SavedModelRecordError(ValueError):
    """A SavedModel keras-alexnet does not read; the message says why (``reason``) and what to do."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.reason = reason


def _refuse(path, why):
    return SavedModelRecordError(
        f"{path} is refused, nothing of it ran: {why}. keras-alexnet reads a SavedModel as data, from the record "
        "`keras-alexnet export --format savedmodel` (0.8 or later) writes beside its graph; export the model.keras "
        "again to get one.",
        why,
    )


def write_record(folder, model, class_names, temperature, image_size, tracked):
    """Write the record of ``model`` into the SavedModel ``folder``, whose module tracks ``model.variables`` first,
    in order, in its attribute ``tracked``."""
    entries = [
        {"key": f"{tracked}/{index}/.ATTRIBUTES/VARIABLE_VALUE", "shape": list(variable.shape), "name": variable.path}
        for index, variable in enumerate(model.variables)
    ]
    record = {
        "version": RECORD_VERSION,
        "config": json.loads(model.to_json()),
        "class_names": list(class_names),
        "temperature": None if temperature is None else float(temperature),
        "image_size": int(image_size),
        "variables": entries,
    }
    target = Path(folder) / RECORD
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record))


def read_record(path):
    """The record of the SavedModel folder ``path`` (a dict), checked for its shape; nothing else is read."""
    path = Path(path)
    file = path / RECORD
    if not file.is_file() or file.is_symlink():
        raise _refuse(path, f"it has no {RECORD} (not a keras-alexnet export, or one made before 0.8)")
    size = file.stat().st_size
    if size > MAX_RECORD_BYTES:
        raise _refuse(path, f"its {RECORD} is {size:,} bytes (a keras-alexnet record is under {MAX_RECORD_BYTES:,})")
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _refuse(path, f"its {RECORD} is not JSON ({error})") from None
    expected = {"version": int, "config": dict, "class_names": list, "image_size": int, "variables": list}
    for key, kind in expected.items():
        if not isinstance(record, dict) or not isinstance(record.get(key), kind):
            raise _refuse(path, f"its {RECORD} has no {key!r} of type {kind.__name__}")
    if record["version"] != RECORD_VERSION:
        raise _refuse(path, f"its record is version {record['version']}, this keras-alexnet reads {RECORD_VERSION}")
    if not all(isinstance(name, str) for name in record["class_names"]):
        raise _refuse(path, "its class names are not all text")
    if not 16 <= record["image_size"] <= 4096:
        raise _refuse(path, f"its image size {record['image_size']} is not an image size")
    temperature = record.get("temperature")
    if temperature is not None and not (isinstance(temperature, (int, float)) and np.isfinite(temperature)):
        raise _refuse(path, f"its temperature {temperature!r} is not a finite number")
    return record


def _check_config_size(path, config):
    """Bound the layers a config would build before anything is allocated."""
    layers = config.get("config", {}).get("layers", [])
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        raise _refuse(path, f"its config is not a model of at most {MAX_LAYERS} layers")
    stack = list(layers)
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in ("units", "filters") and isinstance(value, int) and not 0 < value <= MAX_WIDTH:
                    raise _refuse(path, f"its config asks for a layer of {value} {key} (at most {MAX_WIDTH})")
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def _rebuild(path, config):
    """The Keras model of ``config``, under Keras's safe mode (no code named by the file runs)."""
    _check_config_size(path, config)
    try:
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as error:  # safe mode's refusals and a config that does not build are all "not ours"
        raise _refuse(path, f"Keras could not rebuild its config safely ({root_cause(error)})") from None
    if not isinstance(model, keras.Model) or not is_alexnet(model):
        raise _refuse(path, f"its config is not an AlexNet keras-alexnet made. {SUPPORTED_MODELS}")
    return model


def _read_variables(path, model, entries):
    """Read each recorded variable with the checkpoint reader (tensor data only) into ``model``'s variables."""
    prefix = path / VARIABLES
    index, data = prefix.with_suffix(".index"), list(prefix.parent.glob("variables.data-*"))
    if not index.is_file() or not data:
        raise _refuse(path, f"its {VARIABLES}.index or data file is missing")
    if len(entries) != len(model.variables):
        raise _refuse(path, f"its record lists {len(entries)} variables, its config builds {len(model.variables)}")
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    except Exception as error:  # the reader's own errors for a damaged index
        raise _refuse(path, f"its variables cannot be read ({root_cause(error)})") from None
    declared = 0
    for entry, variable in zip(entries, model.variables):
        key = entry.get("key") if isinstance(entry, dict) else None
        if key not in shapes:
            raise _refuse(path, f"its checkpoint has no variable {key!r} that its record names")
        if list(shapes[key]) != list(variable.shape):
            raise _refuse(
                path, f"its variable {key} has shape {list(shapes[key])}, the model's {variable.path} {variable.shape}"
            )
        declared += int(np.prod(shapes[key], dtype=np.int64)) * dtypes[key].size
    on_disk = sum(file.stat().st_size for file in data)
    if declared > on_disk:
        raise _refuse(path, f"its variables declare {declared:,} bytes but its data holds {on_disk:,}")
    for entry, variable in zip(entries, model.variables):
        value = reader.get_tensor(entry["key"])
        if np.issubdtype(np.asarray(value).dtype, np.floating) and not np.all(np.isfinite(value)):
            raise _refuse(path, f"its variable {entry['key']} holds NaN or infinity")
        variable.assign(np.asarray(value).astype(variable.dtype))


def read_saved_model(path):
    """``(model, record)``: the Keras model a keras-alexnet SavedModel was exported from, and its record; the
    SavedModel's graph never runs (``SavedModelRecordError`` names what is missing or does not fit)."""
    path = Path(path)
    record = read_record(path)
    model = _rebuild(path, record["config"])
    _read_variables(path, model, record["variables"])
    return model, record
