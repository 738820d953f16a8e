r"""Pretrains the DAMSM-style dual encoder (plain, T2I_CL or SCL) from layered gin files.

    python -m xmcgan_tf.pretrain_encoder \
      --gin_file=experiments/synthetic_encoder_t2icl_64.gin \
      --gin_param="MODEL_DIR='runs/encoder_t2icl'" --gin_param="DATA_DIR='data/synthetic_64'"

The run directory becomes a dual-encoder directory: the GAN stage loads it with
`--gin_param="ENCODER_DIR='runs/encoder_t2icl'"` (variants xmcgan_t2icl / xmcgan_scl) and the
evaluation uses a separately trained one as the R-precision judge (`--judge_dir`). Restarting
the same command resumes from the latest checkpoint. Exit status: 0 done, 2 bad configuration.
"""

from __future__ import annotations

from typing import Sequence

import gin
from absl import app
from absl import flags

from xmcgan_tf import cli
from xmcgan_tf import gin_config
from xmcgan_tf.data import schema
from xmcgan_tf.training import distribute
from xmcgan_tf.training import pretrain_lib

FLAGS = flags.FLAGS


def _define_flags() -> None:
    """Command-line flags; defined only when the module runs as a program, so that it can be
    imported beside the other entry points (which define flags of the same names)."""
    gin_config.define_flags("experiments/synthetic_encoder_damsm_64.gin")
    flags.DEFINE_enum(
        "strategy", None, list(distribute.STRATEGIES),
        "Distribution strategy; overrides pretrain_lib.pretrain.strategy (default, mirrored, "
        "multi_worker from TF_CONFIG, tpu with --tpu).")
    flags.DEFINE_string("tpu", None, "TPU name or address for --strategy=tpu.")

REQUIRED_PARAMETERS = tuple(f"pretrain_lib.pretrain.{name}"
                            for name in ("model_dir", "data_dir", "num_steps", "max_tokens"))


def run_pretraining(**overrides) -> pretrain_lib.PretrainResult:
    """Calls the gin-configured `pretrain_lib.pretrain` (after `gin_config.parse_config`)."""
    pretrain = gin_config.configured(
        pretrain_lib.pretrain, REQUIRED_PARAMETERS,
        "include runs/pretrain_encoder.gin (or an experiment that does)")
    return pretrain(operative_config=gin.operative_config_str, **overrides)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; use --gin_file/--gin_param")
    overrides = {}
    if FLAGS.strategy is not None:
        overrides["strategy"] = FLAGS.strategy
    if FLAGS.tpu is not None:
        overrides["tpu"] = FLAGS.tpu
    with cli.exit_on(gin_config.GinConfigError, schema.DatasetError,
                     pretrain_lib.PretrainCheckpointError, *cli.USER_ERRORS):
        gin_config.parse_config(FLAGS.gin_file, FLAGS.gin_param)
        result = run_pretraining(**overrides)
    print(f"dual encoder saved in {result.encoder_dir} at step {result.step}; "
          f"validation: {result.val_metrics}")


def entry_point() -> None:
    """The `xmcgan-pretrain-encoder` console script (and `python -m xmcgan_tf.pretrain_encoder`)."""
    cli.run(main, _define_flags)


if __name__ == "__main__":
    entry_point()
