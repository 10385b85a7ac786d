"""The epoch you keep: MATLAB's ``OutputNetwork`` for ``train``.

``output_network`` names the rule: ``"best-validation-loss"`` (the default, MATLAB's
"best-validation" with its default objective, the loss), ``"best-validation-accuracy"`` or
``"last"``. ``--patience`` watches the same metric, and ``model.keras`` holds the chosen
epoch's weights. While a run trains, ``best.keras`` holds the best epoch so far (and
``best.best.json`` its value and epoch), so a resumed run keeps it; the finished run keeps
only ``model.keras``.
"""

from __future__ import annotations

import json
import logging

import keras

from keras_alexnet._utils.checksum import matches
from keras_alexnet.model import load_model
from keras_alexnet.training.callbacks import BestModelCheckpoint

log = logging.getLogger("keras_alexnet.training")

# output_network -> (the log it watches, whether lower is better)
MONITORED = {
    "best-validation-loss": ("val_loss", "min"),
    "best-validation-accuracy": ("val_accuracy", "max"),
    "last": ("val_loss", "min"),  # what --patience watches when the last epoch is kept
}


def early_stopping(output_network, patience):
    """``EarlyStopping`` on the output network's metric (weights are restored by ``keep_output_network``)."""
    monitor, mode = MONITORED[output_network]
    return keras.callbacks.EarlyStopping(monitor, patience=patience, mode=mode, restore_best_weights=False)


def output_checkpoint(output_network, run, model, saved_form, save_file):
    """The checkpoint that follows the output network's best epoch, or None for ``"last"``.

    ``save_file`` False keeps the best weights in memory only (a comparison's runs write no models).
    """
    if output_network == "last":
        return None
    monitor, mode = MONITORED[output_network]
    return BestModelCheckpoint(
        run.best if save_file else None,
        model,
        monitor=monitor,
        mode=mode,
        record=run.best_record,
        saved_form=saved_form,
    )


def keep_output_network(model, checkpoint, run, epochs_done):
    """Give ``model`` the output network's weights; returns the epoch (1-based) they are from.

    The best weights come from the checkpoint's memory, or, after a resume that found no better
    epoch, from ``best.keras``. ``epochs_done`` is the answer for ``"last"`` (no checkpoint) or a
    run without validation.
    """
    if checkpoint is None or checkpoint.best_epoch is None:
        return epochs_done
    if checkpoint.best_weights is not None:
        source = checkpoint.best_weights
    elif run.best.exists():
        recorded = json.loads(run.best_record.read_text()) if run.best_record.exists() else {}
        if not matches(run.best, recorded.get("sha256")):
            log.warning(
                "%s is damaged (its bytes differ from the SHA-256 written with it): model.keras holds the last "
                "epoch (%d) instead of epoch %d.",
                run.best,
                epochs_done,
                checkpoint.best_epoch,
            )
            return epochs_done
        saved = load_model(run.best)
        source = {layer.name: layer.get_weights() for layer in saved.layers if layer.weights}
    else:
        return epochs_done
    for layer in model.layers:
        if layer.weights and layer.name in source:
            layer.set_weights(source[layer.name])
    return checkpoint.best_epoch
