"""Atomic writes: a reader sees a file's old contents or its new ones, never part of either.

Every metadata file the tools write (run.json, dataset_info.json, evaluator and dual-encoder
configs, metrics, caches, benchmark tables) goes through `write_atomic`: the data is written to
a temporary sibling (`<path>.tmp`) and renamed over `path`, so a process killed midway leaves
the previous file intact (and at worst a stale `.tmp` that the next write replaces).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

TMP_SUFFIX = ".tmp"


def write_atomic(path: str, data: str | bytes) -> None:
    """Writes `data` (text or bytes) to `path` via `<path>.tmp` and a rename; creates the
    parent directory. Works on every file system `tf.io.gfile` knows (local, gs://, ...)."""
    parent = os.path.dirname(path)
    if parent:
        tf.io.gfile.makedirs(parent)
    tmp = path + TMP_SUFFIX
    with tf.io.gfile.GFile(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def write_json_atomic(path: str, payload: Mapping[str, Any] | list, *, indent: int | None = 2,
                      sort_keys: bool = True) -> None:
    """`write_atomic` of `json.dumps(payload, indent=indent, sort_keys=sort_keys)`."""
    write_atomic(path, json.dumps(payload, indent=indent, sort_keys=sort_keys))
