"""Transfer learning verbs: freeze/unfreeze, replace the head, inspect, apply a recipe.

Keras only honours a ``trainable`` change at the next ``compile``: after a
``fit`` it is silently ignored. ``freeze``/``unfreeze`` therefore recompile a
compiled model themselves, and ``TrainableStateGuard`` (used by
``keras_alexnet.training``) refuses to train a model whose trainable flags were
changed by hand since its optimizer was built.
"""

from __future__ import annotations

import dataclasses

import keras

from keras_alexnet.layer_names import layer_range, resolve_layers
from keras_alexnet.lr_factors import factors_of, with_lr_factors
from keras_alexnet.model import BACKBONE_OUTPUT, TORCHVISION_MODULES, classifier_layers, dense
from keras_alexnet.runtime import tensorflow_uses_gpu


def recompile(model):
    """Compile ``model`` again with its own compile config, so trainable changes count.

    The optimizer is rebuilt from its config (factors kept, slot state reset),
    as Keras does on any recompile.
    """
    if model.compiled:
        model.compile_from_config(model.get_compile_config())
    return model


def _set_trainable(model, value, layers, up_to, start):
    if layers is None and up_to is None and start is None:
        names = [layer.name for layer in model.layers]
    elif layers is not None:
        names = resolve_layers(model, layers)
    else:
        names = layer_range(model, up_to=up_to, start=start)
    for name in names:
        layer = model.get_layer(name)
        layer.trainable = value
        for variable in layer.weights:
            variable.trainable = value
    recompile(model)
    return names


def freeze(model, layers=None, *, up_to=None, start=None):
    """Make layers non-trainable and recompile if the model is compiled.

    Args:
        layers: a Keras name (``"conv1"``), torchvision path (``"features.3"``),
            slice (``"features[0:5]"``), group (``"features"``) or a list of them.
        up_to / start: an inclusive range of layers instead (``up_to="conv3"``).
        With no selection the whole model is frozen.
    Returns:
        The names of the layers changed.
    """
    return _set_trainable(model, False, layers, up_to, start)


def unfreeze(model, layers=None, *, up_to=None, start=None):
    """Make layers trainable again (see ``freeze``) and recompile if compiled."""
    return _set_trainable(model, True, layers, up_to, start)


def trainable_state_is_stale(model):
    """True if the trainable variables differ from those the optimizer was built for."""
    optimizer = getattr(model, "optimizer", None)
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if inner is None or not inner.built:
        return False  # Keras reads the flags at the first fit: nothing is stale yet
    built_for = {id(v) for v in inner._trainable_variables}
    # Variables with learning-rate factor 0 are left out of the optimizer on purpose.
    excluded = getattr(inner, "_frozen", lambda variable: False)
    return built_for != {id(v) for v in model.trainable_variables if not excluded(v)}


class TrainableStateGuard(keras.callbacks.Callback):
    """Stops ``fit`` from silently ignoring ``layer.trainable`` changes made after training."""

    def on_train_begin(self, logs=None):
        if trainable_state_is_stale(self.model):
            raise RuntimeError(
                "The model's trainable flags changed after it was trained, and Keras would "
                "ignore the change. Use keras_alexnet.freeze()/unfreeze(), or call "
                "keras_alexnet.transfer.recompile(model) before fit."
            )


def replace_head(model, classes=None, *, activation="softmax", layers=None, name=None):
    """A model with a new classifier on the same (shared) backbone layers.

    - With ``classes``: fc8 becomes a new ``Dense(classes)`` (torchvision
      ``classifier[6] = Linear(4096, classes)``, MATLAB ``layers(1:end-3)`` plus a
      new fullyConnectedLayer), keeping fc6/fc7 and their weights. On a model
      built with ``include_top=False`` the whole classifier (avgpool, fc6, fc7,
      fc8) is added, freshly initialised like torch's.
    - With ``layers``: a list of Keras layers replaces the whole classifier and is
      applied to the flattened 6x6x256 avgpool output (torchvision
      ``model.classifier = nn.Sequential(...)``).
    """
    names = {layer.name for layer in model.layers}
    if (classes is None) == (layers is None):
        raise ValueError("replace_head needs exactly one of classes=N or layers=[...].")
    if classes is not None and (not isinstance(classes, int) or classes < 1):
        raise ValueError(f"classes={classes!r}: use a positive integer.")
    if BACKBONE_OUTPUT not in names:
        raise ValueError("replace_head needs an AlexNet built by keras_alexnet (no 'pool5' layer found).")
    if layers is not None:
        if "flatten" in names:
            x = model.get_layer("flatten").output
        else:
            from keras_alexnet.layers import AdaptiveAveragePooling2D

            x = AdaptiveAveragePooling2D((6, 6), name="avgpool")(model.get_layer(BACKBONE_OUTPUT).output)
            x = keras.layers.Flatten(name="flatten")(x)
        for layer in layers:
            x = layer(x)
    elif "fc7" in names:
        x = dense(classes, 4096, "fc8", activation=activation, output=True)(model.get_layer("fc7").output)
    else:
        x = classifier_layers(model.get_layer(BACKBONE_OUTPUT).output, classes, activation)
    return keras.Model(model.inputs, x, name=name or model.name)


