"""``train`` on several workers: ``MultiWorkerMirroredStrategy``, the chief writing the run directory.

Each worker (a process with ``TF_CONFIG``, set by Ray Train's ``TensorflowTrainer`` or by the user's
own launcher) builds the same model under the strategy, reads every n-th example of each epoch
(``training.distributed.distributed_fit``: the global batch split across the workers, the factors,
freezing and class weights kept) and resumes from the run's last backup, which every worker reads
from the shared run directory. Only the chief (worker 0) writes: ``log.csv``, ``history.json`` and
the progress plot, a backup after every epoch, the validation scores, and at the end ``model.keras``.

Keras 3's ``fit`` does not run under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585), hence
the epoch loop here. What data parallelism changes, as in every framework: dropout draws its masks
and batch norm its statistics per worker's share of the batch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet._utils import signals
from keras_alexnet._utils.flags import facts_of, flag_name
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.datasets.class_weights import weighted
from keras_alexnet.run_directory import RunDirectory
from keras_alexnet.training.batches import training_batches
from keras_alexnet.training.callbacks import TrainingProgress, restore_random_states, trim_csv_log, write_backup
from keras_alexnet.training.distributed import DistributedSteps
from keras_alexnet.training.finishing import run_checkpoint
from keras_alexnet.training.fitting import run_callbacks, stage_schedule
from keras_alexnet.training.setup import (
    activation_pipelines,
    balancing,
    build_model,
    caches_stage,
    configure,
    enter_stage,
    stage_epochs,
    stage_label,
)
from keras_alexnet.training.stages import Fitted


def cluster_spec():
    """(workers, this worker's index, whether it is the chief) from ``TF_CONFIG``, or None without one."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        index = int(task["index"])
        chief = task["type"] == "chief" or (task["type"] == "worker" and index == 0 and "chief" not in cluster)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"TF_CONFIG is not TensorFlow's cluster description ({type(error).__name__}: {error}): give "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": N}}, or unset it.'
        ) from None
    return workers, index, chief


def check_supported(options):
    """Refuse options several workers cannot run (their fields say why), naming them."""
    refused = [
        f"{flag_name(field)} ({facts_of(field).workers})"
        for field in dataclasses.fields(options)
        if facts_of(field).workers and getattr(options, field.name) != field.default
    ]
    if refused:
        raise ValueError(
            f"training on several workers does not run {'; '.join(refused)}: train on one worker, or leave out "
            f"{'that flag' if len(refused) == 1 else 'those flags'}."
        )


WORKER_WAIT_SECONDS = 300  # a worker that never comes: TensorFlow would wait for ever


