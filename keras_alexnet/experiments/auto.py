"""``recipe="auto"``: choose the recipe from the data, by a short comparison or by the guides' rule.

With a budget, ``choose_recipe`` runs ``compare`` (every recipe and head, three seeds,
``budget`` epochs each) and takes the best mean accuracy (balanced accuracy on imbalanced
classes); on a tie (inside the spread) the cheaper candidate. With a zero budget it applies a
rule of thumb, measured against full comparisons (``rule_of_thumb``). Either way the choice
and its reason go to ``auto.json`` in the run directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from keras_alexnet._utils.choices import ACCURACY, BALANCED_ACCURACY, IMBALANCE_RATIO, metric_flag
from keras_alexnet._utils.files import atomic_write
from keras_alexnet.experiments.candidates import candidates_of
from keras_alexnet.experiments.compare import ACTIVATIONS, Cluster, compare
from keras_alexnet.options import AUTO, AutoBudget
from keras_alexnet.recipes import RECIPES
from keras_alexnet.report import report_run
from keras_alexnet.run_directory import RunDirectory
from keras_alexnet.training import TrainingOptions
from keras_alexnet.training import train as train_recipe
from keras_alexnet.training.loop import finished_result, prepare_run, train_locked
from keras_alexnet.training.on_workers import train_on_workers, train_with_tf_config
from keras_alexnet.training.resume import resumed_options
from keras_alexnet.training.rule import imagenet_likeness, rule_of_thumb

__all__ = ["AutoBudget", "AutoChoice", "choose_recipe", "imagenet_likeness", "resolve_auto", "rule_of_thumb", "train"]


@dataclasses.dataclass
class AutoChoice:
    """The recipe ``auto`` chose, and why."""

    recipe: str
    head: str
    reason: str
    rule: str | None = None  # the rule that decided (zero budget)
    comparison: str | None = None  # the comparison directory (with a budget)
    table: str | None = None  # its Markdown summary
    learning_rate: float | None = None  # the winning candidate's base rate (None: the recipe's)
    metric: str = "accuracy"  # what the comparison ranked by (balanced accuracy for imbalanced classes)

    def save(self, path):
        text = json.dumps(dataclasses.asdict(self), indent=2) + "\n"
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def ranking_metric(train_set):
    """(metric, why): balanced accuracy when the largest class has at least ``IMBALANCE_RATIO`` times the
    images of the smallest (plain accuracy would reward answering the large class), else accuracy."""
    counts = train_set.counts()
    largest, smallest = max(counts, key=counts.get), min(counts, key=counts.get)
    if counts[smallest] and counts[largest] >= IMBALANCE_RATIO * counts[smallest]:
        return metric_flag(BALANCED_ACCURACY), (
            f"ranked by balanced accuracy: {largest} has {counts[largest]} images, {smallest} {counts[smallest]} "
            f"({counts[largest] / counts[smallest]:.1f}:1, imbalanced from {IMBALANCE_RATIO}:1)"
        )
    return metric_flag(ACCURACY), "ranked by accuracy (the classes are balanced within 2:1)"


def auto_candidates(budget_epochs, final_epochs, freeze_epochs, candidates=None):
    """The comparison's candidates: every recipe and head, less two-stage recipes that the epochs leave no second stage."""
    epochs = min(budget_epochs, final_epochs or budget_epochs)
    return [
        candidate
        for candidate in (candidates if candidates is not None else candidates_of())
        if not RECIPES[candidate.recipe].two_stage or epochs > freeze_epochs
    ]


