"""Text that leaves the package: file names printed or written, and cells of the CSV files it writes."""

from __future__ import annotations

import csv
import os

# OWASP's CSV-injection rule: a spreadsheet evaluates a cell that starts with one of these.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def printable(path, controls=True) -> str:
    """A file name, class name or other text from a file as text that prints and encodes everywhere, and
    that cannot drive the terminal.

    A name that is not valid UTF-8 (read by Python with surrogate escapes) shows its odd bytes as
    ``\\xNN``; control characters (escape sequences, carriage returns, bidirectional overrides) show as
    ``\\xNN`` or ``\\uNNNN`` (``controls``: for a terminal; a CSV cell keeps them); any other text is
    unchanged.
    """
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    else:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = os.fsencode(text).decode("utf-8", "backslashreplace")
    if not controls or all(char.isprintable() or char == " " for char in text):
        return text
    return "".join(
        char if char.isprintable() or char == " " else char.encode("unicode_escape").decode("ascii") for char in text
    )


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def spreadsheet_safe(cell):
    """``cell`` as a spreadsheet shows it without evaluating it: text starting like a formula gets a
    leading ``'`` (OWASP); numbers, and text that is a number, stay as they are."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) and not _is_number(cell):
        return "'" + cell
    return cell


class SafeCSVWriter:
    """``csv.writer`` whose rows are written ``spreadsheet_safe`` and with ``printable`` file names."""

    def __init__(self, handle):
        self._writer = csv.writer(handle)

    def writerow(self, row):
        self._writer.writerow(
            [spreadsheet_safe(printable(c, controls=False) if isinstance(c, (str, os.PathLike)) else c) for c in row]
        )

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)
