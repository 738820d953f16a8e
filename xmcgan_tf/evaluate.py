r"""Evaluates a training run's checkpoints and prints a Markdown table (SPEC §6).

    python -m xmcgan_tf.evaluate --model_dir=MODEL_DIR \
      --metrics=fid,kid,is,rprec,objacc [--data_dir=DATA_DIR] [--num_samples=1000] \
      [--feature_network=domain|inception] [--evaluator_dir=DIR] [--inception_handle=URL|DIR] \
      [--judge_dir=DIR] [--checkpoint=ckpt-N] [--split=val] [--watch]

`--model_dir` is the run directory (MODEL_DIR of training) (holding run.json and checkpoints/; the checkpoints/
folder itself is accepted too). Without `--checkpoint` the latest checkpoint is evaluated;
with `--watch` every new checkpoint is evaluated as training writes it. Results are appended to
MODEL_DIR/metrics/<protocol>.jsonl and written to TensorBoard (MODEL_DIR/tensorboard/eval).
"""

from __future__ import annotations

import os
from typing import Sequence

import tensorflow as tf
from absl import app
from absl import flags

from xmcgan_tf import run_dir
from xmcgan_tf import cli
from xmcgan_tf.evaluation import eval_lib
from xmcgan_tf.evaluation import feature_extractors
from xmcgan_tf.evaluation import registry

_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Run directory MODEL_DIR (run.json + checkpoints/).", required=True)
_METRICS = flags.DEFINE_list(
    "metrics", list(eval_lib.DEFAULT_METRICS),
    f"Comma-separated metrics; registered: {','.join(registry.metric_names())}.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset; default the run's data_dir.")
_SPLIT = flags.DEFINE_string("split", "val", "Split of the captions and real statistics.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1000, "Images to generate per generator.",
                                    lower_bound=2)
_FEATURE_NETWORK = flags.DEFINE_enum(
    "feature_network", "domain", list(feature_extractors.FEATURE_NETWORKS),
    "Feature network of FID/KID/IS: the synthetic-set domain evaluator or TF-GAN Inception.")
_EVALUATOR_DIR = flags.DEFINE_string(
    "evaluator_dir", None, "Domain evaluator trained by `python -m xmcgan_tf.train_evaluator` "
    "(feature network 'domain' and metric objacc).")
_INCEPTION_HANDLE = flags.DEFINE_string(
    "inception_handle", feature_extractors.DEFAULT_INCEPTION_HANDLE,
    "TF-Hub handle or local directory of the TF-GAN Inception module.")
_JUDGE_DIR = flags.DEFINE_string(
    "judge_dir", None, "Pretrained dual encoder (xmcgan_tf.pretrain_encoder output) used as "
    "the R-precision judge; train it separately from the evaluated generator.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Checkpoint name or prefix; default the "
                                  "latest.")
_GENERATORS = flags.DEFINE_list("generators", ["raw", "ema"], "Generators to evaluate.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 50, "Images per call.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Caption choice, z and R-precision negatives.")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None,
                                 "Real-statistics cache; default DATA_DIR/eval_cache.")
_WATCH = flags.DEFINE_bool("watch", False, "Evaluate every new checkpoint as it appears.")
_POLL_SECONDS = flags.DEFINE_float("poll_seconds", 60.0, "--watch: seconds between polls.")
_UNTIL_STEP = flags.DEFINE_integer("until_step", None,
                                   "--watch: stop after a checkpoint of at least this step.")
_MAX_IDLE_SECONDS = flags.DEFINE_float(
    "max_idle_seconds", None, "--watch: stop after this long without a new checkpoint.")


def _model_dir(path: str) -> str:
    """The run directory for --model_dir (which may name MODEL_DIR/checkpoints)."""
    path = path.rstrip("/")
    parent = os.path.dirname(path)
    if (os.path.basename(path) == run_dir.CHECKPOINT_SUBDIR
            and tf.io.gfile.exists(os.path.join(parent, run_dir.RUN_INFO_FILE))):
        return parent
    return path


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    kwargs = dict(data_dir=_DATA_DIR.value, metrics=_METRICS.value,
                  num_samples=_NUM_SAMPLES.value, feature_network=_FEATURE_NETWORK.value,
                  split=_SPLIT.value, evaluator_dir=_EVALUATOR_DIR.value,
                  inception_handle=_INCEPTION_HANDLE.value, judge_dir=_JUDGE_DIR.value,
                  batch_size=_BATCH_SIZE.value, seed=_SEED.value,
                  generators=_GENERATORS.value, cache_dir=_CACHE_DIR.value)
    with cli.exit_on(ValueError, FileNotFoundError, feature_extractors.FeatureNetworkError):
        model_dir = _model_dir(_MODEL_DIR.value)
        if _WATCH.value:
            eval_lib.watch(
                model_dir, poll_seconds=_POLL_SECONDS.value, until_step=_UNTIL_STEP.value,
                max_idle_seconds=_MAX_IDLE_SECONDS.value,
                on_results=lambda results: print(eval_lib.format_table(results) + "\n",
                                                 flush=True),
                **kwargs)
            return
        results = eval_lib.evaluate(model_dir, checkpoint=_CHECKPOINT.value, **kwargs)
        print(eval_lib.format_table(results))


def entry_point() -> None:
    """The `xmcgan-evaluate` console script (and `python -m xmcgan_tf.evaluate`)."""
    cli.run(main)


if __name__ == "__main__":
    entry_point()
