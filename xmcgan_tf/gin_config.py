"""Gin parsing shared by the entry points (`train`, `pretrain_encoder`, `ablate`).

Library code never imports gin (STYLE rule 7); entry points call `parse_config` on layered gin
files that use `from __gin__ import dynamic_registration`, then call the configured function.
"""

from __future__ import annotations

import contextlib
import tokenize
import logging as python_logging
import os
from typing import Callable, Sequence

import gin
from absl import flags

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN_DIR = os.path.join(REPO_DIR, "gin")


class GinConfigError(ValueError):
    """The gin files or bindings cannot be parsed; the message names the bad binding."""


def define_flags(example_file: str) -> tuple[flags.FlagHolder, flags.FlagHolder]:
    """Defines --gin_file and --gin_param; returns their holders."""
    gin_file = flags.DEFINE_multi_string(
        "gin_file", [], "Gin config file (repeatable; later files override earlier ones). "
        "Paths are tried as given, then relative to the repository's gin/ directory, e.g. "
        f"{example_file}.")
    gin_param = flags.DEFINE_multi_string(
        "gin_param", [], "Gin binding applied after the files (repeatable), e.g. "
        "\"MODEL_DIR='runs/a'\" or \"DATA_DIR='data/synthetic_64'\".")
    return gin_file, gin_param


def resolve_gin_file(path: str) -> str:
    """`path` if it exists, else GIN_DIR/path if that exists, else `path` (gin reports it).

    Resolved here rather than by gin's search path because gin would first try to import the
    directory part as a Python package (`tests/tiny.gin` -> package `tests`).
    """
    if os.path.exists(path):
        return os.path.abspath(path)
    candidate = os.path.join(GIN_DIR, path)
    return candidate if os.path.exists(candidate) else path


@contextlib.contextmanager
def _quiet_gin_search():
    """Hides gin's "Path not found" errors, logged for every search-path prefix it tries."""
    def keep(record: python_logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Path not found")

    root = python_logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def parse_config(gin_files: Sequence[str], gin_params: Sequence[str]) -> None:
    """Parses gin files and bindings (the repository root on the search path, so gin files
    include each other as `include 'gin/runs/train.gin'` from any working directory).

    Raises:
      GinConfigError: a missing file, an unknown configurable or parameter, or a syntax error;
        the message holds gin's description, which names the binding and its location.
    """
    gin.add_config_file_search_path(REPO_DIR)
    try:
        with _quiet_gin_search():
            gin.parse_config_files_and_bindings([resolve_gin_file(f) for f in gin_files],
                                                list(gin_params))
    except (ValueError, KeyError, OSError, SyntaxError, tokenize.TokenError) as e:
        raise GinConfigError(f"bad gin configuration: {e}") from e


def configured(fn: Callable, required: Sequence[str], hint: str) -> Callable:
    """The gin-configured `fn`, after checking that every binding in `required` (full names,
    e.g. "train_lib.train.model_dir") is there.

    Raises:
      GinConfigError: `fn` is not configured or a required parameter has no binding.
    """
    try:
        bound = gin.get_configurable(fn)
    except ValueError as e:
        raise GinConfigError(f"bad gin configuration: no binding of "
                             f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__qualname__}; "
                             f"{hint}") from e
    missing = []
    for name in required:
        try:
            gin.query_parameter(name)
        except ValueError:
            missing.append(name)
    if missing:
        raise GinConfigError(f"bad gin configuration: no binding for {missing}")
    return bound
