"""Keras callbacks for MATLAB-style training: validation every N iterations, a
training-progress plot, an atomic best-model checkpoint. Their state lives in a
JSON file next to the run, so a resumed run carries on its curves."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import keras
import numpy as np

from keras_alexnet._keras_compat import BackupState
from keras_alexnet._utils.checks import is_count
from keras_alexnet._utils.checksum import sha256_of
from keras_alexnet._utils.choices import validation
from keras_alexnet._utils.disk import DiskFullError, disk_full_message, ensure_space, is_disk_full, weights_bytes
from keras_alexnet._utils.files import atomic_write
from keras_alexnet._utils.plotting import pyplot
from keras_alexnet.metrics import BALANCED_METRICS
from keras_alexnet.run_directory import RunDirectory


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped before saving anything from that state."""


class StopOnDivergence(keras.callbacks.Callback):
    """Stop ``fit`` at the first non-finite training loss, before any later callback saves that state.

    Keras's ``TerminateOnNaN`` only sets ``stop_training``, so the epoch's end (and
    its backup and checkpoints) still runs on NaN weights. This raises instead: the
    last backup keeps the last finite state, and no model is written.
    """

    def __init__(self, learning_rate=None):
        super().__init__()
        self.learning_rate = learning_rate
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            rate = f" (base rate {self.learning_rate:g})" if isinstance(self.learning_rate, float) else ""
            raise TrainingDiverged(
                f"training diverged: the loss became {loss} in epoch {self._epoch + 1}, iteration {batch + 1}. "
                f"Lower the learning rate{rate}, e.g. by 10x; the last backup (if any) holds the last "
                "finite state, and nothing was saved from the diverged one."
            )


