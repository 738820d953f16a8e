"""Metric registry: protocol names, computation, JSONL + TensorBoard reports."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from xmcgan_tf.evaluation import image_quality
from xmcgan_tf.evaluation import registry


def test_registered_metrics_and_protocol_names():
    assert {"fid", "kid", "is", "rprec", "objacc"} <= set(registry.metric_names())
    names = {m: registry.get_metric(m).protocol(feature_network="domain", split="val",
                                                num_samples=500)
             for m in ("fid", "kid", "is", "rprec", "objacc")}
    assert names == {"fid": "fid_domain_val_500", "kid": "kid_domain_val_500",
                     "is": "is_domain_val_500", "rprec": "rprec100_dualenc_val_500",
                     "objacc": "objacc_domain_val_500"}
    # Different feature networks never share a protocol (and so never a log file).
    assert registry.get_metric("fid").protocol(
        feature_network="inception", split="val", num_samples=500) == "fid_inception_val_500"
    with pytest.raises(ValueError, match="registered metrics"):
        registry.get_metric("precision")


def test_register_metric_rejects_duplicates_and_unknown_needs():
    with pytest.raises(ValueError, match="already registered"):
        registry.register_metric("fid", needs=(), protocol="x")(lambda inputs: None)
    with pytest.raises(ValueError, match="unknown needs"):
        registry.register_metric("new_metric", needs=("pixels",), protocol="x")


def _inputs():
    rng = np.random.default_rng(0)
    return registry.MetricInputs(
        features={"features": rng.normal(size=(60, 4)), "logits": rng.normal(size=(60, 5))},
        real_features={"features": rng.normal(size=(60, 4)) + 1.0})


def test_calc_metric_uses_image_quality():
    inputs = _inputs()
    result = registry.calc_metric("fid", inputs, generator="ema", step=7, checkpoint="c/ckpt-7",
                                  feature_network="domain", real_split="val")
    assert result.value == pytest.approx(image_quality.frechet_distance(
        inputs.real_features["features"], inputs.features["features"]))
    assert result.protocol == "fid_domain_val_60" and result.num_samples == 60
    assert result.generator == "ema" and result.step == 7 and result.std is None
    kid = registry.calc_metric("kid", inputs, generator="raw", step=7, checkpoint="c",
                               feature_network="domain", real_split="val")
    assert (kid.value, kid.std) == pytest.approx(image_quality.kernel_distance(
        inputs.real_features["features"], inputs.features["features"]), nan_ok=True)
    with pytest.raises(ValueError, match=r"needs \['judge'\]"):
        registry.calc_metric("rprec", inputs, generator="raw", step=0, checkpoint="c",
                             feature_network="domain", real_split="val")


def test_report_metric_appends_jsonl_and_tensorboard(tmp_path):
    inputs = _inputs()
    model_dir = str(tmp_path)
    for step in (10, 20):
        for generator in ("raw", "ema"):
            result = registry.calc_metric("kid", inputs, generator=generator, step=step,
                                          checkpoint=f"ckpt-{step}", feature_network="domain",
                                          real_split="val")
            registry.report_metric(model_dir, result)
    records = registry.read_reports(model_dir, "kid_domain_val_60")
    assert [(r["step"], r["generator"]) for r in records] == [
        (10, "raw"), (10, "ema"), (20, "raw"), (20, "ema")]
    first = records[0]
    assert first["metric"] == "kid" and first["num_samples"] == 60
    assert first["feature_network"] == "domain" and first["real_split"] == "val"
    assert first["checkpoint"] == "ckpt-10" and first["std"] is None  # NaN (one block) -> null
    with open(os.path.join(model_dir, "metrics", "kid_domain_val_60.jsonl")) as f:
        assert all(json.loads(line) for line in f)  # strict JSON, one record per line
    events = glob.glob(os.path.join(model_dir, "tensorboard", "eval", "events.*"))
    assert events
    tags = set()
    for event in tf.compat.v1.train.summary_iterator(events[0]):
        for value in event.summary.value:
            tags.add((value.tag, event.step))
    assert ("kid_domain_val_60/ema", 20) in tags and ("kid_domain_val_60/raw", 10) in tags