def train_worker(train_set, val_set, options, run_dir, strategy, chief, verbose=1):
    """One worker's share of a run: the epochs from the run's last backup to ``options.epochs``.

    Every worker calls this with the same arguments at the same time and drives the callbacks one
    process's ``fit`` would (``fitting.run_callbacks``: patience, the learning-rate schedule, the output
    network's checkpoint); the chief's also write the run directory (``run_dir``, on storage every worker
    sees): ``log.csv``, ``history.json``, the plot, ``best.keras`` and a backup after every epoch.
    Returns ``stages.Fitted`` (the chief; ``val_ds`` None) or None.
    """
    check_supported(options)
    run = RunDirectory(run_dir)
    configure(options)
    classes = len(train_set.class_names)
    steps_per_epoch = math.ceil(len(train_set) / options.batch_size)
    # The first collective (the initial weights) waits for every worker: bounded, with one line naming them.
    with strategy.scope(), waiting_for_workers():
        model = build_model(options, classes, steps_per_epoch)
        model.optimizer.build(model.trainable_variables)
    done, stage, base_rate = _resume(model, options, strategy, run, classes, steps_per_epoch)
    resumed_stage = stage  # its optimizer came from the backup: its schedule starts from base_rate
    weights, val_weights = balancing(options, train_set, val_set)
    checkpoint = None
    if chief:
        trim_csv_log(run.log, done)  # an epoch logged after the last backup is trained again
        if val_set is not None:
            checkpoint = run_checkpoint(options, run, model, train_set.class_names)
    history = {}
    for index, (first, last) in enumerate(stage_epochs(options)):
        number = index + 1
        if number < stage:
            continue
        if number > stage:  # fastai's fine_tune: the next stage's frozen layers, factors and a new optimizer
            _enter(model, options, strategy, index, steps_per_epoch)
            stage = number
            if chief:
                write_backup(model, run.backup, first, stage=number)
        callbacks = _stage_callbacks(
            model,
            options,
            run,
            index,
            last,
            steps_per_epoch,
            chief,
            val_set is not None,
            done > 0 or index > 0,
            checkpoint,
            base_rate if number == resumed_stage else None,
        )
        cache = _cached(model, options, train_set, run, strategy, index)
        steps = DistributedSteps(cache["model"] if cache else model, strategy)  # traced once per stage
        scorer = DistributedSteps(model, strategy) if cache else steps  # validation runs the whole model
        model.stop_training = False  # --patience ends a stage, as in fit
        callbacks.on_train_begin()
        epochs = range(max(done, first), last)
        for epoch in epochs:
            logs = _epoch(steps, scorer, callbacks, train_set, val_set, options, epoch, (weights, val_weights), cache)
            callbacks.on_epoch_end(epoch, logs)
            if chief:
                for key, value in logs.items():
                    history.setdefault(key, []).append(value)
                write_backup(model, run.backup, epoch + 1, stage=number)
                if verbose:
                    scores = ", ".join(f"{key} {value:.4f}" for key, value in logs.items())
                    print(f"epoch {epoch + 1}/{options.epochs} on {strategy.num_replicas_in_sync} workers: {scores}")
            if model.stop_training:
                break
        if epochs:  # --ema: the moving average in the weights, as fit ends a stage that trained
            model.optimizer.finalize_variable_values(model.trainable_variables)
        callbacks.on_train_end()
    return Fitted(model, history, checkpoint, None, None, False) if chief else None


def _resume(model, options, strategy, run, classes, steps_per_epoch):
    """(epochs done, stage, the stage's base rate) of the run's backup, its weights, optimizer and random draws
    loaded (every worker reads the same backup); (0, 1, None) for a run without one. The base rate is the
    optimizer's before the backup's (a schedule's dropped rate) replaces it: what the schedule starts from."""
    if not run.has_backup():
        return 0, 1, None
    done, stage = run.check_resumable(classes)
    if stage > 1:  # the backup holds a later stage's model and optimizer
        _enter(model, options, strategy, stage - 1, steps_per_epoch)
    base_rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    metadata = json.loads(run.backup_metadata.read_text())
    model.load_weights(run.backup / metadata["weights"])
    if metadata.get("random_states"):
        restore_random_states(model, metadata["random_states"])
    return done, stage, base_rate


def _enter(model, options, strategy, stage_index, steps_per_epoch):
    with strategy.scope():
        enter_stage(model, options, stage_index, steps_per_epoch)
        model.optimizer.build(model.trainable_variables)


def _stage_callbacks(model, options, run, index, last, steps_per_epoch, chief, validated, append, checkpoint, rate):
    """The stage's ``fitting.run_callbacks`` as a Keras ``CallbackList`` the loop drives (the chief's write the
    run directory); ``rate``: the stage's base rate when a backup restored its optimizer."""
    recipe = options.recipe_object
    label = stage_label(index + 1, recipe.stages[index]) if recipe.two_stage else None
    return keras.callbacks.CallbackList(
        run_callbacks(
            run,
            model,
            append=append,
            validated=validated,
            progress=TrainingProgress(run, None, stage=label) if chief else None,
            checkpoint=checkpoint,
            output_network=options.output_network,
            patience=options.patience,
            lr_schedule=stage_schedule(model, options, recipe.stages[index], rate),
        ),
        model=model,
        epochs=last,
        steps=steps_per_epoch,
    )


