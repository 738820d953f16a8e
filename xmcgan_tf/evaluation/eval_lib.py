"""Evaluation of a run's checkpoints: generate, extract, score, report (SPEC §6).

`evaluate` restores the raw and EMA generators of one checkpoint
(`xmcgan_tf.models.generator_loading`), conditions them on the captions of the first N images
of a split (one caption per image and one z per image, both fixed by the seed, so the result
is deterministic), runs the networks the requested metrics need (feature network, domain
evaluator, R-precision judge) on the generated images, and scores them against the real
images' outputs, which are computed once per dataset and cached (`real_statistics`). Each
number goes to `MODEL_DIR/metrics/<protocol>.jsonl` and TensorBoard (`registry`). Metrics with
a meaningful value on real images (IS, R-precision, object accuracy) are also reported for the
real images themselves (generator 'real') as the reference beside the generated value.

`watch` is the sidecar mode: it polls the run's checkpoint directory and evaluates each new
checkpoint once.

Legend: N images, S image size, T tokens, D text dimension, K judge embedding dimension.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from xmcgan_tf import files
from xmcgan_tf import progress
from xmcgan_tf import run_dir
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.data import schema
from xmcgan_tf.data import sentence_embedding
from xmcgan_tf.evaluation import feature_extractors
from xmcgan_tf.evaluation import r_precision
from xmcgan_tf.evaluation import real_statistics
from xmcgan_tf.evaluation import registry
from xmcgan_tf.models import dual_encoder_io
from xmcgan_tf.models import generator_loading

GeneratorFn = Callable[..., tf.Tensor]
"""`(z [B, z_dim], sentence [B, D], words [B, T, D], word_mask [B, T], training=False)
-> images [B, S, S, 3] float32 in [0, 1]` (e.g. `xmcgan_tf.networks.generator.Generator`)."""

WATCH_STATE_FILE = "evaluated_checkpoints.json"
DEFAULT_METRICS = ("fid", "kid", "is")


def _fingerprint_files(directory: str) -> str:
    digest = hashlib.sha256()
    for path in sorted(tf.io.gfile.glob(os.path.join(directory, "*"))):
        if not tf.io.gfile.isdir(path):
            with tf.io.gfile.GFile(path, "rb") as f:
                digest.update(os.path.basename(path).encode() + f.read())
    return digest.hexdigest()[:16]


def judge_fingerprint(judge: object) -> str:
    """Identity of an R-precision judge: its `fingerprint` attribute, else a hash of its
    variables' values."""
    if isinstance(getattr(judge, "fingerprint", None), str):
        return judge.fingerprint
    variables = getattr(judge, "variables", None)
    if not variables:
        raise ValueError(f"cannot identify the judge {type(judge).__name__} for the real-image "
                         "cache: give it a `fingerprint` string or trackable variables")
    digest = hashlib.sha256()
    for variable in sorted(variables, key=lambda v: v.path if hasattr(v, "path") else v.name):
        digest.update(np.asarray(variable).tobytes())
    return digest.hexdigest()[:16]


def load_judge(judge_dir: str) -> r_precision.Judge:
    """The pretrained dual encoder in `judge_dir` (written by `xmcgan_tf.pretrain_encoder`)."""
    judge = dual_encoder_io.load_dual_encoder(judge_dir)
    judge.fingerprint = _fingerprint_files(judge_dir)
    return judge


def _concatenate(chunks: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}


