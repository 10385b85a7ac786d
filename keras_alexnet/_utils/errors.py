"""The chain of exceptions behind an error, as Python links them."""

from __future__ import annotations


def chain(error, limit=20):
    """``error``, then each exception behind it (its ``__cause__``, else its ``__context__``: Keras's traceback
    filter re-raises ``from None``, which keeps the context only), at most ``limit`` of them (a chain set by hand
    may loop)."""
    while error is not None and limit > 0:
        yield error
        error, limit = error.__cause__ or error.__context__, limit - 1


def root_cause(error):
    """The first line of the innermost exception behind ``error``, cut to 200 characters."""
    *_, innermost = chain(error)
    line = (str(innermost).strip().splitlines() or [type(innermost).__name__])[0]
    return f"{type(innermost).__name__}: {line[:200]}"
