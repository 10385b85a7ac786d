"""Run by test_ray_cluster.py: ``train(..., devices=[two logical CPU devices])`` (MirroredStrategy through
Keras's fit) against one device, on the tiny network with a head without dropout or batch norm and
a recipe with frozen layers and factors (later-convs). Prints the largest weight difference, and
whether the frozen convolutions stayed as they were."""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

sys.path.insert(0, str(Path(__file__).parent))
from keras_alexnet.datasets import generate_shapes  # noqa: E402
from keras_alexnet.model import load_model  # noqa: E402
from keras_alexnet.recipes import Head, register_head  # noqa: E402
from keras_alexnet.training import train  # noqa: E402

out = Path(sys.argv[1])
register_head(Head("linear", "average-pooled pool5, then the classes", "tiny_model:linear_head"))
data = generate_shapes(out / "data", per_class=6, size=64, seed=5)
options = {"architecture": "tiny", "weights": None, "batch_size": 8, "epochs": 2, "val_split": 0.3, "verbose": 0}
options.update(head="linear", recipe="later-convs", calibrate=False, output_network="last", report=False)
train(data, run_dir=out / "one", **options)
train(data, run_dir=out / "two", devices=["/cpu:0", "/cpu:1"], **options)
one, two = (load_model(out / name / "model.keras") for name in ("one", "two"))
print(
    json.dumps(
        {
            "max_diff": max(float(abs(a - b).max()) for a, b in zip(one.get_weights(), two.get_weights())),
            "conv5_moved": float(abs(two.get_layer("conv5").get_weights()[0]).sum()),
        }
    )
)
