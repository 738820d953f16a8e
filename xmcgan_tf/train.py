r"""Trains an XMC-GAN (or resumes a run) from layered gin files.

    python -m xmcgan_tf.train \
      --gin_file=experiments/synthetic_xmcgan_64.gin \
      --gin_param="MODEL_DIR='runs/synthetic_64'" --gin_param="DATA_DIR='data/synthetic_64'" \
      [--strategy=default|mirrored|multi_worker|tpu] [--tpu=NAME]

Gin files are looked up as given, then relative to the repository's `gin/` directory. Every
binding of `xmcgan_tf.training.train_lib.train` can be set with `--gin_param`, e.g.
`--gin_param=train_lib.train.num_steps=2000`. Restarting the same command resumes from the
latest checkpoint in MODEL_DIR. Exit status: 0 done, 1 training stopped on a non-finite loss,
2 bad configuration (gin, dataset or checkpoint mismatch).
"""

from __future__ import annotations

import contextlib
import logging as python_logging
import os
import sys
from typing import Sequence

import gin
from absl import app
from absl import flags
from absl import logging

from xmcgan_tf.data import schema
from xmcgan_tf.training import checkpointing
from xmcgan_tf.training import distribute
from xmcgan_tf.training import train_lib

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin")

_GIN_FILE = flags.DEFINE_multi_string(
    "gin_file", [], "Gin config file (repeatable; later files override earlier ones). Paths "
    "are tried as given, then relative to the repository's gin/ directory, e.g. "
    "experiments/synthetic_xmcgan_64.gin.")
_GIN_PARAM = flags.DEFINE_multi_string(
    "gin_param", [], "Gin binding applied after the files (repeatable), e.g. "
    "\"MODEL_DIR='runs/a'\", \"DATA_DIR='data/synthetic_64'\" or "
    "train_lib.train.num_steps=2000.")
_STRATEGY = flags.DEFINE_enum(
    "strategy", None, list(distribute.STRATEGIES),
    "Distribution strategy; overrides train_lib.train.strategy. default: one device; "
    "mirrored: all local GPUs; multi_worker: MultiWorkerMirroredStrategy from TF_CONFIG "
    "(run the same command on every worker); tpu: TPUStrategy (needs --tpu).")
_TPU = flags.DEFINE_string(
    "tpu", None, "TPU name or grpc:// address for --strategy=tpu ('local' on a TPU VM); "
    "overrides train_lib.train.tpu.")


class GinConfigError(ValueError):
    """The gin files or bindings cannot be parsed; the message names the bad binding."""


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
    """Parses gin files and bindings (repository gin/ directory on the search path).

    Raises:
      GinConfigError: a missing file, an unknown configurable or parameter, or a syntax error;
        the message holds gin's description, which names the binding and its location.
    """
    gin.add_config_file_search_path(GIN_DIR)
    try:
        with _quiet_gin_search():
            gin.parse_config_files_and_bindings([resolve_gin_file(f) for f in gin_files],
                                                list(gin_params))
    except (ValueError, KeyError, OSError, SyntaxError) as e:
        raise GinConfigError(f"bad gin configuration: {e}") from e


REQUIRED_PARAMETERS = ("model_dir", "data_dir", "num_steps")


def run_training(**overrides) -> train_lib.TrainResult:
    """Calls the gin-configured `train_lib.train` (after `parse_config`).

    Raises:
      GinConfigError: train_lib.train is not configured or lacks a required binding.
    """
    try:
        train = gin.get_configurable(train_lib.train)
    except ValueError as e:
        raise GinConfigError("bad gin configuration: no binding of train_lib.train; include "
                             "runs/train.gin (or an experiment that does)") from e
    missing = []
    for name in REQUIRED_PARAMETERS:
        try:
            gin.query_parameter(f"train_lib.train.{name}")
        except ValueError:
            missing.append(f"train_lib.train.{name}")
    if missing:
        raise GinConfigError(f"bad gin configuration: no binding for {missing}")
    return train(operative_config=gin.operative_config_str, **overrides)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; use --gin_file/--gin_param")
    overrides = {}
    if _STRATEGY.value is not None:
        overrides["strategy"] = _STRATEGY.value
    if _TPU.value is not None:
        overrides["tpu"] = _TPU.value
    try:
        parse_config(_GIN_FILE.value, _GIN_PARAM.value)
        result = run_training(**overrides)
    except train_lib.NonFiniteLossError as e:
        logging.error("%s", e)
        sys.exit(1)
    except (GinConfigError, schema.DatasetError, checkpointing.CheckpointError) as e:
        logging.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    logging.info("done at step %d; last checkpoint %s", result.step, result.checkpoint_path)


if __name__ == "__main__":
    app.run(main)
