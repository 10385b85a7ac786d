"""matplotlib for the package's figures: drawn to files (no screen), text drawn literally.

Class names and file names come from the user's folders and from model files; matplotlib would read
``$...$`` in them as mathtext (``$\\sqrt{\\undefined}$`` fails the whole figure), so every figure of
the package draws text as it is written.
"""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend, with mathtext off."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt


def log_x_axis(axis):
    """A log-scale x axis whose tick labels are plain text (``1e-05``): matplotlib's log labels are mathtext
    (``$\\mathdefault{10^{-5}}$``), which the literal text of ``pyplot()`` would print as it is written."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_xscale("log")
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0e}"))
    axis.xaxis.set_minor_formatter(NullFormatter())