def _read_conditioning(examples: tf.data.Dataset, judge: r_precision.Judge | None) -> dict:
    """Captions, labels, ground-truth objects and (with a judge) caption embeddings, as numpy."""
    chunks, objects = [], []
    for batch in examples:
        chunk = {"caption": batch["caption"].numpy().astype(str), "label": batch["label"].numpy()}
        for key in ("states_position", "states_size"):
            if key in batch:
                chunk[key] = batch[key].numpy()
        if judge is not None:
            chunk["text_embeddings"] = np.asarray(judge.encode_texts(batch["words"],
                                                                     batch["word_mask"]))
        chunks.append(chunk)
        if schema.OBJECT_PREFIX + "shape" in batch:
            objects.append({f: batch[schema.OBJECT_PREFIX + f].numpy()
                            for f in schema.OBJECT_FIELDS})
    data = _concatenate(chunks)
    if objects:
        width = max(o["shape"].shape[1] for o in objects)
        data["objects"] = {f: np.concatenate([np.pad(o[f], [(0, 0), (0, width - o[f].shape[1])],
                                                     constant_values=-1) for o in objects])
                           for f in schema.OBJECT_FIELDS}
    return data


def _generate_and_extract(generator: GeneratorFn, examples: tf.data.Dataset,
                          networks: Mapping[str, Callable[[tf.Tensor], Mapping[str, tf.Tensor]]],
                          name: str = "generator", num_batches: int | None = None
                          ) -> dict[str, dict[str, np.ndarray]]:
    """Runs the generator over the conditioning batches and every network over its images."""
    generate = tf.function(
        lambda z, sentence, words, mask: generator(z, sentence, words, mask, training=False),
        reduce_retracing=True)
    outputs: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in networks}
    for batch in progress.bar(examples, desc=f"{name} images", total=num_batches):
        images = generate(batch["z"], batch["sentence"], batch["words"], batch["word_mask"])
        images = tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 1.0)
        for name, network in networks.items():
            outputs[name].append({k: np.asarray(v) for k, v in network(images).items()})
    return {name: _concatenate(chunks) for name, chunks in outputs.items()}


@dataclasses.dataclass(frozen=True)
class Protocol:
    """What a number means: results are compared only within one protocol (`registry`).

    Attributes:
      metrics: registered metric names (`registry.metric_names()`).
      num_samples: N, the first N images of the split (fewer if the split is smaller).
      feature_network: "domain" or "inception" for FID/KID/IS.
      split: split of the captions and real statistics.
      seed: caption choice, z and R-precision negatives.
      real_reference: also score the real images for metrics that have a real reference,
        and give FID and KID their floor: the distance between the first N images of
        `registry.FLOOR_SPLIT` and of `split` (reported as generator 'real'; skipped when
        that split is the evaluated one or holds fewer than N images).
    """

    metrics: Sequence[str] = DEFAULT_METRICS
    num_samples: int = 1000
    feature_network: str = "domain"
    split: str = "val"
    seed: int = 0
    real_reference: bool = True


@dataclasses.dataclass(frozen=True)
class Conditioning:
    """The dataset the generators are conditioned on, and the generators' inputs.

    Attributes:
      data_dir: dataset directory.
      image_size: S of the generated images (real images are resized to it).
      z_dim: noise dimension of the generators.
      sentence_mode: sentence embedding the generators were trained with.
      max_tokens: T the generators expect (checked against the dataset when given).
      embedding_dim: D the generators expect (checked against the dataset when given).
      batch_size: images per generator / network call.
      cache_dir: real-statistics cache; default `DATA_DIR/eval_cache`.
    """

    data_dir: str
    image_size: int
    z_dim: int
    sentence_mode: str = sentence_embedding.OFFICIAL
    max_tokens: int | None = None
    embedding_dim: int | None = None
    batch_size: int = 50
    cache_dir: str | None = None

    def examples(self, split: str, count: int, seed: int, **kwargs) -> tf.data.Dataset:
        """The first `count` examples of `split` (`input_pipeline.ordered_examples`)."""
        return input_pipeline.ordered_examples(
            self.data_dir, split, image_size=self.image_size, batch_size=self.batch_size,
            num_samples=count, seed=seed, sentence_mode=self.sentence_mode,
            max_tokens=self.max_tokens, embedding_dim=self.embedding_dim, **kwargs)

    def real_outputs(self, network: Callable, name: str, fingerprint: str, split: str,
                     count: int) -> dict[str, np.ndarray]:
        """`network`'s outputs on the first `count` real images of `split` (cached)."""
        return real_statistics.real_outputs(
            network, network_name=name, network_fingerprint=fingerprint,
            data_dir=self.data_dir, split=split, image_size=self.image_size,
            num_samples=count, batch_size=self.batch_size, cache_dir=self.cache_dir)