def choose_recipe(
    train_set,
    val_set,
    options,
    budget,
    directory,
    verbose=1,
    final_epochs=None,
    candidates=None,
    seeds=3,
    cluster=None,
):
    """Choose the recipe for ``train(recipe="auto")`` and write ``directory/auto.json``.

    ``budget`` (``AutoBudget`` or what ``AutoBudget.parse`` reads): zero epochs apply the
    rule of thumb; otherwise a comparison of every recipe and head (or ``candidates``) over
    ``seeds`` seeds, ``budget.epochs`` each, in ``directory/auto_comparison``; the winner is the
    best mean, or on a tie the cheaper of those tied. ``final_epochs``: the epochs the chosen
    recipe will train (a two-stage recipe needs more than ``options.freeze_epochs``). ``cluster``: where
    the comparison's trials run (``compare.Cluster``; default this machine).
    """
    budget = AutoBudget.parse(budget)
    run = RunDirectory(directory)
    if budget.epochs == 0:
        recipe, head, rule, reason = rule_of_thumb(train_set, final_epochs, options.freeze_epochs, options.batch_size)
        choice = AutoChoice(recipe, head, reason, rule=rule)
    else:
        if val_set is None:
            raise ValueError(
                "recipe='auto' with a budget compares recipes on validation data: give --val or --val-split."
            )
        metric, ranked = ranking_metric(train_set)
        comparison = compare(
            train_set,
            options.replace(recipe=next(iter(RECIPES)), epochs=budget.epochs, val_split=None),
            val=val_set,
            candidates=auto_candidates(budget.epochs, final_epochs, options.freeze_epochs, candidates),
            seeds=seeds,
            out=run.auto_comparison,
            time_limit=None if budget.minutes is None else budget.minutes * 60,
            stop_running=False,  # "stop starting runs after N minutes": the started ones finish
            verbose=verbose,
            metric=metric,
            cluster=cluster,
        )
        winner = comparison.winner()
        how = (
            "the best mean"
            if winner is comparison.best
            else f"tied with the best ({comparison.best.candidate.name}) and cheaper"
        )
        reason = (
            f"comparison of {len(comparison.summary)} candidates over {winner.seeds} seed{'s' if winner.seeds != 1 else ''}, "
            f"{budget.epochs} epochs each, {ranked}: "
            f"{winner.candidate.name} has {how}: validation {metric.replace('-', ' ')} {winner.mean_score:.3f} +- "
            f"{winner.std_score:.3f}, {winner.seconds:.0f} s per run"
        )
        choice = AutoChoice(
            winner.candidate.recipe,
            winner.candidate.head,
            reason,
            comparison=str(run.auto_comparison),
            table=comparison.markdown(),
            learning_rate=winner.candidate.learning_rate,
            metric=metric,
        )
    choice.save(run.auto)
    if verbose:
        rate = "" if choice.learning_rate is None else f" at base rate {choice.learning_rate:g}"
        print(f"recipe auto: {choice.recipe} with the {choice.head} head{rate} ({choice.reason})")
    return choice


def resolve_auto(options, train_set, val_set, run_dir, resume=False, verbose=1, candidates=None, seeds=3, cluster=None):
    """``recipe="auto"``: the options with the recipe and head ``choose_recipe`` picks (or picked, on resume)."""
    run = RunDirectory(run_dir)
    if resume and run.auto.exists():
        choice = AutoChoice(**json.loads(run.auto.read_text()))
    else:
        choice = choose_recipe(
            train_set,
            val_set,
            options,
            options.auto_budget,
            run.path,
            verbose=verbose,
            final_epochs=options.epochs,
            candidates=candidates,
            seeds=seeds,
            cluster=cluster,
        )
    # Caching was asked for "where it applies": a chosen recipe that trains every layer has nothing to cache.
    cache = options.cache_activations and RECIPES[choice.recipe].cacheable
    rate = choice.learning_rate if choice.learning_rate is not None else options.learning_rate
    return options.replace(recipe=choice.recipe, head=choice.head, learning_rate=rate, cache_activations=cache)