@dataclasses.dataclass
class LayerRow:
    """One row of ``layer_table``: MATLAB analyzeNetwork's learnable-parameter view."""

    name: str
    torchvision: str
    kind: str
    output_shape: tuple
    params: int
    trainable: bool
    weight_lr_factor: float | None
    bias_lr_factor: float | None
    weight_l2_factor: float | None
    bias_l2_factor: float | None


def _torch_paths_by_layer():
    paths = {}
    for path, layer in TORCHVISION_MODULES.items():
        paths.setdefault(layer, []).append(path)
    return {layer: ",".join(p) for layer, p in paths.items()}


def layer_table(model, optimizer=None):
    """Every layer with its parameters, trainable state and effective factors.

    A frozen variable shows learning-rate factor 0, as in MATLAB. Factors come
    from ``optimizer`` (default: the model's compiled optimizer).
    """
    optimizer = optimizer or getattr(model, "optimizer", None)
    torch_paths = _torch_paths_by_layer()
    rows = []
    for layer in model.layers:
        factors = {}
        for variable in layer.weights:
            kind = "bias" if len(variable.shape) == 1 else "weight"
            lr, l2 = factors_of(optimizer, variable.path)
            active = layer.trainable and variable.trainable
            factors[kind] = (lr if active else 0.0, l2)
        shape = layer.output.shape if hasattr(layer, "output") else ()
        rows.append(
            LayerRow(
                name=layer.name,
                torchvision=torch_paths.get(layer.name, ""),
                kind=type(layer).__name__,
                output_shape=tuple(shape),
                params=layer.count_params() if layer.built else 0,
                trainable=bool(layer.trainable and any(v.trainable for v in layer.weights)) if layer.weights else False,
                weight_lr_factor=factors.get("weight", (None, None))[0],
                bias_lr_factor=factors.get("bias", (None, None))[0],
                weight_l2_factor=factors.get("weight", (None, None))[1],
                bias_l2_factor=factors.get("bias", (None, None))[1],
            )
        )
    return rows


