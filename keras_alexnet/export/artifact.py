"""What a format's builder gives the shared export step."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass
class Artifact:
    """A built export, not yet written.

    ``write(path)`` writes the file or folder there (the export step gives a temporary path and
    renames it once checked); ``prepare`` maps uint8 images, as the format takes them, to the Keras
    model's input (for the comparison with Keras); ``crops``: the format takes images already resized
    and centre-cropped to the model's size (else any size); ``extra_check(path, images, expected)``:
    a further comparison the format makes on the written artifact (its max difference).
    """

    write: Callable
    prepare: Callable
    crops: bool
    extra_check: Callable | None = None
