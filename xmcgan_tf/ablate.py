r"""Runs an ablation study of gin variants and writes the paper-style table (SPEC §6).

    python -m xmcgan_tf.ablate --variants=xmcgan,xmcgan_no_contrastive,ablation_sent \
      --train_steps=20000 --eval_every=5000 --study_dir=runs/ablation \
      --data_dir=data/synthetic_64 --base_gin=experiments/synthetic_xmcgan_64.gin \
      --metrics=fid,kid,is,rprec,objacc --num_samples=1000 --feature_network=domain \
      --evaluator_dir=artifacts/evaluator --judge_dir=runs/judge \
      [--gin_param=BINDING ...] [--gin_file=FILE ...] [--encoder_dir=DIR] [--seed=0]

Every variant is trained in OUTPUT/runs/<variant> from the same gin layers: `--base_gin` (an
XMC-GAN experiment), `gin/variants/<variant>.gin`, any `--gin_file`, the `--gin_param`
bindings, then the study's own bindings (MODEL_DIR, DATA_DIR, the ScheduleConfig's
num_steps, checkpoint_every = eval_every and keep_checkpoints, train_lib.train.seed). Every
checkpoint is evaluated with the same protocol; OUTPUT/ablation.md (table),
OUTPUT/ablation.json (all numbers) and OUTPUT/plots/<metric>.png (metric vs step) are written
and the table is printed. Running the same command again resumes: complete runs are not
retrained, interrupted ones resume, and evaluated checkpoints are not evaluated again.

Exit status: 0 done, 1 a run stopped on a non-finite loss, 2 bad configuration.
"""

from __future__ import annotations

import os
from typing import Sequence

import gin
from absl import app
from absl import flags

from xmcgan_tf import run_dir
from xmcgan_tf import cli
from xmcgan_tf import gin_config
from xmcgan_tf import train
from xmcgan_tf.data import schema
from xmcgan_tf.evaluation import ablation
from xmcgan_tf.evaluation import feature_extractors
from xmcgan_tf.evaluation import registry
from xmcgan_tf.training import distribute
from xmcgan_tf.training import train_lib

VARIANTS_DIR = os.path.join(gin_config.GIN_DIR, "variants")
FLAGS = flags.FLAGS


def _define_flags() -> None:
    """Command-line flags; defined only when the module runs as a program, so that it can be
    imported beside the other entry points (which define flags of the same names)."""
    # --gin_file, --gin_param, --strategy and --tpu mean here what they mean for training;
    # they exist already where the training entry point defined them on import.
    if "gin_param" not in FLAGS:
        gin_config.define_flags("experiments/synthetic_xmcgan_64.gin")
    if "strategy" not in FLAGS:
        flags.DEFINE_enum("strategy", None, list(distribute.STRATEGIES),
                          "Distribution strategy of the training runs.")
    if "tpu" not in FLAGS:
        flags.DEFINE_string("tpu", None, "TPU name or address for --strategy=tpu.")
    flags.DEFINE_list(
        "variants", None, "Comma-separated gin variants of gin/variants/, in table order, e.g. "
        "xmcgan,xmcgan_no_contrastive,ablation_sent.", required=True)
    flags.DEFINE_integer("train_steps", None, "Training steps of every variant.",
                         lower_bound=1, required=True)
    flags.DEFINE_string("study_dir", None, "Study directory (runs/, ablation.md, ablation.json, "
                        "plots/).", required=True)
    flags.DEFINE_string("data_dir", None, "Dataset of training and evaluation.", required=True)
    flags.DEFINE_string(
        "base_gin", "experiments/synthetic_xmcgan_64.gin",
        "XMC-GAN experiment gin file the variants are layered on (as given, or relative to "
        "gin/); its variant must be xmcgan, whose bindings each variant's gin file overrides.")
    flags.DEFINE_integer(
        "eval_every", None, "Steps between checkpoints, each of which is evaluated; default "
        "--train_steps (the final step only).", lower_bound=1)
    flags.DEFINE_list("metrics", list(ablation.DEFAULT_METRICS),
                      f"Metrics; registered: {','.join(registry.metric_names())}.")
    flags.DEFINE_integer("num_samples", 1000, "Images per generator and checkpoint.",
                         lower_bound=2)
    flags.DEFINE_enum("feature_network", "domain", list(feature_extractors.FEATURE_NETWORKS),
                      "Feature network of FID/KID/IS.")
    flags.DEFINE_string("split", "val", "Split of the captions and real statistics.")
    flags.DEFINE_string(
        "evaluator_dir", None, "Domain evaluator (`python -m xmcgan_tf.train_evaluator`): "
        "feature network 'domain' and metric objacc.")
    flags.DEFINE_string("judge_dir", None,
                        "Pretrained dual encoder judging R-precision (metric rprec).")
    flags.DEFINE_string(
        "inception_handle", feature_extractors.DEFAULT_INCEPTION_HANDLE,
        "TF-Hub handle or directory of the Inception module (--feature_network=inception).")
    flags.DEFINE_string(
        "encoder_dir", None,
        "Pretrained dual encoder of xmcgan_t2icl / xmcgan_scl (their ENCODER_DIR).")
    flags.DEFINE_list("generators", ["ema"], "Generators evaluated: ema and/or raw.")
    flags.DEFINE_integer("seed", 0, "Training seed of every variant and evaluation seed.")
    flags.DEFINE_integer("batch_size", 50, "Images per evaluation call.", lower_bound=1)
    flags.DEFINE_string("cache_dir", None, "Real-statistics cache; default DATA_DIR/eval_cache.")


