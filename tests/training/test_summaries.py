"""Tests of xmcgan_tf.training.summaries: grids, PNG/JSONL/TensorBoard output, progress lines."""

import os

import numpy as np
import pytest
import tensorflow as tf

from xmcgan_tf import run_dir
from xmcgan_tf import grids
from xmcgan_tf.training import summaries


def test_writes_scalars_samples_and_text(tmp_path):
    reports = summaries.TrainingSummaries(str(tmp_path))
    reports.scalars(3, {"loss/d_total": 1.5, "perf/steps_per_sec": 2.0})
    reports.scalars(4, {"loss/d_total": 1.25})
    path = reports.samples(4, np.full([2, 4, 4, 3], 0.5, np.float32), ["a red", "a blue"])
    reports.text("config/operative_gin", "x = 1", step=4)
    reports.close()

    assert summaries.read_train_metrics(str(tmp_path)) == [
        {"step": 3, "loss/d_total": 1.5, "perf/steps_per_sec": 2.0},
        {"step": 4, "loss/d_total": 1.25}]
    png = tf.io.decode_png(tf.io.read_file(path)).numpy()
    assert path == run_dir.sample_path(str(tmp_path), 4)
    np.testing.assert_array_equal(png, grids.image_grid(
        np.full([2, 4, 4, 3], 0.5, np.float32), ["a red", "a blue"]))
    with open(os.path.join(tmp_path, "samples", "captions.txt")) as f:
        assert f.read() == "0: a red\n1: a blue\n"

    events = {}
    directory = os.path.join(tmp_path, "tensorboard")
    for name in os.listdir(directory):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
            for value in event.summary.value:
                events[(value.tag, event.step)] = value
    scalar = events[("loss/d_total", 4)]
    assert scalar.metadata.plugin_data.plugin_name == "scalars"
    assert tf.make_ndarray(scalar.tensor) == pytest.approx(1.25)
    image = events[("samples/generator_ema", 4)]
    assert image.metadata.plugin_data.plugin_name == "images"
    width, height, encoded = tf.make_ndarray(image.tensor)
    assert (int(width), int(height)) == (png.shape[1], png.shape[0])
    np.testing.assert_array_equal(tf.io.decode_png(encoded).numpy(), png)
    assert events[("config/operative_gin", 4)].metadata.plugin_data.plugin_name == "text"


def test_a_restart_drops_the_records_written_after_its_checkpoint(tmp_path):
    reports = summaries.TrainingSummaries(str(tmp_path))
    for step in range(1, 9):  # an interrupted run logged steps 1..8, its checkpoint is step 4
        reports.scalars(step, {"loss/d_total": float(step)})
    reports.close()
    resumed = summaries.TrainingSummaries(str(tmp_path), start_step=4)
    resumed.scalars(5, {"loss/d_total": 50.0})
    resumed.close()
    assert [(r["step"], r["loss/d_total"]) for r in summaries.read_train_metrics(str(tmp_path))
            ] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 50.0)]


def test_disabled_writer_writes_nothing(tmp_path):
    reports = summaries.TrainingSummaries(str(tmp_path / "run"), enabled=False)
    reports.scalars(1, {"loss/d_total": 1.0})
    assert reports.samples(1, np.zeros([1, 4, 4, 3]), ["x"]) is None
    assert not os.path.exists(tmp_path / "run")


def test_progress_line():
    progress = summaries.Progress(total_steps=100, start_step=0)
    line = progress.line(40, {"loss/d_total": 2.5, "loss/g_total": 4.0,
                              "contrastive/sentence_acc": 0.5, "scores/real": 1.0}, 2.0)
    assert line.startswith("step 40/100 | loss/d_total 2.5 loss/g_total 4 ")
    assert "contrastive/sentence_acc 0.5" in line and "scores/real" not in line
    assert line.endswith("| 2 steps/s | ETA 00:00:30")
    assert progress.tick(10) > 0