def format_layer_table(rows):
    """``layer_table`` rows as aligned text."""
    def num(value):
        return "-" if value is None else f"{value:g}"

    header = ("layer", "torchvision", "type", "output", "params", "train", "W lr", "B lr", "W L2", "B L2")
    lines = [
        (r.name, r.torchvision, r.kind, "x".join("?" if d is None else str(d) for d in r.output_shape[1:]),
         f"{r.params:,}", "yes" if r.trainable else "no", num(r.weight_lr_factor), num(r.bias_lr_factor),
         num(r.weight_l2_factor), num(r.bias_l2_factor))
        for r in rows
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
    text = [("  ".join(str(x).ljust(w) for x, w in zip(row, widths))).rstrip() for row in (header, *lines)]
    total = sum(r.params for r in rows)
    trainable = sum(r.params for r in rows if r.trainable)
    text.append(f"total params {total:,}, trainable {trainable:,}")
    return "\n".join(text)


def print_layer_table(model, optimizer=None):
    """Print ``layer_table`` (like MATLAB's analyzeNetwork) and return its rows."""
    rows = layer_table(model, optimizer)
    print(format_layer_table(rows))
    return rows


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A transfer-learning recipe: what to freeze, factors, optimizer and rate."""

    name: str
    summary: str
    frozen: tuple = ()
    factors: dict = dataclasses.field(default_factory=dict)
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    l2_regularization: float = 0.0


RECIPES = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            "frozen-features",
            "PyTorch guide: freeze the convolutions (features), train a new classifier.",
            frozen=("features",),
            optimizer="adam",
            learning_rate=1e-4,
        ),
        # The guide's head rate of 1e-3 assumes pretrained fc6/fc7. With the fresh ones the
        # offline weights give, 1e-4 trains far better (cats vs dogs, 3 epochs: fine-tune-all
        # 0.935 vs 0.75, later-convs 0.925 vs 0.875); the 1:10 ratio is the guide's.
        Recipe(
            "fine-tune-all",
            "PyTorch guide: fine-tune everything, convolutions at 1/10 of the classifier's rate (1e-5 vs 1e-4).",
            factors={"features": 0.1},
            optimizer="adam",
            learning_rate=1e-4,
        ),
        Recipe(
            "later-convs",
            "PyTorch guide: freeze conv1..conv3, fine-tune conv4/conv5 at 1/10 of the classifier's rate (1e-5 vs 1e-4).",
            frozen=("conv1", "conv2", "conv3"),
            factors={"conv4": 0.1, "conv5": 0.1},
            optimizer="adam",
            learning_rate=1e-4,
        ),
        Recipe(
            "matlab",
            "MATLAB guide: new fc8 with WeightLearnRateFactor=BiasLearnRateFactor=20, sgdm, rate 1e-4, L2 1e-4.",
            factors={"fc8": 20.0},
            optimizer="sgdm",
            learning_rate=1e-4,
            l2_regularization=1e-4,
        ),
    )
}


def make_optimizer(name, learning_rate):
    """``sgdm`` (SGD, momentum 0.9 as MATLAB), ``sgd``, ``adam``, ``adamw``, ``rmsprop``."""
    makers = {
        "sgdm": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9),
        "sgd": lambda: keras.optimizers.SGD(learning_rate),
        "adam": lambda: keras.optimizers.Adam(learning_rate),
        "adamw": lambda: keras.optimizers.AdamW(learning_rate),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate),
    }
    if name not in makers:
        raise ValueError(f"optimizer {name!r} is not known: use one of {', '.join(makers)}.")
    return makers[name]()


def resolve_jit_compile(model, jit_compile="auto"):
    """``"auto"``: XLA on a GPU when every convolution is frozen; never on the CPU.

    Measured on 2 CPU cores (benchmarks/RESULTS.md), with this package's fused
    optimizer updates and pooled CPU allocator: TensorFlow's own kernels beat XLA
    for frozen convolutions (71 vs 50 images/s) and tie with it when convolutions
    train. On GPUs the choice follows TensorFlow's advice (XLA fuses the
    classifier's element-wise work); no GPU was lent to measure it.
    """
    if jit_compile != "auto":
        return bool(jit_compile)
    if not tensorflow_uses_gpu():
        return False
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    return all(not (layer.trainable and any(v.trainable for v in layer.weights)) for layer in convs)


def apply_recipe(model, recipe, classes, *, learning_rate=None, optimizer=None, metrics=("accuracy",), jit_compile="auto", new_head=True):
    """Prepare ``model`` for ``classes`` outputs with a recipe and compile it.

    Args:
        model: an AlexNet from ``AlexNet(...)`` (with or without top).
        recipe: a name from ``RECIPES`` or a ``Recipe``.
        learning_rate: overrides the recipe's base rate (a float or a schedule).
        optimizer: a Keras optimizer whose config replaces the recipe's choice.
        new_head: replace fc8 with a new layer for ``classes`` (False keeps a
            trained head, e.g. to fine-tune after training with frozen features).
        jit_compile: True, False or ``"auto"`` (see ``resolve_jit_compile``).
    Returns:
        A new compiled model (softmax head, sparse categorical cross-entropy) that
        shares the backbone's layers with ``model``.
    """
    if isinstance(recipe, str):
        if recipe not in RECIPES:
            raise ValueError(f"recipe {recipe!r} is not known: use one of {', '.join(RECIPES)}.")
        recipe = RECIPES[recipe]
    if isinstance(learning_rate, (int, float)) and not learning_rate > 0:
        raise ValueError(f"learning_rate={learning_rate}: use a positive number (or a keras LearningRateSchedule).")
    if new_head:
        model = replace_head(model, classes)
    elif model.output.shape[-1] != classes:
        raise ValueError(f"new_head=False keeps the model's {model.output.shape[-1]} outputs, but classes={classes}.")
    unfreeze(model)
    for spec in recipe.frozen:
        freeze(model, spec)
    rate = learning_rate if learning_rate is not None else recipe.learning_rate
    if optimizer is None:
        optimizer = make_optimizer(recipe.optimizer, rate)
    elif learning_rate is not None:
        optimizer = optimizer.__class__.from_config({**optimizer.get_config(), "learning_rate": rate})
    optimizer = with_lr_factors(optimizer, recipe.factors, model, l2_regularization=recipe.l2_regularization)
    model.compile(
        optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=list(metrics),
        jit_compile=resolve_jit_compile(model, jit_compile),
    )
    return model