def study_bindings(*, model_dir: str, data_dir: str, num_steps: int, eval_every: int,
                   seed: int, variant: str, encoder_dir: str | None) -> list[str]:
    """The gin bindings the study applies to one variant, after the user's."""
    bindings = [f"MODEL_DIR = {model_dir!r}", f"DATA_DIR = {data_dir!r}",
                f"train_config.ScheduleConfig.num_steps = {num_steps}",
                f"train_config.ScheduleConfig.checkpoint_every = {eval_every}",
                f"train_config.ScheduleConfig.keep_checkpoints = "
                f"{ablation.keep_checkpoints(num_steps, eval_every)}",
                f"train_lib.train.seed = {seed}"]
    if variant in ablation.ENCODER_VARIANTS:
        bindings.append(f"ENCODER_DIR = {encoder_dir!r}")
    return bindings


def make_train_fn(*, base_gin: str, gin_files: Sequence[str], gin_params: Sequence[str],
                  data_dir: str, num_steps: int, eval_every: int, seed: int,
                  encoder_dir: str | None, **overrides) -> ablation.TrainFn:
    """A `TrainFn` that parses the variant's gin layers afresh and calls `train.run_training`.

    Args:
      base_gin: experiment gin file the variants are layered on.
      gin_files: further gin files applied after the variant's.
      gin_params: bindings applied to every variant (before the study's own).
      data_dir: dataset directory.
      num_steps: training steps.
      eval_every: checkpoint interval.
      seed: training seed.
      encoder_dir: ENCODER_DIR of T2I_CL / SCL.
      **overrides: `train_config.DistributionConfig` fields given on the command line
        (strategy, tpu).

    Returns:
      `train_variant(variant, model_dir) -> train_lib.TrainResult`, which clears gin before
      and after each variant.
    """
    def train_variant(variant: str, model_dir: str) -> train_lib.TrainResult:
        gin.clear_config()
        try:
            train.parse_config(
                [base_gin, os.path.join(VARIANTS_DIR, f"{variant}.gin"), *gin_files],
                [*gin_params, *study_bindings(
                    model_dir=model_dir, data_dir=data_dir, num_steps=num_steps,
                    eval_every=eval_every, seed=seed, variant=variant,
                    encoder_dir=encoder_dir)])
            return train.run_training(**overrides)
        finally:
            gin.clear_config()

    return train_variant


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    num_steps = FLAGS.train_steps
    eval_every = FLAGS.eval_every or num_steps
    overrides = {}
    if FLAGS.strategy is not None:
        overrides["strategy"] = FLAGS.strategy
    if FLAGS.tpu is not None:
        overrides["tpu"] = FLAGS.tpu
    protocol = ablation.EvalProtocol(
        metrics=tuple(FLAGS.metrics), num_samples=FLAGS.num_samples,
        feature_network=FLAGS.feature_network, split=FLAGS.split,
        generators=tuple(FLAGS.generators), seed=FLAGS.seed, evaluator_dir=FLAGS.evaluator_dir,
        judge_dir=FLAGS.judge_dir, inception_handle=FLAGS.inception_handle,
        batch_size=FLAGS.batch_size, cache_dir=FLAGS.cache_dir)
    train_fn = make_train_fn(
        base_gin=FLAGS.base_gin, gin_files=FLAGS.gin_file, gin_params=FLAGS.gin_param,
        data_dir=FLAGS.data_dir, num_steps=num_steps, eval_every=eval_every, seed=FLAGS.seed,
        encoder_dir=FLAGS.encoder_dir, **overrides)
    study_info = {"base gin": FLAGS.base_gin}
    if FLAGS.gin_file:
        study_info["gin files"] = ", ".join(FLAGS.gin_file)
    if FLAGS.gin_param:
        study_info["gin bindings"] = "; ".join(FLAGS.gin_param)
    with cli.exit_on(train_lib.NonFiniteLossError, code=cli.EXIT_NON_FINITE), \
            cli.exit_on(ablation.AblationError, gin_config.GinConfigError, schema.DatasetError,
                        run_dir.CheckpointError, feature_extractors.FeatureNetworkError,
                        *cli.USER_ERRORS):
        if not os.path.exists(gin_config.resolve_gin_file(FLAGS.base_gin)):
            raise ablation.AblationError(f"--base_gin {FLAGS.base_gin!r} not found (as given "
                                         f"or under {gin_config.GIN_DIR})")
        result = ablation.run_ablation(
            FLAGS.study_dir, FLAGS.variants, train_fn=train_fn, num_steps=num_steps,
            eval_every=eval_every, data_dir=FLAGS.data_dir, protocol=protocol,
            available=ablation.list_variants(VARIANTS_DIR), encoder_dir=FLAGS.encoder_dir,
            study_info=study_info)
    complete = [v for v in FLAGS.variants if v not in result.trained]
    print(f"trained: {', '.join(result.trained) or 'none'}; already complete (not retrained): "
          f"{', '.join(complete) or 'none'}; checkpoints evaluated: {len(result.evaluated)}")
    print(result.table)
    print(f"wrote {result.table_path}, {result.json_path} and "
          f"{os.path.join(FLAGS.study_dir, ablation.PLOTS_SUBDIR)}/")


def entry_point() -> None:
    """The `xmcgan-ablate` console script (and `python -m xmcgan_tf.ablate`)."""
    cli.run(main, _define_flags)


if __name__ == "__main__":
    entry_point()
