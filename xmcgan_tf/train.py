r"""Trains an XMC-GAN (or resumes a run) from layered gin files.

    python -m xmcgan_tf.train \
      --gin_file=gin/experiments/synthetic_xmcgan_64.gin \
      --gin_param="MODEL_DIR='runs/synthetic_64'" --gin_param="DATA_DIR='data/synthetic_64'" \
      [--strategy=default|mirrored|multi_worker|tpu] [--tpu=NAME]

Gin files are looked up as given, then relative to the repository's `gin/` directory; inside the
XMC-GAN gin files, includes are written from the repository root (`include
'gin/runs/train.gin'`). `xmcgan_tf.training.train_lib.train` takes the networks and four
configuration groups (`xmcgan_tf.training.train_config`: DataConfig, ScheduleConfig,
OptimizerConfig, DistributionConfig); any field can be bound with `--gin_param`, e.g.
`--gin_param=train_config.ScheduleConfig.num_steps=2000`. Restarting the same command resumes
from the latest checkpoint in MODEL_DIR.

Multi-worker: run the same command on every worker with `--strategy=multi_worker` and each
worker's TF_CONFIG. TPU: `--strategy=tpu --tpu=NAME` (or `--tpu=local` on a TPU VM).

Exit status: 0 done, 1 training stopped on a non-finite loss (the last good checkpoint is
kept), 2 bad configuration (gin binding, dataset/model mismatch, checkpoint of another model).
"""

from __future__ import annotations

import os
from typing import Sequence

import gin
import tensorflow as tf
from absl import app
from absl import flags
from absl import logging

from xmcgan_tf import run_dir
from xmcgan_tf import cli
from xmcgan_tf import gin_config
from xmcgan_tf.data import schema
from xmcgan_tf.training import distribute
from xmcgan_tf.training import train_config
from xmcgan_tf.training import train_lib

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GinConfigError = gin_config.GinConfigError

_GIN_FILE, _GIN_PARAM = gin_config.define_flags("experiments/synthetic_xmcgan_64.gin")
_STRATEGY = flags.DEFINE_enum(
    "strategy", None, list(distribute.STRATEGIES),
    "Distribution strategy; overrides train_config.DistributionConfig.strategy. default: one "
    "device; "
    "mirrored: all local GPUs; multi_worker: MultiWorkerMirroredStrategy from TF_CONFIG "
    "(run the same command on every worker); tpu: TPUStrategy (needs --tpu).")
_TPU = flags.DEFINE_string(
    "tpu", None, "TPU name or grpc:// address for --strategy=tpu ('local' on a TPU VM); "
    "overrides train_config.DistributionConfig.tpu.")

REQUIRED_PARAMETERS = ("train_lib.train.model_dir", "train_config.DataConfig.data_dir",
                       "train_config.ScheduleConfig.num_steps")


def parse_config(gin_files: Sequence[str], gin_params: Sequence[str]) -> None:
    """Parses gin files and bindings; the repository root is on the include search path.

    Raises:
      GinConfigError: a missing file, an unknown configurable or parameter, or a syntax error;
        the message names the binding and its location.
    """
    gin.add_config_file_search_path(REPO_DIR)
    gin_config.parse_config(gin_files, gin_params)


def run_training(**overrides) -> train_lib.TrainResult:
    """Calls the gin-configured `train_lib.train` (after `parse_config`).

    Args:
      **overrides: `DistributionConfig` fields given on the command line (strategy, tpu).

    Raises:
      GinConfigError: train_lib.train is not configured or lacks a required binding, or a
        network is bound to a parameter it does not have.
    """
    train = gin_config.configured(train_lib.train, REQUIRED_PARAMETERS,
                                  "include gin/runs/train.gin (or an experiment that does)")
    if overrides:
        distribution = gin_config.configured(train_config.DistributionConfig, (),
                                             "include gin/runs/train.gin")
        overrides = {"distribution": distribution(**overrides)}
    try:
        return train(operative_config=gin.operative_config_str, **overrides)
    except (TypeError, ValueError) as e:
        # Keras classes take **kwargs, so gin cannot reject an unknown parameter of a network
        # at parse time; Keras rejects it when the network is built, before any data is read.
        if "Unrecognized keyword argument" in str(e):
            raise GinConfigError(f"bad gin configuration: {e}") from e
        raise


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; use --gin_file/--gin_param")
    overrides = {}
    if _STRATEGY.value is not None:
        overrides["strategy"] = _STRATEGY.value
    if _TPU.value is not None:
        overrides["tpu"] = _TPU.value
    with cli.exit_on(train_lib.NonFiniteLossError, code=cli.EXIT_NON_FINITE), \
            cli.exit_on(GinConfigError, schema.DatasetError, run_dir.CheckpointError,
                        *cli.USER_ERRORS, tf.errors.NotFoundError):
        parse_config(_GIN_FILE.value, _GIN_PARAM.value)
        result = run_training(**overrides)
    logging.info("done at step %d; last checkpoint %s", result.step, result.checkpoint_path)


def entry_point() -> None:
    """The `xmcgan-train` console script (and `python -m xmcgan_tf.train`)."""
    cli.run(main)


if __name__ == "__main__":
    entry_point()
