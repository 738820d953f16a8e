"""End-to-end evaluation: stand-in generators and judge, a real checkpoint, watch mode."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.evaluation import conftest
from xmcgan_tf.evaluation import domain_evaluator
from xmcgan_tf.evaluation import eval_lib
from xmcgan_tf.evaluation import image_quality
from xmcgan_tf.evaluation import object_accuracy
from xmcgan_tf.evaluation import registry

NUM = 110  # > 100 candidates for R-precision


class StandInGenerator:
    """Deterministic images from (z, sentence): a fixed random projection through a sigmoid."""

    def __init__(self, seed: int, image_size: int = 64):
        rng = np.random.default_rng(seed)
        self.size = image_size
        self.kernel = tf.constant(rng.normal(size=(8 + conftest.EMBEDDING_DIM, 12 * 12 * 3)),
                                  tf.float32)

    def __call__(self, z, sentence, words, word_mask, training=None):
        x = tf.sigmoid(tf.concat([z, sentence], axis=1) @ self.kernel)
        x = tf.reshape(x, [-1, 12, 12, 3])
        return tf.image.resize(x, [self.size, self.size], method="nearest")


class StandInJudge:
    """Embeds images by their mean colour grid and captions by their mean word vector."""

    fingerprint = "stand-in-judge"

    def __init__(self):
        rng = np.random.default_rng(5)
        self.image_kernel = tf.constant(rng.normal(size=(48, 16)), tf.float32)
        self.text_kernel = tf.constant(rng.normal(size=(conftest.EMBEDDING_DIM, 16)), tf.float32)

    def encode_images(self, images):
        pooled = tf.image.resize(images, [4, 4], method="area")
        return tf.reshape(pooled, [-1, 48]) @ self.image_kernel

    def encode_texts(self, words, word_mask):
        mean = tf.reduce_sum(words * word_mask[..., None], 1) / tf.reduce_sum(word_mask, 1,
                                                                                keepdims=True)
        return mean @ self.text_kernel


def _run(scenes_dir, evaluator_dir, cache_dir, seed=0, metrics=("fid", "kid", "is", "objacc",
                                                                 "rprec"), num=NUM):
    return eval_lib.evaluate_generators(
        {"raw": StandInGenerator(1), "ema": StandInGenerator(2)},
        eval_lib.Conditioning(data_dir=scenes_dir, image_size=64, z_dim=8, batch_size=32,
                              cache_dir=cache_dir),
        eval_lib.Protocol(metrics=metrics, num_samples=num, feature_network="domain",
                          split="val", seed=seed),
        eval_lib.Networks(evaluator_dir=evaluator_dir, judge=StandInJudge()),
        step=3, checkpoint="ckpt-3")


def test_all_metrics_deterministic_and_cached(scenes_dir, trained_evaluator, tmp_path):
    evaluator_dir, _ = trained_evaluator
    cache = str(tmp_path / "cache")
    results = _run(scenes_dir, evaluator_dir, cache)
    by_key = {(r.metric, r.generator): r for r in results}
    assert set(by_key) == {(m, g) for m in ("fid", "kid", "is", "objacc", "rprec")
                           for g in ("raw", "ema")} | {("is", "real"), ("objacc", "real"),
                                                       ("rprec", "real")}
    # No FID/KID floor: the 64 train images are fewer than the protocol's NUM.
    for r in results:
        assert r.num_samples == NUM and r.real_split == "val" and r.step == 3
        assert np.isfinite(r.value), r
    assert by_key[("fid", "raw")].protocol == f"fid_domain_val_{NUM}"
    assert by_key[("rprec", "raw")].feature_network == "dualenc"
    assert by_key[("fid", "raw")].value != by_key[("fid", "ema")].value
    cached = sorted(os.listdir(cache))
    assert len([f for f in cached if f.endswith(".npz")]) == 2  # domain evaluator + judge
    mtimes = {f: os.path.getmtime(os.path.join(cache, f)) for f in cached}

    again = _run(scenes_dir, evaluator_dir, cache)
    assert [r.to_json() for r in again] == [r.to_json() for r in results]  # NaN -> None
    assert {f: os.path.getmtime(os.path.join(cache, f)) for f in os.listdir(cache)} == mtimes

    other_seed = _run(scenes_dir, evaluator_dir, cache, seed=1, metrics=("fid",))
    assert other_seed[0].value != by_key[("fid", "raw")].value

    table = eval_lib.format_table(results)
    assert "| protocol | raw | ema | real |" in table and f"| fid_domain_val_{NUM} |" in table


def test_fid_and_kid_floors_compare_two_disjoint_real_sets(scenes_dir, trained_evaluator,
                                                           tmp_path):
    """The 'real' FID and KID are the distances between the train and the val images."""
    evaluator_dir, _ = trained_evaluator
    num = 60  # of the 64 train and 120 val images
    results = _run(scenes_dir, evaluator_dir, str(tmp_path / "cache"), metrics=("fid", "kid"),
                   num=num)
    by_key = {(r.metric, r.generator): r for r in results}
    extractor = eval_lib.feature_extractors.make_feature_extractor(
        "domain", evaluator_dir=evaluator_dir)
    features = {split: eval_lib.real_statistics.run_network(
        extractor, eval_lib.input_pipeline.ordered_examples(
            scenes_dir, split, image_size=64, batch_size=32, num_samples=num).map(
            lambda batch: batch["image"]))["features"] for split in ("train", "val")}
    assert len(features["train"]) == len(features["val"]) == num
    assert by_key[("fid", "real")].protocol == by_key[("fid", "raw")].protocol
    expected = image_quality.frechet_distance(features["val"], features["train"])
    assert by_key[("fid", "real")].value == pytest.approx(expected, rel=1e-4)
    assert by_key[("fid", "real")].value < by_key[("fid", "raw")].value
    kid, _ = image_quality.kernel_distance(features["val"], features["train"])
    assert by_key[("kid", "real")].value == pytest.approx(kid, rel=1e-4, abs=1e-6)


def test_real_object_accuracy_matches_the_evaluator(scenes_dir, trained_evaluator, tmp_path):
    evaluator_dir, _ = trained_evaluator
    results = eval_lib.evaluate_generators(
        {}, eval_lib.Conditioning(data_dir=scenes_dir, image_size=64, z_dim=8,
                                  cache_dir=str(tmp_path)),
        eval_lib.Protocol(metrics=("objacc",), num_samples=NUM, split="val"),
        eval_lib.Networks(evaluator_dir=evaluator_dir), step=0, checkpoint="-")
    (real,) = results
    assert real.generator == "real"
    # Independent computation from the evaluator's predictions on the same real images.
    images, objects = domain_evaluator.load_split(scenes_dir, "val", NUM)
    examples = list(eval_lib.input_pipeline.ordered_examples(
        scenes_dir, "val", image_size=64, batch_size=NUM, num_samples=NUM, with_objects=True))[0]
    predictions = domain_evaluator.predict_objects(
        domain_evaluator.predict(domain_evaluator.load(evaluator_dir), images))
    expected = object_accuracy.object_accuracy(
        predictions, objects, examples["states_position"].numpy(),
        examples["states_size"].numpy(), objects["label"], 3)
    assert real.value == pytest.approx(expected.image_averaged)
    assert real.extra["class_averaged"] == pytest.approx(expected.class_averaged)


def test_rprec_without_judge_and_split_errors(scenes_dir, trained_evaluator):
    conditioning = eval_lib.Conditioning(data_dir=scenes_dir, image_size=64, z_dim=8)
    with pytest.raises(ValueError, match="judge"):
        eval_lib.evaluate_generators({}, conditioning,
                                     eval_lib.Protocol(metrics=("rprec",), num_samples=NUM),
                                     step=0, checkpoint="-")
    with pytest.raises(ValueError, match="no split 'test'"):
        eval_lib.evaluate_generators({}, conditioning,
                                     eval_lib.Protocol(metrics=("is",), split="test"),
                                     eval_lib.Networks(evaluator_dir=trained_evaluator[0]),
                                     step=0, checkpoint="-")


def test_evaluate_checkpoints_in_watch_mode(scenes_dir, trained_evaluator, tmp_path):
    model_dir = str(tmp_path / "run")
    os.makedirs(model_dir)
    conftest.write_run(model_dir, scenes_dir, steps=[10])
    kwargs = dict(metrics=["fid", "objacc"], num_samples=16, evaluator_dir=trained_evaluator[0],
                  cache_dir=str(tmp_path / "cache"), batch_size=16, generators=["ema"])
    seen = []
    produced = eval_lib.watch(model_dir, poll_seconds=0.0, max_idle_seconds=0.0,
                              on_results=seen.append, **kwargs)
    assert {(r.metric, r.generator) for r in produced} == {
        ("fid", "ema"), ("fid", "real"), ("objacc", "ema"), ("objacc", "real")}
    assert all(r.step == 10 and r.checkpoint.endswith("ckpt-10") for r in produced)
    assert seen == [produced]

    # A new checkpoint: only it is evaluated; a restarted watcher has nothing left to do.
    conftest.write_run(model_dir, scenes_dir, steps=[20])
    produced = eval_lib.watch(model_dir, poll_seconds=0.0, max_idle_seconds=0.0, **kwargs)
    assert {r.step for r in produced} == {20}
    assert eval_lib.watch(model_dir, poll_seconds=0.0, max_idle_seconds=0.0, **kwargs) == []
    records = registry.read_reports(model_dir, "fid_domain_val_16")
    assert [(r["step"], r["generator"]) for r in records] == [
        (10, "ema"), (10, "real"), (20, "ema"), (20, "real")]
    objacc = registry.read_reports(model_dir, "objacc_domain_val_16")
    assert [(r["step"], r["generator"]) for r in objacc] == [
        (10, "ema"), (10, "real"), (20, "ema"), (20, "real")]
    with pytest.raises(ValueError, match="subset of"):
        eval_lib.evaluate(model_dir, generators=["best"])


def test_pretrained_dual_encoder_is_a_judge(scenes_dir, tmp_path):
    from xmcgan_tf.models import dual_encoder_io
    from xmcgan_tf.networks import dual_encoder

    encoder = dual_encoder.DualEncoder(image_size=64, embedding_dim=conftest.EMBEDDING_DIM,
                                       joint_dim=8, image_width=4, text_hidden_dim=8)
    encoder.build_for_inputs(max_tokens=conftest.MAX_TOKENS)
    judge_dir = str(tmp_path / "judge")
    dual_encoder_io.save_dual_encoder(encoder, judge_dir, max_tokens=conftest.MAX_TOKENS)
    judge = eval_lib.load_judge(judge_dir)
    assert eval_lib.judge_fingerprint(judge) == judge.fingerprint
    (real,) = eval_lib.evaluate_generators(
        {}, eval_lib.Conditioning(data_dir=scenes_dir, image_size=32, z_dim=8,
                                  cache_dir=str(tmp_path / "cache")),
        eval_lib.Protocol(metrics=("rprec",), num_samples=NUM), eval_lib.Networks(judge=judge),
        step=0, checkpoint="-")
    assert real.generator == "real" and real.protocol == f"rprec100_dualenc_val_{NUM}"
    assert 0.0 <= real.value <= 1.0 and real.std is not None
