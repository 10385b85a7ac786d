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
