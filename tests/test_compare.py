"""Recipes compared over seeds (``compare``) and ``recipe="auto"``."""

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import TINY as TINY_NETWORK
from conftest import listening, loopback, unpickled_in_a_fresh_process
from PIL import Image

from keras_alexnet import training
from keras_alexnet.cli import main
from keras_alexnet.datasets import DatasetError, ImageFolder
from keras_alexnet.experiments import Candidate, RunRecord, compare, summarize, train
from keras_alexnet.experiments.auto import rule_of_thumb
from keras_alexnet.run_directory import RunDirectoryError
from keras_alexnet.training import TrainingOptions
from keras_alexnet.training.options import AutoBudget

TINY = {**TINY_NETWORK, "epochs": 2}
TWO = [Candidate("frozen-features", "compact"), Candidate("fine-tune", "alexnet")]


def _record(recipe, seed, accuracy, seconds=1.0, head="alexnet"):
    return RunRecord(recipe, head, None, seed, accuracy, 0.5, 1, 10, seconds, [accuracy], [0.5])


def test_a_difference_inside_the_spread_is_a_tie_and_the_cheaper_wins():
    runs = [_record("fine-tune-all", s, a, seconds=40) for s, a in enumerate((0.92, 0.93, 0.91))]
    runs += [_record("frozen-features", s, a, seconds=10) for s, a in enumerate((0.91, 0.93, 0.90))]
    runs += [_record("matlab", s, a, seconds=5) for s, a in enumerate((0.70, 0.71, 0.72))]
    # A wide spread of its own does not make a weaker candidate a tie (and the cheapest a winner).
    runs += [_record("later-convs", s, a, seconds=1) for s, a in enumerate((0.95, 0.70, 0.85))]
    rows = summarize(runs)
    assert [row.candidate.recipe for row in rows] == ["fine-tune-all", "frozen-features", "later-convs", "matlab"]
    assert rows[0].verdict == "best" and rows[1].verdict.startswith("tie")
    assert rows[2].verdict.startswith("behind") and rows[3].verdict.startswith("behind")
    from keras_alexnet.experiments import Comparison

    assert Comparison(None, runs, rows, True).winner().candidate.recipe == "frozen-features"
    with pytest.raises(ValueError, match="non-finite"):
        summarize([_record("matlab", 0, float("nan"))])


def test_compare_ranks_by_the_metric_asked_for():
    """A candidate that answers the large class well ranks first by accuracy, last by balanced accuracy."""
    runs = []
    for seed in range(3):
        runs.append(dataclasses.replace(_record("fine-tune-all", seed, 0.90), val_balanced_accuracy=0.55))
        runs.append(dataclasses.replace(_record("frozen-features", seed, 0.85), val_balanced_accuracy=0.80))
    assert summarize(runs)[0].candidate.recipe == "fine-tune-all"
    rows = summarize(runs, metric="balanced-accuracy")
    assert [row.candidate.recipe for row in rows] == ["frozen-features", "fine-tune-all"]
    assert rows[1].verdict == "behind by 0.250" and rows[0].metric == "balanced-accuracy"
    with pytest.raises(ValueError, match="recorded by a version without it"):
        summarize([_record("matlab", 0, 0.5)], metric="macro-f1")  # a record from before 0.5


def test_auto_ranks_by_balanced_accuracy_when_the_largest_class_is_twice_the_smallest():
    from keras_alexnet.experiments.auto import ranking_metric

    imbalanced = ImageFolder([f"{i}.png" for i in range(30)], [0] * 20 + [1] * 10, ["cats", "dogs"])
    metric, why = ranking_metric(imbalanced)
    assert metric == "balanced-accuracy" and "cats has 20 images, dogs 10 (2.0:1" in why
    assert (
        ranking_metric(ImageFolder([f"{i}.png" for i in range(29)], [0] * 19 + [1] * 10, ["a", "b"]))[0] == "accuracy"
    )


