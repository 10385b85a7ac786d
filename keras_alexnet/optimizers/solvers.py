"""The solvers by MATLAB's names (``sgdm``, ``adam``, ...), as recipes, options and the CLI name them.

The table is plain data (no Keras at import), so options and the CLI's parser read the names
without loading TensorFlow; ``make_optimizer`` builds the Keras optimizer.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Solver:
    """A solver: the Keras optimizer class it builds, with what arguments, and whether it has a
    momentum (SGD's ``momentum``, Adam's ``beta_1``) that a one-cycle schedule can cycle."""

    name: str
    keras_class: str
    arguments: tuple = ()
    momentum: bool = False


SOLVER_TABLE = (
    Solver("sgdm", "SGD", (("momentum", 0.9),), momentum=True),  # MATLAB's sgdm: momentum 0.9
    Solver("sgd", "SGD"),
    Solver("adam", "Adam", momentum=True),
    Solver("adamw", "AdamW", momentum=True),
    Solver("rmsprop", "RMSprop"),
)
SOLVERS = tuple(solver.name for solver in SOLVER_TABLE)
MOMENTUM_SOLVERS = tuple(solver.name for solver in SOLVER_TABLE if solver.momentum)


def make_optimizer(name, learning_rate):
    """The Keras optimizer of solver ``name`` (``SOLVERS``) at ``learning_rate``."""
    import keras

    solver = {solver.name: solver for solver in SOLVER_TABLE}.get(name)
    if solver is None:
        raise ValueError(f"optimizer {name!r} is not known: use one of {', '.join(SOLVERS)}.")
    return getattr(keras.optimizers, solver.keras_class)(learning_rate, **dict(solver.arguments))
