"""Ablation study: train several loss variants alike, evaluate every checkpoint alike, tabulate.

`run_ablation` trains each variant into `OUTPUT/runs/<variant>` through a training callable
(the entry point `xmcgan_tf.ablate` supplies one that layers the base gin file, the variant's
gin file and the shared bindings, so every variant gets the same seed, data and step budget),
evaluates every checkpoint of every run with one evaluation protocol (`eval_lib.evaluate`: the
same metrics, sample count, caption split, feature network, generator and seed), and writes

- `OUTPUT/ablation.md`: variant × metric at the final step, plus the real-image reference row
  (IS, R-precision and object accuracy of the real images of the split), under a header naming
  the protocol;
- `OUTPUT/ablation.json`: the protocol, the final table and every evaluated number;
- `OUTPUT/plots/<metric>.png`: each metric against training steps, one line per variant.

The study resumes: a run already at the requested step is not trained again, an interrupted
one resumes from its latest checkpoint (training restores itself from MODEL_DIR), and
checkpoints evaluated under the same protocol (kept in `ablation.json`, written after every
checkpoint) are not evaluated again.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from absl import logging
from matplotlib import figure as mpl_figure
from matplotlib import ticker
from matplotlib.backends import backend_agg

from xmcgan_tf import files
from xmcgan_tf import run_dir
from xmcgan_tf.data import schema
from xmcgan_tf.evaluation import domain_evaluator
from xmcgan_tf.evaluation import eval_lib
from xmcgan_tf.evaluation import feature_extractors
from xmcgan_tf.evaluation import registry
from xmcgan_tf.models import dual_encoder_io

TABLE_FILE = "ablation.md"
JSON_FILE = "ablation.json"
PLOTS_SUBDIR = "plots"
RUNS_SUBDIR = "runs"
REAL_ROW = "real images"
ENCODER_VARIANTS = ("xmcgan_t2icl", "xmcgan_scl")
DEFAULT_METRICS = ("fid", "kid", "is", "rprec", "objacc")
METRIC_LABELS = {"fid": "FID", "kid": "KID", "is": "IS", "rprec": "R-precision",
                 "objacc": "object accuracy"}

TrainFn = Callable[[str, str], Any]
"""`(variant, model_dir) -> Any`: trains `variant` in `model_dir` up to the study's step count,
resuming from the run's latest checkpoint, with a checkpoint at every evaluation step."""


class AblationError(ValueError):
    """The study cannot run as asked; the message names the problem and the way out."""


@dataclasses.dataclass(frozen=True)
class EvalProtocol:
    """How every checkpoint of every variant is evaluated (arguments of `eval_lib.evaluate`).

    Attributes:
      metrics: registered metric names (`registry.metric_names()`).
      num_samples: N generated images per generator, conditioned on the first N captions.
      feature_network: "domain" or "inception" (FID, KID, IS).
      split: caption / real-statistics split.
      generators: subset of ("raw", "ema").
      seed: caption choice, z and R-precision negatives.
      evaluator_dir: saved domain evaluator (feature network "domain", metric "objacc").
      judge_dir: pretrained dual encoder judging R-precision (metric "rprec").
      inception_handle: TF-Hub handle or directory of the Inception module ("inception").
      batch_size: images per network call (does not change the numbers).
      cache_dir: real-statistics cache; None for `DATA_DIR/eval_cache`.
    """

    metrics: tuple[str, ...] = DEFAULT_METRICS
    num_samples: int = 1000
    feature_network: str = "domain"
    split: str = "val"
    generators: tuple[str, ...] = ("ema",)
    seed: int = 0
    evaluator_dir: str | None = None
    judge_dir: str | None = None
    inception_handle: str = feature_extractors.DEFAULT_INCEPTION_HANDLE
    batch_size: int = 50
    cache_dir: str | None = None

    def identity(self, data_dir: str) -> dict[str, Any]:
        """Everything that makes two evaluations comparable (batch size and cache excluded)."""
        return {
            "data_dir": os.path.abspath(data_dir), "metrics": list(self.metrics),
            "num_samples": int(self.num_samples), "feature_network": self.feature_network,
            "split": self.split, "generators": list(self.generators), "seed": int(self.seed),
            "evaluator_dir": _abspath(self.evaluator_dir),
            "judge_dir": _abspath(self.judge_dir),
            "inception_handle": (self.inception_handle if self.feature_network == "inception"
                                 else None)}