@dataclasses.dataclass(frozen=True)
class Networks:
    """Where the networks the metrics need come from.

    Attributes:
      evaluator_dir: saved domain evaluator (feature network "domain" and metric "objacc").
      inception_handle: TF-Hub handle or directory of the TF-GAN Inception module.
      feature_extractor: a ready feature extractor to use instead of building one.
      judge: R-precision judge (metric "rprec").
    """

    evaluator_dir: str | None = None
    inception_handle: str = feature_extractors.DEFAULT_INCEPTION_HANDLE
    feature_extractor: feature_extractors.FeatureExtractor | None = None
    judge: r_precision.Judge | None = None


@dataclasses.dataclass
class _Scorers:
    """The networks built for one evaluation: `by_name` maps each output group ("features",
    "objects", "judge") to its images -> outputs function; `fingerprints` identifies each for
    the real-statistics cache."""

    by_name: dict[str, Callable[[tf.Tensor], Mapping[str, tf.Tensor]]]
    fingerprints: dict[str, tuple[str, str]]
    feature_network: str
    extractor: feature_extractors.FeatureExtractor | None = None
    grid: int = 3


def _build_scorers(needs: set, networks: Networks, feature_network: str) -> _Scorers:
    """The feature network, domain evaluator and judge that `needs` calls for."""
    scorers = _Scorers(by_name={}, fingerprints={}, feature_network=feature_network)
    if needs & {registry.FEATURES, registry.REAL_FEATURES}:
        extractor = networks.feature_extractor or feature_extractors.make_feature_extractor(
            feature_network, evaluator_dir=networks.evaluator_dir,
            inception_handle=networks.inception_handle)
        scorers.extractor = extractor
        scorers.feature_network = extractor.name
        scorers.by_name["features"] = extractor
        scorers.fingerprints["features"] = (extractor.name, extractor.fingerprint)
    if registry.OBJECTS in needs:
        evaluator = (scorers.extractor
                     if isinstance(scorers.extractor, feature_extractors.DomainExtractor)
                     else feature_extractors.make_feature_extractor(
                         "domain", evaluator_dir=networks.evaluator_dir))
        scorers.by_name["objects"] = evaluator
        scorers.fingerprints["objects"] = (evaluator.name, evaluator.fingerprint)
        scorers.grid = evaluator.grid
    if registry.JUDGE in needs:
        judge = networks.judge
        if judge is None:
            raise ValueError("metric 'rprec' needs an R-precision judge (--judge_dir: a dual "
                             "encoder trained with xmcgan_tf.pretrain_encoder)")
        r_precision.check_judge(judge)
        judge_size = getattr(judge, "image_size", None)

        def judge_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
            if judge_size and images.shape[1] != judge_size:
                images = tf.image.resize(images, [judge_size, judge_size], method="bilinear",
                                         antialias=True)
            return {"embeddings": judge.encode_images(images)}

        scorers.by_name["judge"] = judge_images
        scorers.fingerprints["judge"] = ("judge", judge_fingerprint(judge))
    return scorers


def _metric_inputs(outputs: Mapping[str, Mapping[str, np.ndarray]],
                   real_side: Mapping[str, Mapping[str, np.ndarray]], conditioning: Mapping,
                   grid: int, seed: int) -> registry.MetricInputs:
    """What the metrics read for one set of scored images (`outputs` by scorer name)."""
    return registry.MetricInputs(
        features=outputs.get("features"), real_features=real_side.get("features"),
        image_embeddings=outputs["judge"]["embeddings"] if "judge" in outputs else None,
        text_embeddings=conditioning.get("text_embeddings"),
        captions=list(conditioning["caption"]), object_outputs=outputs.get("objects"),
        objects=conditioning.get("objects"), states_position=conditioning.get("states_position"),
        states_size=conditioning.get("states_size"), labels=conditioning["label"], grid=grid,
        seed=seed)


