"""``keras-alexnet demo``: the offline MATLAB-guide demo on generated shapes."""

from __future__ import annotations

from keras_alexnet._utils.flags import (
    add_flags,
    typed_options,
)
from keras_alexnet.options import (
    DemoOptions,
)


def run(args):
    from keras_alexnet.demo import run_demo

    demo = DemoOptions(**typed_options(args, DemoOptions))
    run_demo(demo.out, per_class=demo.per_class, epochs=demo.epochs, seed=demo.seed)
    return 0


def add(command):
    p = command(NAME, "offline demo: shapes data set, MATLAB recipe, plots, SavedModel", run)
    add_flags(p, DemoOptions)


NAME = "demo"
EXAMPLE = "keras-alexnet demo --out demo_output"