@dataclasses.dataclass
class AblationResult:
    """Outcome of `run_ablation`.

    Attributes:
      table: the Markdown written to `ablation.md`.
      final: one row per (variant, generator) at its final step, then the real-image row:
        {"variant", "generator", "step", "values": {metric: {"value", "std", "protocol"}}}.
      evaluations: every evaluated number, a `MetricResult.to_json()` plus "variant".
      trained: variants trained or resumed by this call.
      evaluated: checkpoints evaluated by this call, as "<variant>/<checkpoint name>".
      table_path: path of `ablation.md`.
      json_path: path of `ablation.json`.
      plot_paths: metric -> path of its PNG plot.
    """

    table: str
    final: list[dict[str, Any]]
    evaluations: list[dict[str, Any]]
    trained: list[str]
    evaluated: list[str]
    table_path: str
    json_path: str
    plot_paths: dict[str, str]


def _abspath(path: str | None) -> str | None:
    return os.path.abspath(path) if path else None


def list_variants(variants_dir: str) -> list[str]:
    """Names of the gin variants in `variants_dir` (file stems of `*.gin`), sorted."""
    if not tf.io.gfile.isdir(variants_dir):
        raise AblationError(f"variants directory {variants_dir!r} does not exist")
    return sorted(name[:-len(".gin")] for name in tf.io.gfile.listdir(variants_dir)
                  if name.endswith(".gin"))


def variant_dir(output_dir: str, variant: str) -> str:
    """`OUTPUT/runs/<variant>`, the variant's MODEL_DIR."""
    return os.path.join(output_dir, RUNS_SUBDIR, variant)


def keep_checkpoints(num_steps: int, eval_every: int) -> int:
    """Checkpoints to keep on disk so that none of the study's evaluation steps is deleted."""
    return math.ceil(num_steps / eval_every) + 1


def check_study(variants: Sequence[str], *, available: Sequence[str], num_steps: int,
                eval_every: int, data_dir: str, protocol: EvalProtocol,
                encoder_dir: str | None = None) -> None:
    """Checks everything that can be checked before any training starts.

    Raises:
      AblationError: an unknown or repeated variant (the message lists the available ones),
        T2I_CL/SCL without an encoder directory, a missing domain evaluator or judge, an
        unknown metric or generator, a dataset without the split, or bad step counts.
      schema.DatasetError: `data_dir` holds no dataset_info.json.
    """
    if not variants:
        raise AblationError(f"no variants given; available variants: {', '.join(available)}")
    repeated = sorted({v for v in variants if list(variants).count(v) > 1})
    if repeated:
        raise AblationError(f"variants given more than once: {', '.join(repeated)}")
    unknown = [v for v in variants if v not in available]
    if unknown:
        raise AblationError(f"unknown variant(s) {', '.join(unknown)}; available variants "
                            f"(gin/variants/): {', '.join(available)}")
    needs_encoder = [v for v in variants if v in ENCODER_VARIANTS]
    if needs_encoder and not encoder_dir:
        raise AblationError(
            f"variant(s) {', '.join(needs_encoder)} need a pretrained dual encoder: pass "
            "--encoder_dir (train one with `python -m xmcgan_tf.pretrain_encoder "
            "--gin_file=experiments/synthetic_encoder_t2icl_64.gin` or the SCL experiment)")
    if needs_encoder and not tf.io.gfile.exists(
            os.path.join(encoder_dir, dual_encoder_io.WEIGHTS_FILE)):
        raise AblationError(f"--encoder_dir {encoder_dir!r} holds no dual encoder (expected "
                            f"{dual_encoder_io.WEIGHTS_FILE}); it must be the run directory of "
                            "`python -m xmcgan_tf.pretrain_encoder`")
    if num_steps < 1 or eval_every < 1:
        raise AblationError(f"train steps ({num_steps}) and eval_every ({eval_every}) must be "
                            ">= 1")
    if protocol.num_samples < 2:
        raise AblationError(f"num_samples must be >= 2, got {protocol.num_samples}")
    if not protocol.metrics:
        raise AblationError(f"no metrics given; registered: {registry.metric_names()}")
    try:
        metrics = [registry.get_metric(name) for name in protocol.metrics]
    except ValueError as e:
        raise AblationError(str(e)) from e
    bad_generators = sorted(set(protocol.generators) - {"raw", "ema"})
    if bad_generators or not protocol.generators:
        raise AblationError(f"generators must be a non-empty subset of raw, ema; got "
                            f"{list(protocol.generators)}")
    if protocol.feature_network not in feature_extractors.FEATURE_NETWORKS:
        raise AblationError(f"feature network {protocol.feature_network!r} is not one of "
                            f"{feature_extractors.FEATURE_NETWORKS}")
    needs = set().union(*(m.needs for m in metrics))
    domain_users = [m.name for m in metrics if registry.OBJECTS in m.needs or (
        protocol.feature_network == "domain"
        and m.needs & {registry.FEATURES, registry.REAL_FEATURES})]
    if domain_users:
        if not protocol.evaluator_dir:
            raise AblationError(
                f"metric(s) {', '.join(domain_users)} with feature network "
                f"{protocol.feature_network!r} need a trained domain evaluator: pass "
                "--evaluator_dir (train one with `python -m xmcgan_tf.train_evaluator "
                "--data_dir=DATA_DIR --output_dir=DIR`)")
        try:
            domain_evaluator.read_config(protocol.evaluator_dir)
        except FileNotFoundError as e:
            raise AblationError(f"--evaluator_dir: {e}") from e
    if registry.JUDGE in needs:
        if not protocol.judge_dir:
            raise AblationError(
                "metric rprec needs an R-precision judge: pass --judge_dir (a dual encoder "
                "trained with `python -m xmcgan_tf.pretrain_encoder`, separately from the "
                "evaluated generators)")
        if not tf.io.gfile.exists(os.path.join(protocol.judge_dir, dual_encoder_io.WEIGHTS_FILE)):
            raise AblationError(f"--judge_dir {protocol.judge_dir!r} holds no dual encoder "
                                f"(expected {dual_encoder_io.WEIGHTS_FILE})")
    info = schema.read_dataset_info(data_dir)
    if protocol.split not in info.splits:
        raise AblationError(f"dataset {data_dir} has no split {protocol.split!r}; it has "
                            f"{sorted(info.splits)}")


