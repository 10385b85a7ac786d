"""The run report: one self-contained HTML page (images embedded, no scripts, no network) that says
how good a run's model is and what it learned.

``write_report(run_dir)`` reads the run directory ``train`` wrote (``model.keras``,
``options.json``, ``progress.png``, ``validation.json``, ``auto.json``) and writes
``run_dir/report.html``. First the answer: the scores (accuracy, balanced accuracy,
macro-F1), calibration before and after, the epoch kept, the curves and the warnings. Then
the details: per-class precision/recall and the confusion matrix, the reliability diagram
and the accuracy/coverage curve for ``--min-confidence``, the most confused pairs, the top
losses with Grad-CAM, the feature map, the layer table with the learning-rate factors, the
conv1 filters and, collapsed, the options.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime
import html
import json
import tempfile
import time
from pathlib import Path

from keras_alexnet._utils.choices import IMBALANCE_RATIO
from keras_alexnet._utils.files import atomic_write
from keras_alexnet.calibration import TemperatureChoice
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.evaluation import evaluate, tta_change
from keras_alexnet.explain.activations import filter_grid
from keras_alexnet.explain.confidence import coverage_curve
from keras_alexnet.explain.interpretation import Interpretation
from keras_alexnet.explain.pictures import save_png, to_uint8
from keras_alexnet.explain.targets import class_names
from keras_alexnet.model import load_model
from keras_alexnet.options import REPORT
from keras_alexnet.run_directory import ComparisonFiles, RunDirectory
from keras_alexnet.run_result import RunResult
from keras_alexnet.transfer import layer_table
from keras_alexnet.tta import Measurement

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f2f2f2; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; } .note { color: #666; font-size: 0.9em; }
.headline { font-size: 1.3em; } .warning { background: #fff4e5; border-left: 4px solid #f0a030; padding: 4px 8px; }
.pair { display: flex; gap: 1em; align-items: flex-start; } .pair img { max-width: 49%; }
details summary { cursor: pointer; color: #333; }
"""


class ReportError(FileNotFoundError):
    """A run directory the report cannot be made from; the message names the missing file."""


def _image(path, alt):
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _table(header, rows, numeric=()):
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = ""
    for row in rows:
        cells = "".join(
            f'<td class="n">{html.escape(str(v))}</td>' if i in numeric else f"<td>{html.escape(str(v))}</td>"
            for i, v in enumerate(row)
        )
        body += f"<tr>{cells}</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def validation_set(run_dir, class_names):
    """The validation images ``train`` recorded in ``validation.json``, or None."""
    path = RunDirectory(run_dir).validation
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    missing = [p for p in record["paths"] if not Path(p).exists()]
    if missing:
        raise ReportError(
            f"{len(missing)} validation image(s) recorded in {path} are gone (e.g. {missing[0]}): give --data DIR."
        )
    return ImageFolder.from_dict({**record, "class_names": class_names})


def _layer_rows(model, result):
    """The layer table, with what the run's last stage trained: each layer trainable or frozen and its
    learning-rate factor, as the run recorded them (``result.layers``; runs before 0.7 recorded none)."""
    recorded = {row.get("name"): row for row in result.layers}
    rows = []
    for row in layer_table(model):
        if not row.params:
            continue
        trained = recorded.get(row.name)
        factor = trained.get("weight_lr_factor") if trained else None
        factor = f"{factor:g}" if isinstance(factor, (int, float)) else ""
        trainable = trained.get("trainable") if trained else None
        rows.append(
            (
                row.name,
                row.torchvision,
                row.kind,
                str(tuple(row.output_shape)),
                f"{row.params:,}",
                {True: "yes", False: "frozen"}.get(trainable, "not recorded"),
                factor,
            )
        )
    return rows


def _balancing_advice(options):
    """What the imbalance warning advises, given how the run evened out the classes."""
    if options.get("balanced_sampling"):
        return "the run drew its batches evenly over the classes (--balanced-sampling)."
    if options.get("class_weight") not in (None, "none"):
        return (
            "the run weighed the classes, which acts only until the head fits every training image: with a "
            "rare class of a few dozen images --balanced-sampling measured better (README, Honest confidence)."
        )
    return "train with --balanced-sampling (or --class-weight auto)."