def train(
    data,
    options=None,
    *,
    val=None,
    run_dir=RunDirectory.DEFAULT,
    resume=False,
    overwrite=False,
    callbacks=(),
    shared_activations=None,
    auto_candidates=None,
    auto_seeds=3,
    verbose=1,
    cluster=None,
    devices=None,
    workers=None,
    **changes,
):
    """Train, as ``keras_alexnet.train`` and ``keras-alexnet train`` do: ``keras_alexnet.training.train`` with
    ``recipe="auto"`` resolved first, then ``report.html`` (``options.report``; ``keras_alexnet.report``).

    The one entry point for every engine: ``devices`` trains on several devices of this machine, ``workers``
    on that many Ray Train workers (``training.on_workers``; ``cluster``: the Ray cluster and what each
    worker takes), and with ``TF_CONFIG`` set this process is one worker of the user's launcher. Every engine
    returns the same ``TrainResult`` (a workers' run read back from its folder), except a ``TF_CONFIG`` worker
    that is not the chief: None.

    With ``recipe="auto"`` the recipe and head are chosen on the data (``choose_recipe``: a
    comparison within ``options.auto_budget``, or the rule of thumb), recorded in the run
    directory's ``auto.json`` and ``auto_comparison/``, and then trained like any other recipe;
    a resumed run keeps its recorded choice. ``auto_candidates`` (``Candidate``s) and ``auto_seeds`` narrow the
    comparison; the winner trains on the activations the comparison cached (unless ``shared_activations``
    names others); ``cluster`` (``compare.Cluster``) is where the comparison's trials run. Takes
    ``training.train``'s arguments.
    """
    if workers or os.environ.get("TF_CONFIG"):
        return _train_on_workers(
            data, options, workers, val, run_dir, resume, overwrite, verbose, cluster or Cluster(), changes
        )
    run = RunDirectory(run_dir)
    options = resumed_options(run, options, **changes) if resume else TrainingOptions.of(options, **changes)
    if options.recipe != AUTO:
        result = train_recipe(
            data,
            options,
            val=val,
            run_dir=run_dir,
            resume=resume,
            overwrite=overwrite,
            callbacks=callbacks,
            verbose=verbose,
            shared_activations=shared_activations,
            devices=devices,
        )
        report_run(result.run_dir, result.options, verbose)
        return result
    started = time.perf_counter()
    with prepare_run(run, data, val, options, resume=resume, overwrite=overwrite, devices=devices) as sets:
        train_set, val_set = sets
        chosen = resolve_auto(
            options, train_set, val_set, run.path, resume, verbose, auto_candidates, auto_seeds, cluster
        )
        compared = run.auto_comparison / ACTIVATIONS
        if shared_activations is None and compared.is_dir():
            shared_activations = compared  # the winner's frozen activations are there already
        # The comparison drew random numbers: train_locked seeds again, so the winner trains as it would alone.
        result = train_locked(
            train_set,
            val_set,
            chosen,
            run,
            resume=resume,
            callbacks=callbacks,
            verbose=verbose,
            shared_activations=shared_activations,
            started=started,
            devices=devices,
        )
    report_run(result.run_dir, result.options, verbose)
    return result


def _train_on_workers(data, options, workers, val, run_dir, resume, overwrite, verbose, cluster, changes):
    """``train`` on Ray Train workers, or this process's share of a ``TF_CONFIG`` run; reported like one process."""
    started = time.perf_counter()
    common = {"val": val, "run_dir": run_dir, "resume": resume, "overwrite": overwrite, "verbose": verbose}
    if workers:

        def resolve(options, train_set, val_set, run):  # recipe="auto": its comparison on the same cluster
            return resolve_auto(options, train_set, val_set, run.path, resume, verbose, cluster=cluster)

        record = train_on_workers(
            data,
            options,
            workers=workers,
            address=cluster.address,
            cpus_per_worker=cluster.cpus_per_trial,
            gpus_per_worker=cluster.gpus_per_trial,
            resolve=resolve,
            **common,
            **changes,
        )
    else:
        if TrainingOptions.of(options, **changes).recipe == AUTO and not resume:
            raise ValueError(
                "--recipe auto with TF_CONFIG: every worker would run the comparison. Choose the recipe first "
                "(`keras-alexnet compare`), then start the workers with --recipe NAME."
            )
        record = train_with_tf_config(data, options, **common, **changes)
    if record is None:  # a TF_CONFIG worker that is not the chief: the chief reports
        return None
    result = finished_result(run_dir, time.perf_counter() - started)
    report_run(run_dir, result.options, verbose)
    return result
