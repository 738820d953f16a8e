"""Paths recorded in dataset and run metadata."""

from __future__ import annotations

import os


def absolute(path: str) -> str:
    """`path` with a relative local path made absolute; URLs and remote file systems
    (`https://...`, `gs://...`) and the empty string as given.

    Recorded paths (a dataset's text-encoder handles, a run's data directory) stay valid when
    the tools that read them run from another working directory.
    """
    if not path or "://" in path:
        return path
    return os.path.abspath(path)