def _warnings(result, evaluation, options):
    """What a reader must know before trusting the numbers: imbalance, overlap, skipped files."""
    notes = []
    counts = result.training_counts
    if counts and min(counts.values()) > 0 and max(counts.values()) >= IMBALANCE_RATIO * min(counts.values()):
        largest, smallest = max(counts, key=counts.get), min(counts, key=counts.get)
        notes.append(
            f"Imbalanced training set: {largest} has {counts[largest]} images, {smallest} {counts[smallest]} "
            f"({counts[largest] / counts[smallest]:.1f}:1). Read balanced accuracy and macro-F1, not accuracy; "
            + _balancing_advice(options)
        )
    shared = result.shared_validation_images
    if shared:
        notes.append(
            f"{shared} validation images are also training images: the validation scores are not on held-out images."
        )
    skipped = result.skipped_count
    if skipped:
        shown = ", ".join(result.skipped[:5])
        notes.append(f"{skipped} unreadable files were skipped (e.g. {shown}).")
    if evaluation is not None and evaluation.skipped:
        notes.append(f"{len(evaluation.skipped)} validation files could not be read and are not in the scores.")
    return notes


def _epoch_sentence(result):
    epoch, done = result.output_epoch, result.epochs_done
    if epoch is None:
        return None
    rule = {
        "best-validation-loss": "the lowest validation loss",
        "best-validation-accuracy": "the highest validation accuracy",
        "last": "the last epoch",
    }.get(result.output_network, result.output_network)
    return f"model.keras is epoch {epoch} of {done} ({rule}, --output-network {result.output_network})."


def _options_table(options, result):
    """All options, the ones that differ from the defaults (as ``train`` recorded them) marked and listed first."""
    differ = set(result.changed_options)
    rows = []
    for name, value in sorted(options.items()):
        if name == "result":
            continue
        changed = name in differ
        rows.append((0 if changed else 1, name, json.dumps(value), "changed" if changed else "default"))
    rows.sort()
    changed = sum(1 for row in rows if row[0] == 0)
    table = _table(("option", "value", ""), [row[1:] for row in rows])
    return f"<details><summary>Options ({changed} differ from the defaults, listed first)</summary>{table}</details>"


@dataclasses.dataclass
class _Page:
    """What the report's sections read: the finished run, its model and, with labelled images, their
    interpretation (``evaluation`` None without them); ``scratch`` holds the figures until they are embedded."""

    run: RunDirectory
    model: object
    names: list
    options: dict
    result: RunResult
    data: object  # the folder the user gave (None: the run's validation images)
    labelled: object  # the labelled images the page scores, or None
    evaluation: object
    interpretation: object
    scratch: Path
    top_losses: int
    tta: bool


def _title(page):
    options = page.options
    stamp = datetime.datetime.fromtimestamp(page.run.model.stat().st_mtime).isoformat(timespec="seconds")
    what = ", ".join(
        part
        for part in (
            f"recipe {options['recipe']}" if isinstance(options.get("recipe"), str) else None,
            f"{options['head']} head" if options.get("head") else None,
            f"{len(page.names)} classes",
        )
        if part
    )
    name = page.run.path.resolve().name
    return [f"<h1>{html.escape(name)}</h1>", f'<p class="note">{html.escape(what)} &middot; model written {stamp}</p>']


def _scores(page):
    """Accuracy, balanced accuracy and macro-F1, calibration, and TTA's change when asked."""
    evaluation = page.evaluation
    if evaluation is None:
        return [
            '<p class="note">No labelled images (the run had no validation set): give --data DIR '
            "for the scores, calibration, top losses and feature map.</p>"
        ]
    source = "the run's validation images" if page.data is None else html.escape(str(page.data))
    parts = [
        f'<p class="headline">Accuracy <b>{evaluation.accuracy:.4f}</b> &middot; balanced accuracy '
        f"<b>{evaluation.balanced_accuracy:.4f}</b> &middot; macro-F1 <b>{evaluation.macro_f1:.4f}</b> "
        f'<span class="note">on {int(evaluation.confusion.sum())} images ({source})</span></p>'
    ]
    calibration = evaluation.calibration_line()
    if calibration:
        parts.append(f'<p class="calibration">{html.escape(_sentence(calibration))}.</p>')
    if page.tta:
        change = tta_change(evaluation, evaluate(page.model, page.labelled, tta=True))
        parts.append(f"<p>{html.escape(_sentence(change))}.</p>")
    return parts


