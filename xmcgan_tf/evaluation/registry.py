"""Metric registry: protocol-named metrics and their reports (`metrics/<protocol>.jsonl`).

Each metric is registered under a short name (`fid`, `kid`, `is`, `rprec`, `objacc`, and the
diagnostics `shapes` and `places`) with what it needs and how its *protocol* is named. The
protocol name states everything that makes two numbers comparable: metric, feature network,
real-statistics / caption split and sample count, e.g. `fid_domain_val_500`,
`kid_inception_val_30000`, `rprec100_dualenc_val_500`. Numbers with different protocol names
are never compared, so values from different feature networks never meet.

`report_metric` appends one JSON line per result to `MODEL_DIR/metrics/<protocol>.jsonl`
(step, checkpoint, generator 'raw' | 'ema' | 'real', sample count, feature network,
real-statistics split) and writes TensorBoard scalars `<protocol>/<generator>` to
`MODEL_DIR/tensorboard/eval`.

Legend: N scored images, F feature dimension, C classes, K joint embedding dimension.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from xmcgan_tf import run_dir
from xmcgan_tf.evaluation import domain_evaluator
from xmcgan_tf.evaluation import image_quality
from xmcgan_tf.evaluation import object_accuracy
from xmcgan_tf.evaluation import r_precision

TENSORBOARD_SUBDIR = os.path.join(run_dir.TENSORBOARD_SUBDIR, "eval")
GENERATORS = ("raw", "ema", "real")
# The real images a distance's floor compares with the evaluated split's (see `Metric`).
FLOOR_SPLIT = "train"

# What a metric can need; eval_lib fills the matching MetricInputs fields.
FEATURES = "features"  # feature-network outputs on the scored images
REAL_FEATURES = "real_features"  # feature-network outputs on the real images
JUDGE = "judge"  # R-precision judge embeddings of the scored images and their captions
OBJECTS = "objects"  # domain-evaluator outputs on the scored images + ground-truth objects
NEEDS = (FEATURES, REAL_FEATURES, JUDGE, OBJECTS)

R_PRECISION_CANDIDATES = 100
R_PRECISION_FOLDS = 10
IS_SPLITS = 10


@dataclasses.dataclass
class MetricInputs:
    """Everything a metric may read, for one set of scored images (N of them).

    Attributes:
      features: feature-network outputs on the scored images: "features" [N, F],
        "logits" [N, C].
      real_features: the same network's outputs on the real images.
      image_embeddings: [N, K] judge embeddings of the scored images.
      text_embeddings: [N, K] judge embeddings of their captions.
      captions: [N] caption texts (R-precision excludes identical texts from the negatives).
      object_outputs: domain-evaluator outputs on the scored images ("shape_logits",
        "color_logits", "size_logits" [N, G², ·]).
      objects: ground truth "shape", "color", "size", "row", "col" [N, K_obj] int, -1 padded.
      states_position: [N] int, the caption states absolute positions.
      states_size: [N] int, the caption states sizes.
      labels: [N] int image labels.
      grid: G of the domain evaluator.
      seed: seed of any sampling inside a metric.
    """

    features: Mapping[str, np.ndarray] | None = None
    real_features: Mapping[str, np.ndarray] | None = None
    image_embeddings: np.ndarray | None = None
    text_embeddings: np.ndarray | None = None
    captions: Sequence[str] | None = None
    object_outputs: Mapping[str, np.ndarray] | None = None
    objects: Mapping[str, np.ndarray] | None = None
    states_position: np.ndarray | None = None
    states_size: np.ndarray | None = None
    labels: np.ndarray | None = None
    grid: int = 3
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class MetricValue:
    """A metric's value, its spread where it has one, and further named values."""

    value: float
    std: float | None = None
    extra: Mapping[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Metric:
    """A registered metric.

    Attributes:
      name: short name used on the command line ("fid").
      fn: MetricInputs -> MetricValue.
      needs: subset of NEEDS.
      protocol_format: protocol name with {network}, {split} and {n} placeholders.
      network: fixed network name (e.g. "dualenc"), or None to use the chosen feature network.
      real_reference: also scored on the real images (reported as generator 'real').
      floor_reference: a distance between two image sets, whose 'real' value is its floor:
        the distance between two disjoint sets of real images (FLOOR_SPLIT vs the evaluated
        split), under the same protocol.
      higher_is_better: direction of improvement.
    """

    name: str
    fn: Callable[[MetricInputs], MetricValue]
    needs: frozenset
    protocol_format: str
    network: str | None
    real_reference: bool
    higher_is_better: bool
    floor_reference: bool = False

    def network_name(self, feature_network: str) -> str:
        return self.network or feature_network

    def protocol(self, *, feature_network: str, split: str, num_samples: int) -> str:
        """Protocol name, e.g. `fid_domain_val_500`."""
        return self.protocol_format.format(network=self.network_name(feature_network),
                                           split=split, n=num_samples)


_METRICS: dict[str, Metric] = {}


def register_metric(name: str, *, needs: Sequence[str], protocol: str,
                    network: str | None = None, real_reference: bool = False,
                    floor_reference: bool = False,
                    higher_is_better: bool = False) -> Callable:
    """Decorator registering `fn(inputs: MetricInputs) -> MetricValue` under `name`.

    Args:
      name: short metric name; must be new.
      needs: what the metric reads (subset of NEEDS).
      protocol: protocol-name format with {network}, {split}, {n}.
      network: fixed network name, or None for the chosen feature network.
      real_reference: also report the value on the real images.
      floor_reference: report the real-vs-real floor (see `Metric`).
      higher_is_better: direction of improvement.
    """
    unknown = sorted(set(needs) - set(NEEDS))
    if unknown:
        raise ValueError(f"metric {name!r}: unknown needs {unknown}; allowed {NEEDS}")

    def decorator(fn: Callable[[MetricInputs], MetricValue]) -> Callable:
        if name in _METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        _METRICS[name] = Metric(name=name, fn=fn, needs=frozenset(needs),
                                protocol_format=protocol, network=network,
                                real_reference=real_reference,
                                floor_reference=floor_reference,
                                higher_is_better=higher_is_better)
        return fn

    return decorator


def get_metric(name: str) -> Metric:
    """The registered metric `name`; ValueError listing the known names otherwise."""
    if name not in _METRICS:
        raise ValueError(f"unknown metric {name!r}; registered metrics: {sorted(_METRICS)}")
    return _METRICS[name]


def metric_names() -> list[str]:
    """Names of all registered metrics."""
    return sorted(_METRICS)


@dataclasses.dataclass(frozen=True)
class MetricResult:
    """One reported number with everything needed to know what it means.

    Attributes:
      metric: registered short name.
      protocol: protocol name (file name of its jsonl log).
      value: the metric value.
      std: its spread (folds, splits or blocks), if any.
      extra: further named values (e.g. class-averaged object accuracy).
      generator: "raw", "ema" or "real" (the real images themselves, for reference).
      step: training step of the checkpoint.
      checkpoint: checkpoint path.
      num_samples: number of scored images.
      feature_network: network that produced the features or embeddings.
      real_split: split of the real statistics and captions.
    """

    metric: str
    protocol: str
    value: float
    std: float | None
    extra: Mapping[str, float]
    generator: str
    step: int
    checkpoint: str
    num_samples: int
    feature_network: str
    real_split: str

    def to_json(self) -> dict:
        def clean(x: float | None) -> float | None:
            return None if x is None or math.isnan(x) else float(x)

        record = dataclasses.asdict(self)
        record.update(value=clean(self.value), std=clean(self.std),
                      extra={k: clean(v) for k, v in self.extra.items()})
        return record


def calc_metric(name: str, inputs: MetricInputs, *, generator: str, step: int,
                checkpoint: str, feature_network: str, real_split: str) -> MetricResult:
    """Computes a registered metric and wraps it as a MetricResult."""
    metric = get_metric(name)
    missing = [need for need, ok in (
        (FEATURES, inputs.features is not None),
        (REAL_FEATURES, inputs.real_features is not None),
        (JUDGE, inputs.image_embeddings is not None and inputs.text_embeddings is not None),
        (OBJECTS, inputs.object_outputs is not None and inputs.objects is not None),
    ) if need in metric.needs and not ok]
    if missing:
        raise ValueError(f"metric {name!r} needs {missing}, which were not computed")
    value = metric.fn(inputs)
    num_samples = _num_scored(inputs)
    return MetricResult(
        metric=name, protocol=metric.protocol(feature_network=feature_network, split=real_split,
                                              num_samples=num_samples),
        value=float(value.value), std=None if value.std is None else float(value.std),
        extra=dict(value.extra), generator=generator, step=int(step), checkpoint=checkpoint,
        num_samples=num_samples, feature_network=metric.network_name(feature_network),
        real_split=real_split)


def _num_scored(inputs: MetricInputs) -> int:
    for values in (inputs.features and inputs.features.get("features"), inputs.image_embeddings,
                   inputs.object_outputs and inputs.object_outputs.get("shape_logits")):
        if values is not None:
            return int(np.shape(values)[0])
    raise ValueError("no scored images in the metric inputs")


_WRITERS: dict[str, tf.summary.SummaryWriter] = {}


def report_metric(model_dir: str, result: MetricResult) -> dict:
    """Appends `result` to `MODEL_DIR/metrics/<protocol>.jsonl` and writes TensorBoard scalars.

    Returns:
      The JSON record written (with a `time` field, seconds since the epoch).
    """
    record = {**result.to_json(), "time": round(time.time(), 3)}
    path = run_dir.metrics_path(model_dir, f"{result.protocol}.jsonl")
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
    logdir = os.path.join(model_dir, TENSORBOARD_SUBDIR)
    if logdir not in _WRITERS:
        _WRITERS[logdir] = tf.summary.create_file_writer(logdir)
    writer = _WRITERS[logdir]
    with writer.as_default():
        tag = f"{result.protocol}/{result.generator}"
        tf.summary.scalar(tag, result.value, step=result.step)
        for key, value in result.extra.items():
            tf.summary.scalar(f"{tag}/{key}", value, step=result.step)
    writer.flush()
    return record


def read_reports(model_dir: str, protocol: str) -> list[dict]:
    """All records of `MODEL_DIR/metrics/<protocol>.jsonl` (empty if none)."""
    path = run_dir.metrics_path(model_dir, f"{protocol}.jsonl")
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------------------------------------
# The metrics.


@register_metric("fid", needs=(FEATURES, REAL_FEATURES), protocol="fid_{network}_{split}_{n}",
                 floor_reference=True)
def _fid(inputs: MetricInputs) -> MetricValue:
    return MetricValue(image_quality.frechet_distance(inputs.real_features["features"],
                                                      inputs.features["features"]))


@register_metric("kid", needs=(FEATURES, REAL_FEATURES), protocol="kid_{network}_{split}_{n}",
                 floor_reference=True)
def _kid(inputs: MetricInputs) -> MetricValue:
    kid, std = image_quality.kernel_distance(inputs.real_features["features"],
                                             inputs.features["features"])
    return MetricValue(kid, std)


@register_metric("is", needs=(FEATURES,), protocol="is_{network}_{split}_{n}",
                 real_reference=True, higher_is_better=True)
def _inception_score(inputs: MetricInputs) -> MetricValue:
    logits = inputs.features["logits"]
    mean, std = image_quality.inception_score(logits, num_splits=min(IS_SPLITS, len(logits)))
    return MetricValue(mean, std)


@register_metric("rprec", needs=(JUDGE,),
                 protocol=f"rprec{R_PRECISION_CANDIDATES}_{{network}}_{{split}}_{{n}}",
                 network="dualenc", real_reference=True, higher_is_better=True)
def _r_precision(inputs: MetricInputs) -> MetricValue:
    count = len(inputs.image_embeddings)
    mean, std = r_precision.r_precision(
        inputs.image_embeddings, inputs.text_embeddings, num_candidates=R_PRECISION_CANDIDATES,
        num_folds=min(R_PRECISION_FOLDS, count), seed=inputs.seed, captions=inputs.captions)
    return MetricValue(mean, std)


@register_metric("objacc", needs=(OBJECTS,), protocol="objacc_{network}_{split}_{n}",
                 network="domain", real_reference=True, higher_is_better=True)
def _object_accuracy(inputs: MetricInputs) -> MetricValue:
    result = object_accuracy.object_accuracy(
        domain_evaluator.predict_objects(inputs.object_outputs), inputs.objects,
        inputs.states_position, inputs.states_size, inputs.labels, inputs.grid)
    return MetricValue(result.image_averaged,
                       extra={"class_averaged": result.class_averaged,
                              "object_averaged": result.object_averaged})


@register_metric("places", needs=(OBJECTS,), protocol="places_{network}_{split}_{n}",
                 network="domain", real_reference=True, higher_is_better=True)
def _place_recall(inputs: MetricInputs) -> MetricValue:
    """Of the named objects whose caption states where they are, the fraction with an object of
    their colour in the stated cell (shape and size aside); the recall of the same drawings put
    in random cells (`chance`) and the fraction whose colour is drawn at all as extras."""
    result = object_accuracy.place_recall(
        domain_evaluator.predict_objects(inputs.object_outputs), inputs.objects,
        inputs.states_position, inputs.grid)
    return MetricValue(result.recall, extra={"chance": result.chance,
                                             "colour_drawn": result.colour_drawn})


@register_metric("shapes", needs=(OBJECTS,), protocol="shapes_{network}_{split}_{n}",
                 network="domain", real_reference=True, higher_is_better=True)
def _shape_recall(inputs: MetricInputs) -> MetricValue:
    """Of the named objects whose colour is drawn somewhere, the fraction drawn with the named
    shape (position and size aside); per-shape recalls (`recall/shape_<s>`, the shapes in the
    dataset's order) and the fraction whose colour is not drawn at all as extras."""
    num_shapes = int(np.asarray(inputs.object_outputs["shape_logits"]).shape[-1]) - 1
    counts = object_accuracy.shape_confusion(
        domain_evaluator.predict_objects(inputs.object_outputs), inputs.objects, num_shapes)
    found = counts[:, 1:].sum()
    right = np.trace(counts[:, 1:])
    extra = {f"recall/shape_{s}": float(counts[s, s + 1] / max(counts[s].sum(), 1))
             for s in range(num_shapes)}
    extra["colour_not_drawn"] = float(counts[:, 0].sum() / max(counts.sum(), 1))
    return MetricValue(float(right / max(found, 1)), extra=extra)