@pytest.mark.slow
def test_a_killed_comparison_continues_where_it_stopped(shapes_dir, tmp_path):
    out = tmp_path / "cmp"
    one = [Candidate("frozen-features", "compact")]
    script = (
        "from keras_alexnet.experiments import compare, Candidate\n"
        f"compare({str(shapes_dir)!r}, candidates=[Candidate('frozen-features', 'compact')], seeds=2, "
        f"out={str(out)!r}, verbose=0, architecture='tiny', weights=None, batch_size=8, epochs=2)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.DEVNULL)
    first = out / "runs" / "frozen-features-compact-seed0" / "result.json"
    deadline = time.time() + 240
    while not first.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert first.exists(), "the first run never finished"
    kept = first.read_text()
    assert not (out / "summary.md").exists()  # killed before the end
    result = compare(shapes_dir, candidates=one, seeds=2, out=out, verbose=0, **TINY)
    assert first.read_text() == kept  # the finished run was not trained again
    assert len(result.runs) == 2 and (out / "summary.md").exists()
    # Other settings are refused, naming the fix; nothing changes.
    with pytest.raises(RunDirectoryError, match="other settings"):
        compare(shapes_dir, candidates=one, seeds=3, out=out, verbose=0, **TINY)
    assert first.read_text() == kept


@pytest.mark.slow
def test_auto_with_zero_budget_picks_by_the_rule_and_says_so(shapes_dir, tmp_path, capsys):
    # Batches of 4: fine-tune's head-only stage gets the rule's 5 steps or more.
    four = {**TINY, "batch_size": 4}
    result = train(shapes_dir, recipe="auto", auto_budget=0, val_split=0.3, run_dir=tmp_path / "run", verbose=2, **four)
    choice = json.loads((tmp_path / "run" / "auto.json").read_text())
    assert choice["rule"] == "few images per class" and "rule of thumb" in choice["reason"]
    assert (choice["recipe"], choice["head"]) == ("fine-tune", "alexnet")  # measured: benchmarks/AUTO_RULE.md
    assert result.options.recipe == "fine-tune" and result.options.head == "alexnet"
    assert json.loads((tmp_path / "run" / "options.json").read_text())["recipe"] == "fine-tune"
    assert "rule of thumb" in capsys.readouterr().out


def _photo_like(folder, classes=2, per_class=3, grey=False):
    rng = np.random.default_rng(0)
    for name in [f"c{i}" for i in range(classes)]:
        (folder / name).mkdir(parents=True)
        for k in range(per_class):
            # ImageNet's mean colour with photo-like spread
            pixels = np.clip(rng.normal([124, 116, 104], 55, (40, 40, 3)), 0, 255).astype(np.uint8)
            if grey:
                pixels[:] = pixels.mean(axis=2, keepdims=True).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{k}.png")
    return ImageFolder.read(folder)


def test_auto_is_resolved_by_experiments_not_by_training(shapes_dir, tmp_path):
    with pytest.raises(ValueError, match="keras_alexnet.experiments.train"):
        training.train(shapes_dir, recipe="auto", val_split=0.3, run_dir=tmp_path / "run", verbose=0, **TINY)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_the_rule_of_thumb(tmp_path, monkeypatch):
    from keras_alexnet.training import rule

    photos = _photo_like(tmp_path / "photos")  # 6 images: at batch 1, 6 steps per epoch
    assert rule_of_thumb(photos, batch_size=1)[:3] == ("fine-tune", "alexnet", "few images per class")
    # One epoch leaves fine-tune no second stage: the frozen convolutions and the compact head.
    assert rule_of_thumb(photos, epochs=1, batch_size=1)[:3] == ("frozen-features", "compact", "few images per class")
    assert rule_of_thumb(photos, epochs=2, batch_size=1)[0] == "fine-tune"
    # Fewer than 5 head-only steps (one batch of 32 here): the head would be untrained when the convolutions move.
    recipe, head, _, reason = rule_of_thumb(photos, batch_size=32)
    assert (recipe, head) == ("frozen-features", "alexnet") and "1 step(s)" in reason
    assert rule_of_thumb(photos, batch_size=32, freeze_epochs=5, epochs=8)[0] == "fine-tune"  # 5 head steps
    monkeypatch.setattr(rule, "MANY_IMAGES_PER_CLASS", 3)
    assert rule_of_thumb(photos)[:3] == ("fine-tune-all", "compact", "many images like ImageNet")
    grey = _photo_like(tmp_path / "grey", grey=True)
    assert rule_of_thumb(grey)[2] == "images unlike ImageNet"


def test_auto_files_belong_to_the_run(shapes_dir, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "auto.json").write_text("{}")
    with pytest.raises(RunDirectoryError, match="previous run"):  # the auto files belong to the run
        train(shapes_dir, recipe="auto", auto_budget=0, val_split=0.3, run_dir=tmp_path / "run", verbose=0, **TINY)


def test_auto_budget_forms():
    assert AutoBudget.parse(0) == AutoBudget(0) and AutoBudget.parse("3") == AutoBudget(3)
    assert AutoBudget.parse("10m") == AutoBudget(2, 10.0)
    with pytest.raises(ValueError, match="10m"):
        TrainingOptions(recipe="auto", auto_budget="soon")


@pytest.mark.slow
def test_compare_command_writes_the_table_the_runs_and_the_curves(shapes_dir, tmp_path, capfd, ray_here):
    """(And the Ray a comparison starts listens on loopback only: its servers, its trials' processes, this one.)"""
    out = tmp_path / "cmp"
    argv = ["compare", "--data", str(shapes_dir), "--recipes", "frozen-features", "--heads", "compact", "alexnet"]
    argv += ["--seeds", "2", "--epochs", "1", "--architecture", "tiny", "--weights", "none", "--out", str(out)]
    with listening() as sockets:
        assert main(argv) == 0
    names = {name for _, name, _, _ in sockets}
    assert {"gcs_server", "raylet"} <= names and any(name.startswith("ray::") for name in names), names
    assert all(loopback(ip) for _, _, ip, _ in sockets), sorted(sockets)
    printed = capfd.readouterr().out
    assert "frozen-features / compact" in printed and "[4/4]" in printed and "winner:" in printed
    with open(out / "runs.csv") as handle:
        runs = list(csv.DictReader(handle))
    assert {(run["head"], run["seed"]) for run in runs} == {(h, s) for h in ("compact", "alexnet") for s in "01"}
    assert all(0 <= float(run["val_accuracy"]) <= 1 for run in runs)
    with open(out / "summary.csv") as handle:
        summary = list(csv.DictReader(handle))
    for row in summary:  # each candidate's mean and spread over its seeds
        accuracies = [float(run["val_accuracy"]) for run in runs if run["head"] == row["head"]]
        assert float(row["mean_accuracy"]) == pytest.approx(np.mean(accuracies))
        assert float(row["std_accuracy"]) == pytest.approx(np.std(accuracies, ddof=1))
    assert float(summary[0]["mean_accuracy"]) >= float(summary[1]["mean_accuracy"])  # best first
    text = (out / "summary.md").read_text()
    assert "frozen-features / compact" in text and "frozen-features / alexnet" in text and "+-" in text
    assert (out / "curves.png").stat().st_size > 10_000
    # Every run is a whole run directory, finished (no backup), keeping numbers, not 228 MB models.
    assert (out / "runs" / "frozen-features-alexnet-seed1" / "progress.png").exists()
    assert not (out / "runs" / "frozen-features-alexnet-seed1" / "backup").exists()
    assert not list(out.glob("runs/*/*.keras"))
    assert main(argv) == 0 and printed.count("epoch 1/1") == 4  # each run's own process prints its line
    assert "finished before, kept" in capfd.readouterr().out  # the same command continues (nothing left)
    other = [*argv[:6], *argv[7:], "--overwrite", "--keep-models", "--seeds", "1", "--metric", "macro-f1", "--tta"]
    assert main(other) == 0  # other settings (one head, one seed)
    assert "finished before" not in capfd.readouterr().out  # --overwrite starts afresh
    assert {path.name for path in out.glob("runs/*/*.keras")} == {"model.keras"}
    assert "Ranked by validation macro f1" in (out / "summary.md").read_text()
    with open(out / "runs.csv") as handle:
        (run,) = list(csv.DictReader(handle))
    assert run["tta"] == "True" and 0 <= float(run["val_macro_f1"]) <= 1  # scored with test-time augmentation


# Two of the cheapest candidates on the shipped photos (frozen convolutions and the compact head on
# cached activations, at the recipe's rate and at 10x it), so the claim stays whole (what auto picks,
# trained over seeds, is within the best compared candidate's spread) at a fraction of the
# every-recipe comparison's time.
REAL_PHOTO_CANDIDATES = [Candidate("frozen-features", "compact"), Candidate("frozen-features", "compact", 1e-3)]


@pytest.mark.slow
def test_auto_with_a_small_budget_is_within_the_spread_of_the_best_on_real_photos(tmp_path):
    """On the shipped photos: auto's comparison (2 epochs per run, 2 seeds), then its choice trained to 3 epochs.
    (Two seeds, not auto's default three: the two candidates are 0.04 apart with spreads under 0.03, measured
    with both counts, and two trial processes fewer.)"""
    from conftest import PHOTOS

    # The claim is the accuracy: no TensorBoard or test-time augmentation (6 more passes through AlexNet).
    data = {
        "val": PHOTOS / "test",
        "epochs": 3,
        "verbose": 0,
        "report": False,
        "tensorboard": False,
        "measure_tta": False,
        "save_models": False,
    }
    result = train(
        PHOTOS / "train",
        recipe="auto",
        auto_budget=2,
        auto_candidates=REAL_PHOTO_CANDIDATES,
        auto_seeds=2,
        cache_activations=True,
        run_dir=tmp_path / "auto",
        **data,
    )
    with open(tmp_path / "auto" / "auto_comparison" / "summary.csv") as handle:
        summary = list(csv.DictReader(handle))
    assert len(summary) == len(REAL_PHOTO_CANDIDATES)
    best = summary[0]
    choice = json.loads((tmp_path / "auto" / "auto.json").read_text())
    assert choice["table"] == (tmp_path / "auto" / "auto_comparison" / "summary.md").read_text()
    assert "comparison of 2 candidates over 2 seeds," in choice["reason"] and choice["metric"] == "accuracy"
    chosen = {
        "recipe": result.options.recipe,
        "head": result.options.head,
        "learning_rate": result.options.learning_rate,
    }
    assert (chosen["recipe"], chosen["head"], chosen["learning_rate"]) == (
        choice["recipe"],
        choice["head"],
        choice["learning_rate"],
    )
    finals = [result.val_accuracy]
    for seed in (0, 1):  # what auto trains, with each seed (on the comparison's cached activations)
        finals.append(
            train(
                PHOTOS / "train",
                seed=seed,
                cache_activations=result.options.cache_activations,
                shared_activations=tmp_path / "auto" / "auto_comparison" / "activations",
                run_dir=tmp_path / f"seed{seed}",
                **chosen,
                **data,
            ).val_accuracy
        )
    # Seed 0 alone trains as auto's winner did: the comparison's random draws do not leak into it.
    assert finals[1] == pytest.approx(finals[0], abs=1e-6), finals
    mean = float(np.mean(finals[1:]))
    assert mean >= float(best["mean_accuracy"]) - float(best["std_accuracy"]), (chosen, finals, best)


def test_a_time_limit_stops_starting_runs(shapes_dir, tmp_path):
    with pytest.raises(ValueError, match="no run finished within the time limit"):
        compare(shapes_dir, candidates=TWO, seeds=1, out=tmp_path / "cmp", time_limit=0, verbose=0, **TINY)
    assert not (tmp_path / "cmp" / "runs").exists()


def test_a_comparison_in_use_is_refused_naming_the_comparison_and_out(shapes_dir, tmp_path):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "comparison.lock").write_text(f"{os.getppid()}\n")  # a live process holds it
    with pytest.raises(RunDirectoryError, match=r"in use by another comparison .* choose another --out"):
        compare(shapes_dir, candidates=TWO, seeds=1, out=out, verbose=0, **TINY)
    assert sorted(path.name for path in out.iterdir()) == ["comparison.lock"]  # nothing else written


