"""The run directory's backup survives a crash in the middle of writing it."""

import json

import keras
import numpy as np
import pytest

from keras_alexnet._utils.checksum import sha256_of
from keras_alexnet.training.callbacks import AtomicBackupAndRestore


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(8, activation="relu")(inputs)))
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class _CrashWhileSavingAtEpoch(keras.callbacks.Callback):
    """Makes the model's next weight save write half a file and die, from epoch ``epoch`` on."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:

            def crash(filepath, overwrite=True):
                with open(filepath, "wb") as half_written:
                    half_written.write(b"\x89HDF\r\n")
                raise KeyboardInterrupt("killed while writing the backup")

            self.model.save_weights = crash


def test_a_crash_while_writing_the_backup_leaves_the_previous_one_to_resume_from(tmp_path):
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    y = np.arange(16) % 2
    backup = tmp_path / "backup"
    # The crash callback runs before the backup's epoch end, so the save after epoch 2 dies half-way.
    with pytest.raises(KeyboardInterrupt):
        _model().fit(
            x,
            y,
            epochs=3,
            verbose=0,
            shuffle=False,
            callbacks=[_CrashWhileSavingAtEpoch(2), AtomicBackupAndRestore(str(backup))],
        )
    metadata = json.loads((backup / "training_metadata.json").read_text())
    assert metadata["epoch"] == 1
    assert sorted(p.name for p in backup.iterdir()) == sorted(
        [metadata["weights"], "training_metadata.json"]
    )  # no temporary files

    resumed, epochs_run = _model(), []
    log_epochs = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs_run.append(epoch))
    resumed.fit(x, y, epochs=3, verbose=0, shuffle=False, callbacks=[AtomicBackupAndRestore(str(backup)), log_epochs])
    assert epochs_run == [1, 2]
    uninterrupted = _model()
    uninterrupted.fit(x, y, epochs=3, verbose=0, shuffle=False)
    for got, want in zip(resumed.get_weights(), uninterrupted.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert not backup.exists(), "a finished run deletes its backup"


def test_each_backup_replaces_the_previous_one_and_names_its_file(tmp_path):
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    y = np.arange(16) % 2
    backup = tmp_path / "backup"
    callback = AtomicBackupAndRestore(str(backup), delete_checkpoint=False)
    _model().fit(x, y, epochs=3, verbose=0, callbacks=[callback])
    assert sorted(p.name for p in backup.iterdir()) == ["epoch-3.weights.h5", "training_metadata.json"]
    metadata = json.loads((backup / "training_metadata.json").read_text())
    assert metadata.pop("sha256") == sha256_of(backup / "epoch-3.weights.h5")  # what --resume checks
    assert metadata == {
        "epoch": 3,
        "batch": 0,
        "weights": "epoch-3.weights.h5",
        "stage": 1,  # of a two-stage recipe (fine-tune); one-stage runs have only stage 1
        "random_states": {},  # the model has no dropout layer
    }


def test_a_backup_whose_weights_file_is_gone_is_refused_clearly(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "training_metadata.json").write_text(
        json.dumps({"epoch": 2, "batch": 0, "weights": "epoch-2.weights.h5"})
    )
    x, y = np.zeros((4, 4), np.float32), np.zeros(4, int)
    with pytest.raises(FileNotFoundError, match="epoch-2.weights.h5, which is missing"):
        _model().fit(x, y, epochs=3, verbose=0, callbacks=[AtomicBackupAndRestore(str(backup))])


class _CrashAtEpochBegin(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"killed in epoch {epoch}")


def test_backing_up_every_second_epoch_resumes_from_the_last_backup_with_the_same_result(tmp_path):
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    y = np.arange(16) % 2
    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        _model().fit(
            x,
            y,
            epochs=5,
            verbose=0,
            shuffle=False,
            callbacks=[AtomicBackupAndRestore(str(backup), every_epochs=2), _CrashAtEpochBegin(3)],
        )
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 2  # not 3: epoch 3 was not backed up

    resumed, epochs_run = _model(), []
    log_epochs = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs_run.append(epoch))
    resumed.fit(
        x,
        y,
        epochs=5,
        verbose=0,
        shuffle=False,
        callbacks=[AtomicBackupAndRestore(str(backup), every_epochs=2), log_epochs],
    )
    assert epochs_run == [2, 3, 4]
    uninterrupted = _model()
    uninterrupted.fit(x, y, epochs=5, verbose=0, shuffle=False)
    for got, want in zip(resumed.get_weights(), uninterrupted.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("every", [0, -1, 1.5, True])
def test_a_backup_frequency_that_is_not_a_positive_whole_number_is_refused(tmp_path, every):
    with pytest.raises(ValueError, match="every_epochs=.*whole number of epochs"):
        AtomicBackupAndRestore(str(tmp_path), every_epochs=every)


def test_a_resumed_run_logs_each_epoch_once(tmp_path):
    import tensorflow as tf

    from keras_alexnet.training import fit

    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((x, np.arange(16) % 2)).batch(8)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), data, epochs=5, run_dir=run, backup_every=2, verbose=0, extra_callbacks=[_CrashAtEpochBegin(3)])
    fit(_model(), data, epochs=5, run_dir=run, backup_every=2, resume=True, verbose=0)
    epochs = [line.split(",")[0] for line in (run / "log.csv").read_text().splitlines()]
    assert epochs == ["epoch", "0", "1", "2", "3", "4"]
    assert json.loads((run / "history.json").read_text())["epochs_done"] == 5


def test_fit_keeps_the_best_epoch_in_best_keras_unless_told_not_to(tmp_path):
    import tensorflow as tf

    from keras_alexnet.training import fit

    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((x, np.arange(16) % 2)).batch(8)
    fit(_model(), data, data, epochs=2, run_dir=tmp_path / "kept", verbose=0)
    assert (tmp_path / "kept" / "best.keras").is_file()
    fit(_model(), data, data, epochs=2, run_dir=tmp_path / "none", verbose=0, checkpoint=False)
    assert not (tmp_path / "none" / "best.keras").exists()
    assert (tmp_path / "none" / "log.csv").is_file()  # the log still tells the best epoch
