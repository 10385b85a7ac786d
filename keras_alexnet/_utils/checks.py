"""Checks of user-given arguments shared by the builder, training and the CLI."""

from __future__ import annotations


def is_count(value):
    """True for a whole number of at least 1 (an ``int``, not a ``bool``): epochs, batch sizes, classes."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
