"""Experiments above training: recipes compared over seeds, and ``recipe="auto"``.

- ``compare``: every candidate (a recipe with a head and a rate) trained over seeds on one
  split, each run in a process of its own, summarized with a tie rule (MATLAB's
  Experiment Manager, for Keras); ``keras-alexnet compare``.
- ``train`` (also ``keras_alexnet.train``): ``keras_alexnet.training.train`` with ``recipe="auto"``
  resolved first (a short comparison, or the guides' rule of thumb) and the run report written at the
  end (``keras_alexnet.report``); what ``keras-alexnet train`` runs.

``keras_alexnet.training`` never imports this package: experiments call training, not the reverse.
"""

from keras_alexnet.experiments.auto import AutoChoice, choose_recipe, resolve_auto, rule_of_thumb, train
from keras_alexnet.experiments.candidates import Candidate, RunRecord, candidates_of
from keras_alexnet.experiments.compare import Cluster, compare
from keras_alexnet.experiments.tables import Comparison, Summary, plot_curves, summarize

__all__ = [
    "AutoChoice",
    "Candidate",
    "Cluster",
    "Comparison",
    "RunRecord",
    "Summary",
    "candidates_of",
    "choose_recipe",
    "compare",
    "plot_curves",
    "resolve_auto",
    "rule_of_thumb",
    "summarize",
    "train",
]