def _sentence(text):
    return text[0].upper() + text[1:]


def _kept_epoch(page):
    sentence = _epoch_sentence(page.result)
    return [f'<p class="epoch">{html.escape(sentence)}</p>'] if sentence else []


def _measured_tta(page):
    """What test-time augmentation did when the run ended, and the advice that follows."""
    if not page.result.tta:
        return []
    measured = Measurement.from_dict(page.result.tta)
    advice = "use --tta" if measured.gain > 0 else "leave --tta off" if measured.gain < 0 else "--tta changes nothing"
    line = f"When the run ended, {measured.line()}: {advice} with predict and evaluate."
    return [f'<p class="tta">{html.escape(line)}</p>']


def _warning_lines(page):
    return [
        f'<p class="warning">&#9888; {html.escape(note)}</p>'
        for note in _warnings(page.result, page.evaluation, page.options)
    ]


def _progress(page):
    if not page.run.progress.exists():
        return []
    return [_image(page.run.progress, "training progress: accuracy, loss and learning rate")]


def _auto_choice(page):
    """The recipe ``--recipe auto`` chose, why, and its comparison's summary."""
    if not page.run.auto.exists():
        return []
    choice = json.loads(page.run.auto.read_text())
    parts = [
        "<h2>Recipe chosen by auto</h2>",
        f"<p><b>{html.escape(choice['recipe'])}</b> with the {html.escape(choice['head'])} head: "
        f"{html.escape(choice['reason'])}</p>",
    ]
    summary = Path(choice["comparison"] or "") / ComparisonFiles.SUMMARY_CSV
    if choice.get("comparison") and summary.exists():
        with open(summary) as handle:
            rows = list(csv.reader(handle))
        parts.append(_table(rows[0], rows[1:], numeric=range(3, 14)))
    return parts


def _per_class(page):
    evaluation = page.evaluation
    if evaluation is None:
        return []
    counts = evaluation.confusion.sum(axis=1)
    rows = [
        (n, f"{p:.3f}", f"{r:.3f}", f"{f:.3f}", int(c))
        for n, p, r, f, c in zip(page.names, evaluation.precision, evaluation.recall, evaluation.f1, counts)
    ]
    return [
        "<h2>Per class</h2>",
        _table(("class", "precision", "recall", "F1", "images"), rows, numeric=(1, 2, 3, 4)),
        _image(evaluation.plot(page.scratch / "confusion.png"), "confusion matrix"),
    ]


def _confidence(page):
    """The reliability diagram beside the accuracy and coverage of ``--min-confidence``."""
    evaluation = page.evaluation
    if evaluation is None:
        return []
    coverage = coverage_curve(evaluation.probabilities, evaluation.labels, page.scratch / "coverage.png")
    return [
        "<h2>Confidence: calibration and the unknown threshold</h2>",
        '<p class="note">Left: accuracy against confidence (a calibrated model follows the diagonal). '
        "Right: with <code>predict --min-confidence P</code>, images under P are answered "
        "<i>unknown</i>; the curves show the accuracy on the others and the share answered.</p>",
        *_temperature_note(page.result),
        '<div class="pair">'
        + _image(evaluation.plot_reliability(page.scratch / "reliability.png"), "reliability diagram")
        + _image(coverage, "accuracy and coverage against the confidence threshold")
        + "</div>",
    ]


def _temperature_note(result):
    """How the run chose its temperature (runs before 0.8.1 recorded only the number)."""
    choice = TemperatureChoice.from_dict(result.calibration)
    if choice is None:
        return []
    return [f'<p class="note">Temperature {choice.temperature:.3f}: {html.escape(choice.reason())}.</p>']


def _most_confused(page):
    if page.evaluation is None:
        return []
    confused = page.evaluation.most_confused(k=20)
    table = (
        _table(("actual", "predicted as", "images"), confused, numeric=(2,))
        if confused
        else "<p>No image was misclassified.</p>"
    )
    return ["<h2>Most confused (up to 20 pairs)</h2>", table]