def _load_previous(json_path: str, identity: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Evaluations of a previous invocation under the same protocol (else none)."""
    if not tf.io.gfile.exists(json_path):
        return []
    with tf.io.gfile.GFile(json_path) as f:
        try:
            previous = json.load(f)
        except json.JSONDecodeError:
            logging.warning("%s is not valid JSON; evaluating every checkpoint again", json_path)
            return []
    if previous.get("protocol") != dict(identity):
        logging.warning("%s was written under another evaluation protocol; evaluating every "
                        "checkpoint again", json_path)
        return []
    return list(previous.get("evaluations", []))


def _final_rows(variants: Sequence[str], protocol: EvalProtocol,
                evaluations: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the table: each (variant, generator) at its last evaluated step, then real."""
    rows = []
    for variant in variants:
        for generator in protocol.generators:
            mine = [r for r in evaluations
                    if r["variant"] == variant and r["generator"] == generator]
            if not mine:
                continue
            step = max(r["step"] for r in mine)
            rows.append({"variant": variant, "generator": generator, "step": step,
                         "values": {r["metric"]: {"value": r["value"], "std": r["std"],
                                                  "protocol": r["protocol"]}
                                    for r in mine if r["step"] == step}})
    real = {}
    for record in evaluations:  # identical at every checkpoint; the latest one is kept
        if record["generator"] == "real":
            real[record["metric"]] = {"value": record["value"], "std": record["std"],
                                      "protocol": record["protocol"]}
    if real:
        rows.append({"variant": REAL_ROW, "generator": "real", "step": None, "values": real})
    return rows


def metric_label(name: str) -> str:
    """Column title of a metric with its direction, e.g. "FID ↓", "IS ↑"."""
    arrow = "↑" if registry.get_metric(name).higher_is_better else "↓"
    return f"{METRIC_LABELS.get(name, name)} {arrow}"


def _cell(entry: Mapping[str, Any] | None) -> str:
    if entry is None:
        return "–"
    if entry["value"] is None:
        return "nan"
    text = f"{entry['value']:.4f}"
    if entry["std"] is not None:
        text += f" ± {entry['std']:.4f}"
    return text


def format_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> str:
    """Markdown table: | variant | generator | step | <metric> ... | (values `v` or `v ± s`)."""
    lines = ["| variant | generator | step | " + " | ".join(metric_label(m) for m in metrics)
             + " |", "|---|---|---|" + "---|" * len(metrics)]
    for row in rows:
        step = "–" if row["step"] is None else str(row["step"])
        lines.append(f"| {row['variant']} | {row['generator']} | {step} | "
                     + " | ".join(_cell(row["values"].get(m)) for m in metrics) + " |")
    return "\n".join(lines)


def _header(variants: Sequence[str], protocol: EvalProtocol, num_steps: int, eval_every: int,
            data_dir: str, rows: Sequence[Mapping[str, Any]],
            evaluations: Sequence[Mapping[str, Any]], study_info: Mapping[str, Any]) -> str:
    """The lines above the table: what was trained and how it was evaluated."""
    protocols = sorted({entry["protocol"] for row in rows for entry in row["values"].values()})
    # The split may hold fewer images than asked for; the records hold the scored count.
    count = evaluations[-1]["num_samples"] if evaluations else protocol.num_samples
    metrics = [registry.get_metric(m) for m in protocol.metrics]
    parts = []
    if any(m.needs & {registry.FEATURES, registry.REAL_FEATURES} for m in metrics):
        network = (f"domain evaluator `{protocol.evaluator_dir}`"
                   if protocol.feature_network == "domain"
                   else f"Inception `{protocol.inception_handle}`")
        parts.append(f"FID/KID/IS on the activations of the {network} (feature network "
                     f"`{protocol.feature_network}`)")
    if "rprec" in protocol.metrics:
        parts.append(f"R-precision: R@1 among {registry.R_PRECISION_CANDIDATES} captions, "
                     f"dual-encoder judge `{protocol.judge_dir}`")
    if "objacc" in protocol.metrics:
        parts.append(f"object accuracy: recall of the caption's objects by the domain "
                     f"evaluator `{protocol.evaluator_dir}`")
    lines = [
        f"# Ablation: {', '.join(variants)}", "",
        f"- Training: {num_steps} steps per variant, same seed, data and budget "
        f"(data `{data_dir}`, a checkpoint every {eval_every} steps"
        + "".join(f", {key} `{value}`" for key, value in study_info.items()) + ").",
        f"- Evaluation: {count} images per generator ({', '.join(protocol.generators)}) "
        f"conditioned on the first {count} captions of split `{protocol.split}` (one caption "
        f"and one z per image, seed {protocol.seed}); real statistics from the same split.",
        f"- Metrics: {'; '.join(parts)}.",
        f"- Protocols: {', '.join(f'`{p}`' for p in protocols)}.",
        "- Values at each variant's final step (mean ± std over folds/splits/blocks where "
        "the metric has one); the real-image row scores the real images of the split, and "
        f"its FID and KID are the floor: {registry.FLOOR_SPLIT} images against the split's "
        "under the same protocol.",
    ]
    return "\n".join(lines)


def write_plots(output_dir: str, protocol: EvalProtocol,
                evaluations: Sequence[Mapping[str, Any]],
                variants: Sequence[str]) -> dict[str, str]:
    """Writes `OUTPUT/plots/<metric>.png` (metric vs training step, one line per variant and
    generator, the real-image value dashed); returns metric -> path."""
    directory = os.path.join(output_dir, PLOTS_SUBDIR)
    tf.io.gfile.makedirs(directory)
    paths = {}
    for metric in protocol.metrics:
        records = [r for r in evaluations if r["metric"] == metric]
        fig = mpl_figure.Figure(figsize=(6.0, 4.0), dpi=100)
        backend_agg.FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for variant in variants:
            for generator in protocol.generators:
                points = sorted((r["step"], np.nan if r["value"] is None else r["value"])
                                for r in records
                                if r["variant"] == variant and r["generator"] == generator)
                if not points:
                    continue
                label = variant if len(protocol.generators) == 1 else f"{variant} ({generator})"
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        real = [r for r in records if r["generator"] == "real" and r["value"] is not None]
        if real:
            ax.axhline(real[-1]["value"], color="gray", linestyle="--", label=REAL_ROW)
        protocol_names = sorted({r["protocol"] for r in records})
        ax.set_title(", ".join(protocol_names) or metric)
        ax.set_xlabel("training step")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.set_ylabel(metric_label(metric))
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        fig.tight_layout()
        path = os.path.join(directory, f"{metric}.png")
        with tf.io.gfile.GFile(path, "wb") as f:
            fig.savefig(f, format="png")
        paths[metric] = path
    return paths


def run_ablation(output_dir: str, variants: Sequence[str], *, train_fn: TrainFn,
                 num_steps: int, eval_every: int, data_dir: str, protocol: EvalProtocol,
                 available: Sequence[str] | None = None, encoder_dir: str | None = None,
                 study_info: Mapping[str, Any] | None = None) -> AblationResult:
    """Trains, evaluates and tabulates an ablation study (resuming a previous invocation).

    Args:
      output_dir: OUTPUT; runs go to `OUTPUT/runs/<variant>`.
      variants: gin variant names, in table order.
      train_fn: trains one variant (see `TrainFn`); called only for runs short of `num_steps`.
      num_steps: training steps of every variant.
      eval_every: steps between checkpoints (each is evaluated); the training callable must
        checkpoint at this interval and keep every checkpoint (`keep_checkpoints`).
      data_dir: dataset of training and evaluation.
      protocol: the evaluation protocol.
      available: known variant names (checked); None to skip the check.
      encoder_dir: dual encoder of T2I_CL / SCL (checked to exist for those variants).
      study_info: further facts named in the header and the JSON (e.g. base gin file).

    Returns:
      AblationResult.

    Raises:
      AblationError: the study cannot run as asked (see `check_study`), a run directory
        holds a run beyond `num_steps`, or training ended short of `num_steps`.
      schema.DatasetError: `data_dir` holds no dataset.
    """
    study_info = dict(study_info or {})
    check_study(variants, available=variants if available is None else available,
                num_steps=num_steps, eval_every=eval_every, data_dir=data_dir,
                protocol=protocol, encoder_dir=encoder_dir)
    tf.io.gfile.makedirs(output_dir)
    json_path = os.path.join(output_dir, JSON_FILE)
    identity = protocol.identity(data_dir)
    evaluations = _load_previous(json_path, identity)
    evaluations = [r for r in evaluations if r.get("variant") in variants]
    study = {"variants": list(variants), "num_steps": int(num_steps),
             "eval_every": int(eval_every), **study_info}

    def save(complete: bool, rows: list[dict[str, Any]]) -> None:
        document = {"protocol": identity, "study": study, "complete": complete,
                    "final": rows, "evaluations": evaluations}
        files.write_atomic(json_path, json.dumps(document, indent=2, sort_keys=True) + "\n")

    trained, evaluated = [], []
    for variant in variants:
        model_dir = variant_dir(output_dir, variant)
        checkpoints = run_dir.checkpoints(model_dir)
        latest = checkpoints[-1][0] if checkpoints else 0
        if latest > num_steps:
            raise AblationError(f"{model_dir} is already at step {latest} > {num_steps} train "
                                "steps; use another output directory or at least that many "
                                "steps")
        if latest < num_steps:
            logging.info("training %s in %s (from step %d to %d)", variant, model_dir, latest,
                         num_steps)
            train_fn(variant, model_dir)
            trained.append(variant)
            checkpoints = run_dir.checkpoints(model_dir)
            latest = checkpoints[-1][0] if checkpoints else 0
            if latest != num_steps:
                raise AblationError(f"training {variant} ended at step {latest}, not "
                                    f"{num_steps} (latest checkpoint of {model_dir})")
        else:
            logging.info("%s is complete at step %d; not trained again", variant, latest)
        done = {r.get("checkpoint_name") for r in evaluations if r["variant"] == variant}
        for step, path in checkpoints:
            name = os.path.basename(path)
            if name in done:
                continue
            logging.info("evaluating %s %s (step %d)", variant, name, step)
            results = eval_lib.evaluate(
                model_dir, data_dir=data_dir, metrics=list(protocol.metrics),
                num_samples=protocol.num_samples, feature_network=protocol.feature_network,
                split=protocol.split, checkpoint=path, evaluator_dir=protocol.evaluator_dir,
                inception_handle=protocol.inception_handle, judge_dir=protocol.judge_dir,
                batch_size=protocol.batch_size, seed=protocol.seed,
                generators=list(protocol.generators), cache_dir=protocol.cache_dir,
                real_reference=True, write=True)
            evaluations.extend({**r.to_json(), "variant": variant, "checkpoint_name": name}
                               for r in results)
            evaluated.append(f"{variant}/{name}")
            save(False, _final_rows(variants, protocol, evaluations))

    rows = _final_rows(variants, protocol, evaluations)
    table = (_header(variants, protocol, num_steps, eval_every, data_dir, rows, evaluations,
                     study_info)
             + "\n\n" + format_table(rows, protocol.metrics) + "\n")
    table_path = os.path.join(output_dir, TABLE_FILE)
    files.write_atomic(table_path, table)
    save(True, rows)
    plot_paths = write_plots(output_dir, protocol, evaluations, variants)
    return AblationResult(table=table, final=rows, evaluations=evaluations, trained=trained,
                          evaluated=evaluated, table_path=table_path, json_path=json_path,
                          plot_paths=plot_paths)
