"""SHA-256 of the files a run resumes from: a damaged backup is named, not trained on."""

from __future__ import annotations

import hashlib


def sha256_of(path, chunk=1 << 22):
    """The hex SHA-256 of a file's bytes, read in chunks (memory of one chunk)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def matches(path, expected):
    """Whether ``path`` has the SHA-256 ``expected`` (True when none was recorded: files from before 0.6)."""
    return expected is None or sha256_of(path) == expected