def save_model_atomic(model, path):
    """``model.save(path)`` (a .keras file) through a temporary file."""
    # mkstemp's name ends in the target's name, so it ends in ".keras" as Keras requires.
    return atomic_write(path, model.save)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` that never leaves a broken backup.

    Keras's callback rewrites one weights file in place, so a run killed while
    writing it leaves a truncated file and cannot resume. Here each backup goes
    to a new file (``epoch-<N>.weights.h5``, written under a temporary name and
    renamed); then ``training_metadata.json``, replaced atomically, names it:
    that rename is the commit. A run killed at any moment resumes from the last
    committed backup. Older files are deleted in a background thread, so a backup
    costs what Keras's in-place rewrite costs (benchmarks/ANALYSIS.md).

    Keras's weight files leave out the dropout layers' random states; the metadata
    keeps them, so a resumed epoch draws the masks the lost one would have.

    ``every_epochs=N`` backs up after every N-th epoch only (MATLAB's
    ``CheckpointFrequency``), for epochs shorter than writing a backup takes;
    a killed run then repeats up to N - 1 epochs.
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True, every_epochs=1, stage=1):
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=delete_checkpoint)
        if not is_count(every_epochs):
            raise ValueError(f"every_epochs={every_epochs!r}: give a whole number of epochs, 1 or more.")
        self.every_epochs = every_epochs
        self.stage = stage  # of a two-stage recipe: which model (and optimizer) the backup fits
        self._cleanup = None
        self._state = BackupState(self)

    def on_train_begin(self, logs=None):
        metadata_path = Path(self._state.metadata_path)
        metadata = json.loads(metadata_path.read_text()) if metadata_path.exists() else {}
        named = metadata.get("weights")
        if named is not None:
            self._state.weights_path = str(Path(self.backup_dir) / named)
            if not Path(self._state.weights_path).exists():
                raise FileNotFoundError(
                    f"the backup in {self.backup_dir} names {named}, which is missing: start again without resume."
                )
        super().on_train_begin(logs)
        if metadata.get("random_states"):
            restore_random_states(self.model, metadata["random_states"])  # after Keras restored the weights

    def _save_model(self):  # Keras's hook (listed in _keras_compat.PRIVATE_ATTRIBUTES)
        epoch, batch = self._state.epoch, self._state.batch
        # The last epoch is always backed up: the run's end (the final save) starts from it.
        if self.save_freq == "epoch" and epoch % self.every_epochs and epoch != self.params.get("epochs"):
            return
        self._wait_for_cleanup()
        path, stale = write_backup(self.model, self.backup_dir, epoch, batch, self.stage, checksum=False)
        self._state.weights_path = str(path)
        # The checksum (0.6 s for AlexNet's 664 MB) is added beside training, like the clean-up.
        self._cleanup = threading.Thread(target=_finish_backup, args=(path, stale), daemon=True)
        self._cleanup.start()

    def backed_up_epochs(self):
        """How many epochs the last committed backup holds (0 when there is none)."""
        metadata = Path(self._state.metadata_path)
        return json.loads(metadata.read_text())["epoch"] if metadata.exists() else 0

    def _wait_for_cleanup(self):
        if self._cleanup is not None:
            self._cleanup.join()
            self._cleanup = None

    def on_train_end(self, logs=None):
        self._wait_for_cleanup()
        super().on_train_end(logs)


def write_backup(model, backup_dir, epoch, batch=0, stage=1, checksum=True):
    """Commit a backup of ``model`` (weights, optimizer state, dropout draws) after ``epoch`` epochs.

    The weights go to a new file, then the metadata naming it is replaced atomically, with the
    file's SHA-256 (``checksum``; else ``add_checksum`` adds it afterwards).
    Returns the new file and the older files it makes stale: removed here when ``checksum`` (the backup is
    whole now), else left to the caller (which adds the checksum first).
    """
    backup_dir = Path(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{epoch}" + (f"-batch-{batch}" if batch else "") + ".weights.h5"
    # h5py reports a full disk from deep inside its close and can crash the process at exit
    # afterwards: check the space first, so a full disk is a clear error and the last backup stays.
    needed = int(weights_bytes(model) * 1.05) + (64 << 10)
    metadata = backup_dir / RunDirectory.BACKUP_METADATA
    committed = json.loads(metadata.read_text()).get("epoch") if metadata.exists() else None
    then = (
        f"The backup of epoch {committed} is intact: free space (or move the run directory), then continue with "
        "--resume."
        if committed
        else "Free space or choose a --run-dir on another disk, then start again."
    )
    what = f"the backup after epoch {epoch}"
    ensure_space(backup_dir, needed, what, then)
    try:
        atomic_write(backup_dir / name, lambda tmp: model.save_weights(filepath=tmp, overwrite=True))
    except OSError as error:
        if is_disk_full(error):
            raise DiskFullError(disk_full_message(backup_dir, what, needed, then, error)) from None
        raise
    metadata = {
        "epoch": epoch,
        "batch": batch,
        "weights": name,
        "sha256": sha256_of(backup_dir / name) if checksum else None,  # what --resume checks
        "stage": stage,
        "random_states": random_states(model),
    }
    text = json.dumps(metadata)
    atomic_write(backup_dir / RunDirectory.BACKUP_METADATA, lambda tmp: Path(tmp).write_text(text))
    stale = [path for path in backup_dir.glob("*.weights.h5") if path.name != name]
    stale += list(backup_dir.glob(".tmp-*"))  # left by a run killed while writing
    if checksum:  # one backup, as on one process: AlexNet's 665 MB each would fill the disk
        for path in stale:
            path.unlink(missing_ok=True)
        stale = []
    return backup_dir / name, stale


def add_checksum(weights):
    """Add the SHA-256 of a committed backup's weights file to the metadata that names it (still naming it)."""
    digest = sha256_of(weights)
    metadata_path = Path(weights).parent / RunDirectory.BACKUP_METADATA
    metadata = json.loads(metadata_path.read_text())
    if metadata.get("weights") == Path(weights).name:
        metadata["sha256"] = digest
        text = json.dumps(metadata)
        atomic_write(metadata_path, lambda tmp: Path(tmp).write_text(text))


def _finish_backup(weights, stale):
    try:
        add_checksum(weights)
    except OSError:
        pass  # a full disk now: the backup stands, unchecked (as before 0.6); the next one is checked
    _remove_quietly(stale)


def _seed_generators(model):
    """{layer name: SeedGenerator} of the layers that draw random numbers while training (dropout)."""
    found = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.update(_seed_generators(layer))
        elif getattr(layer, "seed_generator", None) is not None:
            found[layer.name] = layer.seed_generator
    return found


def random_states(model):
    """{layer name: state} of the dropout layers' random generators, which Keras's weight files leave out."""
    return {name: [int(v) for v in keras.ops.convert_to_numpy(g.state)] for name, g in _seed_generators(model).items()}


def restore_random_states(model, states):
    """Put back states taken by ``random_states``: the next masks are those that would have come."""
    for name, generator in _seed_generators(model).items():
        if name in states:
            generator.state.assign(np.asarray(states[name], dtype=generator.state.dtype))


def trim_csv_log(path, epochs):
    """Keep the header and the rows of the first ``epochs`` epochs of a ``CSVLogger`` file.

    A resumed run repeats the epochs after its last backup; without this their
    rows would appear twice.
    """
    path = Path(path)
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) < epochs]
    if len(kept) != len(lines):
        atomic_write(path, lambda tmp: Path(tmp).write_text("".join(kept)))


def _remove_quietly(paths):
    for path in paths:
        Path(path).unlink(missing_ok=True)


# Validation metrics history.json keeps beside loss and accuracy (keras_alexnet.metrics).
VALIDATION_EXTRAS = tuple(validation(name) for name in BALANCED_METRICS)


class TrainingProgress(keras.callbacks.Callback):
    """Records loss/accuracy per iteration and validation per epoch or every N iterations.

    Writes ``history.json`` after every epoch and a ``progress.png`` like MATLAB's
    Plots='training-progress' (after the first epoch, then at most every ``MIN_PLOT_INTERVAL``
    seconds, and at the end). With ``validation_frequency=N`` the validation set
    is evaluated every N iterations (MATLAB ValidationFrequency).
    """

    # Drawing the PNG takes about 0.15 s (more in a process's first); it is drawn at most this often, counted
    # from the start of training (and at the end), so the plot never costs more than a few percent of a run: an
    # AlexNet epoch (minutes) redraws it after every epoch, a run of second-long epochs only now and then.
    MIN_PLOT_INTERVAL = 5.0

    def __init__(self, run_dir, validation_data=None, validation_frequency=None, stage=None):
        super().__init__()
        self._plotted_at, self._plot_pending = None, False
        self.stage = stage  # a label: the plot marks the iteration where this stage began
        self.run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
        self.run_dir = self.run.path
        self.validation_data = validation_data
        self.validation_frequency = validation_frequency
        self.state_path = self.run.history
        self.state = {
            "learning_rate": [],
            "iteration": [],
            "loss": [],
            "accuracy": [],
            "val_iteration": [],
            "val_loss": [],
            "val_accuracy": [],
            **{name: [] for name in VALIDATION_EXTRAS},
            "epochs_done": 0,
            "iterations_per_epoch": None,
            "stages": [],
        }
        if self.state_path.exists():
            self.state.update(json.loads(self.state_path.read_text()))
        self._iteration = self.state["iteration"][-1] if self.state["iteration"] else 0

    def on_train_begin(self, logs=None):
        if self._plotted_at is None:
            self._plotted_at = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        # BackupAndRestore restarts at the last finished epoch: drop what came after it.
        per_epoch = self.state["iterations_per_epoch"]
        if per_epoch:
            cutoff = epoch * per_epoch
            for key, xs in (
                ("iteration", ("loss", "accuracy", "learning_rate")),
                ("val_iteration", ("val_loss", "val_accuracy", *VALIDATION_EXTRAS)),
            ):
                keep = [i for i, it in enumerate(self.state[key]) if it <= cutoff]
                self.state[key] = [self.state[key][i] for i in keep]
                for name in xs:  # a history from before 0.2 has no learning_rate list
                    self.state[name] = [self.state[name][i] for i in keep if i < len(self.state[name])]
            self._iteration = cutoff
            self.state["stages"] = [mark for mark in self.state.get("stages", []) if mark["iteration"] <= cutoff]
        self._epoch_start = self._iteration
        if self.stage is not None and self.stage not in [mark["label"] for mark in self.state.get("stages", [])]:
            self.state.setdefault("stages", []).append({"label": self.stage, "iteration": self._iteration})

    def on_train_batch_begin(self, batch, logs=None):
        # The rate this step uses (a schedule's value moves on once the step is taken).
        rate = getattr(getattr(self.model, "optimizer", None), "learning_rate", None)
        self._rate = float(keras.ops.convert_to_numpy(rate)) if rate is not None else float("nan")

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self._iteration += 1
        self.state["iteration"].append(self._iteration)
        self.state["loss"].append(float(logs.get("loss", np.nan)))
        self.state["accuracy"].append(float(logs.get("accuracy", np.nan)))
        self.state["learning_rate"].append(self._rate)
        if (
            self.validation_frequency
            and self.validation_data is not None
            and self._iteration % self.validation_frequency == 0
        ):
            self._validate()

    def _validate(self):
        results = self.model.evaluate(self.validation_data, verbose=0, return_dict=True)
        self.state["val_iteration"].append(self._iteration)
        self.state["val_loss"].append(float(results["loss"]))
        self.state["val_accuracy"].append(float(results.get("accuracy", np.nan)))
        for name in VALIDATION_EXTRAS:
            self.state.setdefault(name, []).append(float(results.get(name[4:], np.nan)))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.state["iterations_per_epoch"] = self._iteration - self._epoch_start
        if "val_loss" in logs and (
            not self.state["val_iteration"] or self.state["val_iteration"][-1] != self._iteration
        ):
            self.state["val_iteration"].append(self._iteration)
            self.state["val_loss"].append(float(logs["val_loss"]))
            self.state["val_accuracy"].append(float(logs.get("val_accuracy", np.nan)))
            for name in VALIDATION_EXTRAS:
                self.state.setdefault(name, []).append(float(logs.get(name, np.nan)))
        self.state["epochs_done"] = epoch + 1
        self.save()

    def save(self, plot=None):
        """Write ``history.json`` (every epoch: resume reads it) and redraw ``progress.png`` when due."""
        atomic_write(self.state_path, lambda tmp: Path(tmp).write_text(json.dumps(self.state)))
        now = time.monotonic()
        if plot is None:
            plot = self._plotted_at is None or now - self._plotted_at >= self.MIN_PLOT_INTERVAL
        if plot:
            plot_progress(self.state, self.run.progress)
            self._plotted_at, self._plot_pending = now, False
        else:
            self._plot_pending = True

    def on_train_end(self, logs=None):
        if self._plot_pending:
            plot_progress(self.state, self.run.progress)
            self._plot_pending = False


def plot_progress(state, path, kept_epoch=None):
    """Accuracy, loss and the learning rate against iteration, training and validation, as a PNG.

    ``kept_epoch``: mark the end of the epoch ``model.keras`` holds (the output network).
    """
    plt = pyplot()

    rates = state.get("learning_rate") or []
    show_rate = len(rates) == len(state["iteration"]) and len(rates) > 0
    figure, axes = plt.subplots(3 if show_rate else 2, 1, figsize=(9, 9 if show_rate else 7), sharex=True)
    for axis, key, label in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        axis.plot(state["iteration"], state[key], color="tab:blue", linewidth=1, label="training (running epoch mean)")
        if state["val_iteration"]:
            axis.plot(
                state["val_iteration"], state[f"val_{key}"], "o--", color="black", markersize=4, label="validation"
            )
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(loc="best")
    if show_rate:
        axes[2].plot(state["iteration"], rates, color="tab:green", linewidth=1, label="base learning rate")
        axes[2].set_ylabel("Learning rate")
        axes[2].grid(alpha=0.3)
        axes[2].legend(loc="best")
    per_epoch = state.get("iterations_per_epoch")
    if per_epoch:
        for epoch in range(1, state["epochs_done"] + 1):
            for axis in axes:
                axis.axvline(epoch * per_epoch, color="grey", alpha=0.25, linewidth=0.8)
    for mark in state.get("stages", [])[1:]:  # the first stage starts at 0
        for axis in axes:
            axis.axvline(mark["iteration"], color="tab:red", linestyle="--", linewidth=1.2)
        axes[0].annotate(
            mark["label"],
            (mark["iteration"], 0.02),
            xycoords=("data", "axes fraction"),
            color="tab:red",
            xytext=(4, 0),
            textcoords="offset points",
        )
    if kept_epoch and per_epoch:
        for axis in axes:
            axis.axvline(kept_epoch * per_epoch, color="tab:green", linewidth=2, alpha=0.7)
        axes[1].annotate(
            f"model.keras: epoch {kept_epoch}",
            (kept_epoch * per_epoch, 0.95),
            xycoords=("data", "axes fraction"),
            color="tab:green",
            ha="right",
            xytext=(-4, 0),
            textcoords="offset points",
        )
    axes[-1].set_xlabel("Iteration")
    last = state["val_accuracy"][-1] if state["val_accuracy"] else None
    title = f"Training progress: epoch {state['epochs_done']}"
    if last is not None:
        title += f", validation accuracy {last:.3f}"
    axes[0].set_title(title)
    # Fixed margins that hold the widest tick labels (0.00012): tight_layout measured every text first, 0.1 s
    # of the plot's 0.25 s, and a run draws it at least twice.
    figure.subplots_adjust(
        left=0.12, right=0.97, top=0.95 if show_rate else 0.94, bottom=0.07 if show_rate else 0.08, hspace=0.1
    )
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    plt.close(figure)


class BestModelCheckpoint(keras.callbacks.Callback):
    """Keep ``model``'s weights whenever the monitored metric improves (and save it, atomically, to ``path``).

    ``record``: the JSON file that keeps the best value and its epoch (default: beside ``path``,
    ``<name>.best.json``), so a resumed run knows what it has to beat. ``saved_form``: a function
    from the model to what is saved (``train`` adds the class names and leaves out the optimizer).
    ``path`` None keeps the best weights in memory only (``best_weights``: layer name -> weights).
    """

    def __init__(self, path, model, monitor="val_accuracy", mode="max", record=None, saved_form=None):
        super().__init__()
        self.path = Path(path) if path is not None else None
        self.full_model, self.monitor, self.mode = model, monitor, mode
        self.saved_form = saved_form  # model -> the model to save (e.g. with its class names)
        if record is None and self.path is None:
            raise ValueError("BestModelCheckpoint needs a path or a record file.")
        self.best_path = Path(record) if record is not None else self.path.with_suffix(".best.json")
        recorded = json.loads(self.best_path.read_text()) if self.best_path.exists() else {}
        if recorded.get("monitor", "val_accuracy") != monitor:  # another metric's best (a record before 0.5)
            recorded = {}
        self.best, self.best_epoch = recorded.get("best"), recorded.get("epoch")
        self.best_weights = None  # filled at the first improvement of this process

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(value):
            return
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.best_epoch = float(value), epoch + 1
            self.best_weights = {
                layer.name: [np.array(w) for w in layer.get_weights()]
                for layer in self.full_model.layers
                if layer.weights
            }
            digest = None
            if self.path is not None:
                save_model_atomic(self.saved_form(self.full_model) if self.saved_form else self.full_model, self.path)
                digest = sha256_of(self.path)
            record = json.dumps(
                {"best": self.best, "epoch": self.best_epoch, "monitor": self.monitor, "sha256": digest}
            )
            atomic_write(self.best_path, lambda tmp: Path(tmp).write_text(record))