def _top_losses(page):
    interpretation = page.interpretation
    if interpretation is None:
        return []
    count = min(page.top_losses, len(interpretation.paths))
    gallery = interpretation.plot_top_losses(page.scratch / "top_losses.png", k=count)
    return ["<h2>Top losses, with Grad-CAM of the predicted class</h2>", _image(gallery, "top losses with Grad-CAM")]


def _feature_map(page):
    interpretation = page.interpretation
    if interpretation is None or len(interpretation.paths) < 3:
        return []
    figure = interpretation.plot_feature_map(page.scratch / "features.png")
    return ["<h2>Feature map</h2>", _image(figure, "feature map")]


def _layers(page):
    header = ("layer", "torchvision", "kind", "output", "parameters", "trainable", "rate factor")
    return ["<h2>Layers and learning-rate factors</h2>", _table(header, _layer_rows(page.model, page.result), (4, 6))]


def _filters(page):
    save_png(to_uint8(filter_grid(page.model), scale=4), page.scratch / "filters.png")
    return ["<h2>conv1 filters</h2>", _image(page.scratch / "filters.png", "conv1 filters")]


def _options(page):
    return ["<h2>Options</h2>", _options_table(page.options, page.result)] if page.options else []


# The page, in order: first the answer (the first screen), then the details; each section is a function of
# the page that returns its HTML parts (none when it has nothing to show).
SECTIONS = (
    _title,
    _scores,
    _kept_epoch,
    _measured_tta,
    _warning_lines,
    _progress,
    _auto_choice,
    _per_class,
    _confidence,
    _most_confused,
    _top_losses,
    _feature_map,
    _layers,
    _filters,
    _options,
)


def write_report(run_dir, data=None, top_losses=REPORT.top_losses, path=None, tta=False):
    """Write ``run_dir/report.html`` (or ``path``) and return its path.

    ``data``: a labelled folder to interpret the model on; default the validation images
    the run recorded. Without either, the page leaves out the parts that need labels.
    ``tta``: also score the model with test-time augmentation and show the gain.

    The first screen answers "how good is it": the run's name, accuracy with balanced accuracy
    and macro-F1, calibration before and after, which epoch the model is, the curves and the
    warnings. The details follow (``SECTIONS``); the options come last, collapsed.
    """
    started = time.perf_counter()
    run = RunDirectory(run_dir)
    try:
        run.check_finished()
    except FileNotFoundError as error:
        raise ReportError(str(error)) from None
    model = load_model(run.model)
    names = class_names(model)
    options = json.loads(run.options.read_text()) if run.options.exists() else {}
    labelled = data if data is not None else validation_set(run.path, names)
    interpretation = Interpretation.from_folder(model, labelled) if labelled is not None else None
    evaluation = interpretation.evaluation() if interpretation is not None else None
    with tempfile.TemporaryDirectory() as scratch:
        page = _Page(
            run,
            model,
            names,
            options,
            RunResult.from_dict(options.get("result")),
            data,
            labelled,
            evaluation,
            interpretation,
            Path(scratch),
            top_losses,
            tta,
        )
        parts = [part for section in SECTIONS for part in section(page)]
    parts.append(
        f'<p class="note">{html.escape(str(run.path.resolve()))} &middot; classes: '
        f"{html.escape(', '.join(names[:50]) + (' ...' if len(names) > 50 else ''))} &middot; "
        f"written by keras-alexnet in {time.perf_counter() - started:.1f} s.</p>"
    )
    name = run.path.resolve().name
    text = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(name)} report'
        f"</title><style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    target = Path(path) if path is not None else run.report
    atomic_write(target, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return target


def report_run(run_dir, options, verbose=1):
    """After training: ``report.html`` when ``options.report`` asks for it and the run saved its model (what
    ``keras_alexnet.train`` and ``keras-alexnet train`` do; ``training.train`` only trains). Returns its path, or None."""
    run = RunDirectory(run_dir)
    if not options.report or not run.model.exists():
        return None
    path = write_report(run.path)
    if verbose:
        print(f"report: {path}")
    return path