def _cached(model, options, train_set, run, strategy, index):
    """With ``--cache-activations``, for a stage whose leading layers are frozen (as one process caches):
    ``setup.activation_pipelines``' cut, the frozen layers run once over the training images by every worker
    (a cache too large for memory goes to a folder of this worker's own); else None."""
    if not caches_stage(options, index):
        return None
    task = strategy.cluster_resolver.task_id  # None for a worker without TF_CONFIG (one alone)
    folder = run.activation_cache / f"worker-{task if task is not None else 0}"
    return activation_pipelines(model, options, train_set, None, folder)


def _epoch(steps, scorer, callbacks, train_set, val_set, options, epoch, weights, cache=None):
    """One epoch on every worker (the batches and augmentation of (seed, epoch), each worker decoding its
    share only, or its rows of the cached activations), with ``callbacks``' epoch, batch and validation
    events; the epoch's logs. ``weights``: the classes' (training, validation) weights."""

    def dataset_fn(context):
        batch = context.get_per_replica_batch_size(options.batch_size)
        shard = (context.num_input_pipelines, context.input_pipeline_id)
        if cache is not None:
            rows = cache["activations"].dataset(
                batch, True, options.seed, epoch + 1, epoch, options.balanced_sampling, shard=shard
            )
            return weighted(rows, weights[0])
        return training_batches(
            train_set, options, weights[0], epochs=epoch + 1, start_epoch=epoch, shard=(*shard, batch)
        )

    callbacks.on_epoch_begin(epoch)
    logs = steps.epoch(dataset_fn, callbacks)
    callbacks.on_test_begin()  # the moving average's weights, with --ema (regularizers.ValidateAveragedWeights)
    scores = _validation(scorer, val_set, weights[1], options.batch_size)  # every worker scores its share
    callbacks.on_test_end(scores)
    return {**logs, **scores}


def _validation(steps, val_set, val_weights, batch_size):
    """{val_loss, val_accuracy} on the validation images (weighted like training), each worker scoring every
    n-th image; the set is padded with weight-0 copies to a multiple of the workers, so that every worker
    takes as many steps. {} without a validation set."""
    if val_set is None:
        return {}
    count = len(val_set)

    def dataset_fn(context):
        workers = context.num_input_pipelines
        positions = range(context.input_pipeline_id, count + (-count % workers), workers)
        mine = [position if position < count else 0 for position in positions]  # padding: image 0, weight 0
        share = ImageFolder([val_set.paths[i] for i in mine], [val_set.labels[i] for i in mine], val_set.class_names)
        table = np.ones(len(val_set.class_names), np.float32) if val_weights is None else np.asarray(val_weights)
        weights = np.asarray(
            [table[val_set.labels[i]] if position < count else 0.0 for position, i in zip(positions, mine)], np.float32
        )
        batch = context.get_per_replica_batch_size(batch_size)
        examples = tf.data.Dataset.zip((share.dataset(batch), tf.data.Dataset.from_tensor_slices(weights).batch(batch)))
        return examples.map(lambda pair, weight: (pair[0], pair[1], weight))

    return steps.scores(dataset_fn)


def use_cpus(cpus):
    """TensorFlow's thread pools sized to the CPUs Ray gave this worker (TensorFlow would take every core of
    the machine, and workers that share one would fight over them). Before the process's first op."""
    threads = max(int(cpus), 1)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError:
        pass  # TensorFlow already started in this process: its pools stay as they are


def strategy_for_workers():
    """``MultiWorkerMirroredStrategy`` from ``TF_CONFIG`` (made before any other TensorFlow op of the process)."""
    with waiting_for_workers():
        return tf.distribute.MultiWorkerMirroredStrategy()


def waiting_for_workers():
    """A bounded wait for the workers ``TF_CONFIG`` names (``WORKER_WAIT_SECONDS``; the command line ends with one
    line naming them; the environment's ``KERAS_ALEXNET_WORKER_WAIT_SECONDS`` changes it)."""
    workers = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {}).get("worker", [])
    return signals.deadline(
        signals.wait_seconds("WORKER_WAIT", WORKER_WAIT_SECONDS),
        f"the {len(workers)} workers TF_CONFIG names ({', '.join(workers)})",
        "start the same command on every worker TF_CONFIG lists (or correct TF_CONFIG); the run is kept",
    )
