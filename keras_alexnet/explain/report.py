"""The run report: one self-contained HTML page (images embedded, no scripts, no network) that says
how a run was trained and what the model learned.

``write_report(run_dir)`` reads the run directory ``train`` wrote (``model.keras``,
``options.json``, ``progress.png``, ``validation.json``, ``auto.json``) and writes
``run_dir/report.html``: the options, the layer table with the learning-rate factors,
the training progress with the rate, the confusion matrix and per-class
precision/recall, the most confused pairs, the top losses with Grad-CAM, the feature
map and the conv1 filters.
"""

from __future__ import annotations

import base64
import csv
import datetime
import html
import json
import tempfile
import time
from pathlib import Path

from keras_alexnet._utils.files import atomic_write
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.explain.activations import filter_grid
from keras_alexnet.explain.interpretation import Interpretation
from keras_alexnet.explain.pictures import save_png, to_uint8
from keras_alexnet.explain.targets import class_names
from keras_alexnet.model import load_model
from keras_alexnet.optimizers import make_optimizer
from keras_alexnet.recipes import RECIPES
from keras_alexnet.run_directory import RunDirectory
from keras_alexnet.transfer import layer_table, stage_factors, with_lr_factors

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f2f2f2; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; } .note { color: #666; font-size: 0.9em; }
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


def _layer_rows(model, options):
    """The layer table with the factors the run's (last) stage trained with."""
    recipe = RECIPES.get(options.get("recipe")) if isinstance(options.get("recipe"), str) else None
    optimizer = None
    if recipe is not None:
        factors = stage_factors(model, recipe.stages[-1])
        try:
            optimizer = with_lr_factors(make_optimizer(recipe.optimizer, 1e-3), factors, model)
        except ValueError:
            optimizer = None  # a model whose layers the recipe does not name: plain table
    rows = []
    for row in layer_table(model, optimizer):
        if not row.params:
            continue
        factor = "" if row.weight_lr_factor is None else f"{row.weight_lr_factor:g}"
        rows.append(
            (
                row.name,
                row.torchvision,
                row.kind,
                str(tuple(row.output_shape)),
                f"{row.params:,}",
                "yes" if row.trainable else "frozen",
                factor,
            )
        )
    return rows


def write_report(run_dir, data=None, top_losses=9, path=None):
    """Write ``run_dir/report.html`` (or ``path``) and return its path.

    ``data``: a labelled folder to interpret the model on; default the validation images
    the run recorded. Without either, the page leaves out the parts that need labels.
    """
    started = time.perf_counter()
    run = RunDirectory(run_dir)
    run_dir = run.path
    try:
        run.check_finished()
    except FileNotFoundError as error:
        raise ReportError(str(error)) from None
    model_path = run.model
    model = load_model(model_path)
    names = class_names(model)
    options = json.loads(run.options.read_text()) if run.options.exists() else {}
    parts = [f"<h1>Training run {html.escape(run_dir.name)}</h1>"]
    stamp = datetime.datetime.fromtimestamp(model_path.stat().st_mtime).isoformat(timespec="seconds")
    parts.append(
        f'<p class="note">{html.escape(str(run_dir.resolve()))} &middot; model written {stamp} &middot; '
        f"classes: {html.escape(', '.join(names))}</p>"
    )
    auto = run.auto
    if auto.exists():
        choice = json.loads(auto.read_text())
        parts.append("<h2>Recipe chosen by auto</h2>")
        parts.append(
            f"<p><b>{html.escape(choice['recipe'])}</b> with the {html.escape(choice['head'])} head: "
            f"{html.escape(choice['reason'])}</p>"
        )
        summary = Path(choice["comparison"] or "") / "summary.csv"
        if choice.get("comparison") and summary.exists():
            with open(summary) as handle:
                rows = list(csv.reader(handle))
            parts.append(_table(rows[0], rows[1:], numeric=range(3, 12)))
    if options:
        parts.append("<h2>Options</h2>")
        parts.append(_table(("option", "value"), sorted((k, json.dumps(v)) for k, v in options.items())))
    parts.append("<h2>Layers and learning-rate factors</h2>")
    parts.append(
        _table(
            ("layer", "torchvision", "kind", "output", "parameters", "trainable", "rate factor"),
            _layer_rows(model, options),
            numeric=(4, 6),
        )
    )
    if run.progress.exists():
        parts.append("<h2>Training progress</h2>")
        parts.append(_image(run.progress, "training progress: accuracy, loss and learning rate"))
    labelled = data if data is not None else validation_set(run_dir, names)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if labelled is not None:
            interpretation = Interpretation.from_folder(model, labelled)
            evaluation = interpretation.evaluation()
            source = "the run's validation images" if data is None else html.escape(str(data))
            parts.append(f"<h2>Evaluation on {source}</h2>")
            parts.append(
                f"<p>Accuracy <b>{evaluation.accuracy:.4f}</b>, balanced accuracy <b>{evaluation.balanced_accuracy:.4f}"
                f"</b>, macro-F1 <b>{evaluation.macro_f1:.4f}</b> on {int(evaluation.confusion.sum())} images.</p>"
            )
            counts = evaluation.confusion.sum(axis=1)
            parts.append(
                _table(
                    ("class", "precision", "recall", "F1", "images"),
                    [
                        (n, f"{p:.3f}", f"{r:.3f}", f"{f:.3f}", int(c))
                        for n, p, r, f, c in zip(names, evaluation.precision, evaluation.recall, evaluation.f1, counts)
                    ],
                    numeric=(1, 2, 3, 4),
                )
            )
            parts.append(_image(evaluation.plot(scratch / "confusion.png"), "confusion matrix"))
            confused = evaluation.most_confused(k=20)
            parts.append("<h2>Most confused (up to 20 pairs)</h2>")
            parts.append(
                _table(("actual", "predicted as", "images"), confused, numeric=(2,))
                if confused
                else "<p>No image was misclassified.</p>"
            )
            parts.append("<h2>Top losses, with Grad-CAM of the predicted class</h2>")
            gallery = interpretation.plot_top_losses(
                scratch / "top_losses.png", k=min(top_losses, len(interpretation.paths))
            )
            parts.append(_image(gallery, "top losses with Grad-CAM"))
            if len(interpretation.paths) >= 3:
                parts.append("<h2>Feature map</h2>")
                parts.append(_image(interpretation.plot_feature_map(scratch / "features.png"), "feature map"))
        else:
            parts.append(
                '<p class="note">No labelled images (the run had no validation set): give --data DIR '
                "for the evaluation, top losses and feature map.</p>"
            )
        parts.append("<h2>conv1 filters</h2>")
        save_png(to_uint8(filter_grid(model), scale=4), scratch / "filters.png")
        parts.append(_image(scratch / "filters.png", "conv1 filters"))
    seconds = time.perf_counter() - started
    parts.append(f'<p class="note">Written by keras-alexnet in {seconds:.1f} s.</p>')
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(run_dir.name)} report'
        f"</title><style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    target = Path(path) if path is not None else run.report
    atomic_write(target, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return target