def test_experiments_train_passes_a_named_recipe_straight_to_training(shapes_dir, tmp_path):
    import keras

    seen = []

    class Seen(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(epoch)

    shared = {}
    options = {"recipe": "frozen-features", "val_split": 0.3, "cache_activations": True, "verbose": 0}
    train(shapes_dir, run_dir=tmp_path / "run", callbacks=[Seen()], shared_activations=shared, **options, **TINY)
    assert seen == [0, 1] and shared  # its callbacks ran, and its activation cache went to the shared dict


def test_time_left_counts_whole_runs_not_just_their_epochs():
    """The estimate a comparison prints: after a run, the runs' mean wall time (start-up, caches and
    evaluation included); in the first run, its own pace so far. Counting epochs alone said "3 minutes
    left" of a 15-minute comparison."""
    from keras_alexnet.experiments.progress import time_left

    first = {"epochs": 3, "per_run": None, "runs_after": 9}
    # 2 of 3 epochs done in 20 s of the run (10 s per epoch, start-up included): 1 + 27 epochs left.
    assert time_left(first, 2, 20.0) == pytest.approx(280.0)
    later = {"epochs": 3, "per_run": 40.0, "runs_after": 5}
    assert time_left(later, 1, 15.0) == pytest.approx(25.0 + 200.0)
    assert time_left(later, 3, 60.0) == pytest.approx(200.0)  # a slow run: nothing negative
    assert time_left({**later, "runs_after": 0}, 3, 45.0) == 0.0
    # A resumed first run: epoch 99,500 of 100,000 reached after this process trained 500 epochs in 50 s.
    resumed = {"epochs": 100_000, "per_run": None, "runs_after": 0}
    assert time_left(resumed, 99_500, 50.0, trained=500) == pytest.approx(500 * 0.1)


def test_a_run_resumed_after_its_last_epoch_records_the_whole_runs_curves(tmp_path):
    """A comparison stopped between a run's last backup and its result.json (two trials at a time make
    it likely) resumes a process that trains no epoch: the record's curves come from the run's log.csv."""
    from types import SimpleNamespace

    from keras_alexnet import TINY as TINY_ARCHITECTURE
    from keras_alexnet import AlexNet
    from keras_alexnet.experiments.trial import run_record

    (tmp_path / "log.csv").write_text(
        "epoch,loss,val_accuracy,val_balanced_accuracy,val_loss,val_macro_f1\n"
        "0,1.2,0.50,0.50,1.10,0.40\n1,0.9,0.75,0.70,0.80,NA\n"
    )
    model = AlexNet(weights=None, classes=2, architecture=TINY_ARCHITECTURE)
    result = SimpleNamespace(history={}, run_dir=tmp_path, output_epoch=2, model=model, seconds=3.0)
    record = run_record(Candidate("frozen-features", "compact"), 1, result)
    assert record.val_accuracy_curve == [0.5, 0.75] and record.val_loss_curve == [1.1, 0.8]
    assert (record.val_accuracy, record.val_loss, record.best_epoch) == (0.75, 0.8, 2)
    assert record.val_balanced_accuracy == 0.7 and np.isnan(record.val_macro_f1)


@pytest.mark.slow
def test_compare_regularizers_are_candidates_whose_runs_train_with_them(shapes_dir, tmp_path, capfd):
    out = tmp_path / "cmp"
    argv = ["compare", "--data", str(shapes_dir), "--recipes", "frozen-features", "--heads", "compact"]
    # Without "none": every other comparison's runs are the plain ones.
    argv += ["--regularizers", "mixup", "ema", "--seeds", "1", "--epochs", "1", "--architecture", "tiny"]
    argv += ["--weights", "none", "--out", str(out)]
    assert main(argv) == 0
    assert "frozen-features / compact + mixup" in capfd.readouterr().out
    with open(out / "runs.csv") as handle:
        runs = {run["regularizer"]: run for run in csv.DictReader(handle)}
    assert set(runs) == {"mixup", "ema"}
    recorded = {
        name: json.loads((out / "runs" / f"frozen-features-compact-{name}-seed0" / "options.json").read_text())
        for name in ("mixup", "ema")
    }
    assert recorded["mixup"]["mixup"] == 0.4 and not recorded["mixup"]["cache_activations"]  # mixing needs images
    assert recorded["ema"]["ema"] == 0.99 and recorded["ema"]["cache_activations"]  # sound on cached activations
    assert recorded["mixup"]["ema"] == 0 and recorded["ema"]["mixup"] == 0  # each run its own regularizer only


def test_compare_refuses_the_training_folder_as_the_validation_folder(shapes_dir, tmp_path):
    with pytest.raises(DatasetError, match="validation images must be held out"):
        compare(shapes_dir, val=shapes_dir, out=tmp_path / "cmp", verbose=0, **TINY)
    assert not (tmp_path / "cmp").exists()


@pytest.mark.slow
def test_the_time_limit_stops_a_run_that_is_training_keeping_its_backup(shapes_dir, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--data", str(shapes_dir), "--out", str(out), "--recipes", "fine-tune-all", "--heads", "compact"]
    argv += ["--seeds", "1", "--epochs", "100000", "--architecture", "tiny", "--weights", "none", "--batch-size", "8"]
    started = time.perf_counter()
    # Half a minute: time for the trial's process to start and back up an epoch, even on a busy machine.
    assert main([*argv, "--time-limit", "0.5"]) == 2  # no run finished: said, and nothing runs on
    assert "no run finished within the time limit" in capsys.readouterr().err
    assert time.perf_counter() - started < 120
    (run,) = (out / "runs").iterdir()
    assert (run / "backup").exists() and not (run / "result.json").exists()  # stopped with its backup kept


def test_a_full_disk_inside_a_trial_is_the_sized_message_not_the_raw_errno(shapes_dir, tmp_path, monkeypatch):
    import errno
    import importlib

    trial = importlib.import_module("keras_alexnet.experiments.trial")
    from keras_alexnet.recipes import HEADS, RECIPES

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(trial, "train", full)
    folder = ImageFolder.read(shapes_dir)
    job = {
        "run_dir": str(tmp_path / "cmp" / "runs" / "a"),
        "recipe": RECIPES["frozen-features"].to_dict(),
        "head": HEADS["compact"].to_dict(),
        "train": folder.to_dict(),
        "val": folder.to_dict(),
        "candidate": dataclasses.asdict(Candidate("frozen-features", "compact")),
        "options": TrainingOptions(architecture="tiny", weights=None).to_dict(),
        "shared": str(tmp_path / "cmp" / "activations"),
        "seed": 0,
    }
    assert trial.run_job(job) == 1
    found = json.loads((tmp_path / "cmp" / "runs" / "a" / trial.ERROR).read_text())
    assert found["type"] == "DiskFullError"
    assert "no space left in" in found["message"] and "MB are free" in found["message"]
    assert "run the same command again" in found["message"]


def test_a_trials_process_loads_no_keras_before_the_trial_runs():
    """Ray pickles the trial's function by value (``engine._trainable``): unpickled in a fresh process, as Ray's
    worker does, it loads neither Keras nor TensorFlow, so the trial imports Keras as a command's process does
    (without its extras, the start-up lines hidden: test_runtime.py)."""
    from keras_alexnet.experiments import engine

    assert unpickled_in_a_fresh_process(engine._trainable(1, 0)) == ["_trial", "False", "False"]
