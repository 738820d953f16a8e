"""A quiet console for every entry point, and `--verbosity` for the full logs.

TensorFlow prints a dozen lines while it loads (oneDNN and CUDA notices written before its C++
logging is initialised, so `TF_CPP_MIN_LOG_LEVEL` cannot hide them), C++ warnings while it runs
(`remapper failed`) and Python INFO and deprecation lines of its own and of tensorflow-gan.
Importing `xmcgan_tf` (or `data_tools`) calls `quiet_tensorflow()` first, which, unless the
command line asks for `--verbosity` ≥ 1 (or `-v`):
  - sets `TF_CPP_MIN_LOG_LEVEL=3` when the environment does not set it;
  - imports TensorFlow with the process's stderr sent to /dev/null (its load-time notices);
  - raises the `tensorflow` Python logger to ERROR, and drops the INFO lines TensorFlow and
    Keras log through absl ("Sharding callback duration", "Writing fingerprint", ...) and the
    UserWarnings they raise;
A user then sees the tools' own progress and results; `--verbosity=1` restores every line.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from typing import Sequence

# Libraries whose INFO lines and UserWarnings a quiet console drops.
_LIBRARY_PATH = re.compile(
    r"[/\\]site-packages[/\\](tensorflow|tf_keras|keras|tensorflow_\w+)[/\\]")


class LibraryInfoFilter(logging.Filter):
    """Drops records below WARNING that TensorFlow or Keras code logged (through absl)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not _LIBRARY_PATH.search(record.pathname)


def verbose_requested(argv: Sequence[str]) -> bool:
    """True when the command line asks for absl verbosity ≥ 1 (`--verbosity=N`, `-v N`)."""
    for index, arg in enumerate(argv):
        value = None
        if arg.startswith(("--verbosity=", "-v=")):
            value = arg.split("=", 1)[1]
        elif arg in ("--verbosity", "-v") and index + 1 < len(argv):
            value = argv[index + 1]
        if value is not None:
            try:
                return int(value) >= 1
            except ValueError:
                return False
    return False


def quiet_tensorflow(argv: Sequence[str] | None = None) -> bool:
    """Loads TensorFlow quietly unless verbosity is asked for; returns True if it did."""
    if verbose_requested(sys.argv if argv is None else argv) or "tensorflow" in sys.modules:
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401  (loaded here so that its start-up lines are dropped)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").addFilter(LibraryInfoFilter())
    for library in ("keras", "tensorflow", "tf_keras"):
        warnings.filterwarnings("ignore", category=UserWarning, module=rf"{library}(\.|$)")
    return True