def evaluate_generators(generators: Mapping[str, GeneratorFn], conditioning: Conditioning,
                        protocol: Protocol = Protocol(), networks: Networks = Networks(), *,
                        step: int, checkpoint: str) -> list[registry.MetricResult]:
    """Scores generators with the registered metrics (nothing is written).

    Args:
      generators: name ('raw', 'ema') -> generator function (see `GeneratorFn`).
      conditioning: the dataset and the generators' inputs.
      protocol: metrics, sample count, feature network, split and seed.
      networks: the feature network, domain evaluator and judge.
      step: training step recorded with the results.
      checkpoint: checkpoint path recorded with the results.

    Returns:
      One MetricResult per metric and generator (plus 'real' references).
    """
    chosen = [registry.get_metric(name) for name in protocol.metrics]
    if not chosen:
        raise ValueError(f"no metrics requested; registered metrics: {registry.metric_names()}")
    needs = set().union(*(m.needs for m in chosen))
    split = protocol.split
    info = schema.read_dataset_info(conditioning.data_dir)
    if split not in info.splits:
        raise schema.DatasetError(f"{conditioning.data_dir} has no split {split!r}; it has "
                                  f"{sorted(info.splits)}")
    count = min(int(protocol.num_samples), int(info.splits[split]))
    if count < protocol.num_samples:
        logging.warning("split %r has only %d images; evaluating %d instead of %d", split,
                        count, count, protocol.num_samples)
    scorers = _build_scorers(needs, networks, protocol.feature_network)
    captions = _read_conditioning(
        conditioning.examples(split, count, protocol.seed, with_images=False,
                              with_objects=registry.OBJECTS in needs),
        networks.judge if registry.JUDGE in needs else None)
    real_side: dict[str, dict[str, np.ndarray]] = {}
    for name, (network_name, fingerprint) in scorers.fingerprints.items():
        same = [other for other in real_side if scorers.by_name[other] is scorers.by_name[name]]
        real_side[name] = real_side[same[0]] if same else conditioning.real_outputs(
            scorers.by_name[name], network_name, fingerprint, split, count)

    def score(generator_name: str, inputs: registry.MetricInputs,
              selected: Iterable[registry.Metric]) -> list[registry.MetricResult]:
        return [registry.calc_metric(metric.name, inputs, generator=generator_name, step=step,
                                     checkpoint=checkpoint,
                                     feature_network=scorers.feature_network, real_split=split)
                for metric in selected]

    results = []
    for name, generator in generators.items():
        outputs = _generate_and_extract(
            generator, conditioning.examples(split, count, protocol.seed, with_images=False,
                                             z_dim=conditioning.z_dim),
            scorers.by_name, name=name, num_batches=-(-count // conditioning.batch_size))
        results += score(name, _metric_inputs(outputs, real_side, captions, scorers.grid,
                                              protocol.seed), chosen)
    if protocol.real_reference:
        results += score("real", _metric_inputs(real_side, real_side, captions, scorers.grid,
                                                protocol.seed),
                         [m for m in chosen if m.real_reference])
        results += _floors(chosen, scorers, conditioning, protocol, info, count, real_side,
                           score)
    return results


def _floors(chosen: Sequence[registry.Metric], scorers: _Scorers, conditioning: Conditioning,
            protocol: Protocol, info: schema.DatasetInfo, count: int,
            real_side: Mapping[str, Mapping[str, np.ndarray]],
            score: Callable[..., list[registry.MetricResult]]) -> list[registry.MetricResult]:
    """FID/KID between the first `count` images of `registry.FLOOR_SPLIT` and of the split."""
    floors = [m for m in chosen if m.floor_reference]
    floor_split = registry.FLOOR_SPLIT
    if not floors or scorers.extractor is None or floor_split == protocol.split:
        return []
    if int(info.splits.get(floor_split, 0)) < count:
        logging.warning("no FID/KID floor: split %r holds fewer than the %d images of the "
                        "protocol", floor_split, count)
        return []
    extractor = scorers.extractor
    other = conditioning.real_outputs(extractor, extractor.name, extractor.fingerprint,
                                      floor_split, count)
    return score("real", registry.MetricInputs(features=other,
                                               real_features=real_side["features"],
                                               seed=protocol.seed), floors)


def evaluate(model_dir: str, *, data_dir: str | None = None,
             metrics: Sequence[str] = DEFAULT_METRICS, num_samples: int = 1000,
             feature_network: str = "domain", split: str = "val",
             checkpoint: str | None = None, evaluator_dir: str | None = None,
             inception_handle: str = feature_extractors.DEFAULT_INCEPTION_HANDLE,
             judge_dir: str | None = None, batch_size: int = 50, seed: int = 0,
             generators: Sequence[str] = ("raw", "ema"), cache_dir: str | None = None,
             real_reference: bool = True,
             write: bool = True) -> list[registry.MetricResult]:
    """Evaluates the raw and EMA generators of one checkpoint of a run and reports the results.

    Args:
      model_dir: run directory (run.json, checkpoints/).
      data_dir: dataset; default the run's `data_dir` from run.json.
      metrics: registered metric names ("fid", "kid", "is", "rprec", "objacc").
      num_samples: N images of the split to condition on.
      feature_network: "domain" or "inception".
      split: caption / real-statistics split.
      checkpoint: checkpoint prefix or name; None for the latest.
      evaluator_dir: saved domain evaluator.
      inception_handle: TF-Hub handle or directory of the TF-GAN Inception module.
      judge_dir: pretrained dual encoder used as the R-precision judge.
      batch_size: images per call.
      seed: evaluation seed.
      generators: which of "raw" and "ema" to evaluate.
      cache_dir: real-statistics cache; default `DATA_DIR/eval_cache`.
      real_reference: also report real-image reference values.
      write: append the results to MODEL_DIR/metrics/*.jsonl and TensorBoard.

    Returns:
      The MetricResults.
    """
    unknown = sorted(set(generators) - {"raw", "ema"})
    if unknown or not generators:
        raise ValueError(f"generators must be a non-empty subset of ('raw', 'ema'); got "
                         f"{list(generators)}")
    loaded = generator_loading.load_generators(model_dir, checkpoint)
    run_info = loaded.run_info
    data_dir = data_dir or run_info.get("data_dir")
    if not data_dir:
        raise ValueError(f"no data_dir given and {model_dir}/run.json records none")
    config = run_info["generator_config"]
    by_name = {"raw": loaded.generator, "ema": loaded.generator_ema}
    judge = load_judge(judge_dir) if judge_dir else None
    results = evaluate_generators(
        {name: by_name[name] for name in generators},
        Conditioning(data_dir=data_dir, image_size=int(config["image_size"]),
                     z_dim=int(config["z_dim"]),
                     sentence_mode=run_info.get("sentence_embedding",
                                                sentence_embedding.OFFICIAL),
                     max_tokens=int(run_info["max_tokens"]),
                     embedding_dim=int(config["embedding_dim"]), batch_size=batch_size,
                     cache_dir=cache_dir),
        Protocol(metrics=tuple(metrics), num_samples=num_samples,
                 feature_network=feature_network, split=split, seed=seed,
                 real_reference=real_reference),
        Networks(evaluator_dir=evaluator_dir, inception_handle=inception_handle, judge=judge),
        step=loaded.step, checkpoint=loaded.checkpoint_path)
    if write:
        for result in results:
            registry.report_metric(model_dir, result)
    return results


def format_table(results: Sequence[registry.MetricResult]) -> str:
    """Markdown table: one row per protocol, one column per generator (raw, ema, real)."""
    if not results:
        return "(no results)"
    columns = [g for g in registry.GENERATORS if any(r.generator == g for r in results)]
    rows: dict[str, dict[str, registry.MetricResult]] = {}
    for result in results:
        rows.setdefault(result.protocol, {})[result.generator] = result

    def cell(result: registry.MetricResult | None) -> str:
        if result is None:
            return "–"
        text = f"{result.value:.4f}"
        if result.std is not None and not np.isnan(result.std):
            text += f" ± {result.std:.4f}"
        extra = ", ".join(f"{k} {v:.4f}" for k, v in result.extra.items())
        return f"{text} ({extra})" if extra else text

    first = results[0]
    lines = [f"step {first.step}, checkpoint `{first.checkpoint}`", "",
             "| protocol | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for protocol, by_generator in rows.items():
        lines.append(f"| {protocol} | "
                     + " | ".join(cell(by_generator.get(c)) for c in columns) + " |")
    if any(r.generator == "real" and registry.get_metric(r.metric).floor_reference
           for r in results):
        lines += ["", f"real: the real {first.real_split} images; for FID and KID the floor, "
                      f"the distance between {registry.FLOOR_SPLIT} and {first.real_split} "
                      f"images under the same protocol."]
    return "\n".join(lines)


def watch(model_dir: str, *, poll_seconds: float = 60.0, until_step: int | None = None,
          max_idle_seconds: float | None = None,
          on_results: Callable[[list[registry.MetricResult]], None] | None = None,
          **evaluate_kwargs) -> list[registry.MetricResult]:
    """Sidecar mode: evaluates every new checkpoint of a run once, as training writes them.

    Evaluated checkpoints (per metric configuration) are remembered in
    `MODEL_DIR/metrics/evaluated_checkpoints.json`, so a restarted watcher continues where it
    stopped. A checkpoint deleted before it could be read is skipped with a warning.

    Args:
      model_dir: run directory.
      poll_seconds: pause between looks at the checkpoint directory.
      until_step: stop after evaluating a checkpoint of at least this step (None: never).
      max_idle_seconds: stop after this long without a new checkpoint (None: never).
      on_results: called with each checkpoint's results (e.g. to print a table).
      **evaluate_kwargs: passed to `evaluate` (metrics, num_samples, feature_network, ...).

    Returns:
      All results produced.
    """
    state_path = run_dir.metrics_path(model_dir, WATCH_STATE_FILE)
    configuration = json.dumps({k: v for k, v in sorted(evaluate_kwargs.items())
                                if k not in ("write",)}, sort_keys=True, default=str)
    done: dict[str, list[str]] = {}
    if tf.io.gfile.exists(state_path):
        with tf.io.gfile.GFile(state_path) as f:
            done = json.load(f)
    evaluated = set(done.get(configuration, []))
    produced: list[registry.MetricResult] = []
    last_new = time.time()
    while True:
        pending = [c for _, c in run_dir.checkpoints(model_dir)
                   if os.path.basename(c) not in evaluated]
        for path in pending:
            try:
                results = evaluate(model_dir, checkpoint=path, **evaluate_kwargs)
            except (run_dir.CheckpointError, tf.errors.NotFoundError) as e:
                logging.warning("skipping checkpoint %s: %s", path, e)
                results = []
            evaluated.add(os.path.basename(path))
            done[configuration] = sorted(evaluated)
            files.write_json_atomic(state_path, done)
            produced.extend(results)
            if results and on_results is not None:
                on_results(results)
            last_new = time.time()
            if until_step is not None and results and results[0].step >= until_step:
                return produced
        if max_idle_seconds is not None and time.time() - last_new >= max_idle_seconds:
            return produced
        time.sleep(poll_seconds)
