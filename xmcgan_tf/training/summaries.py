"""What a training run reports: TensorBoard, metrics/train.jsonl, sample grids, progress lines.

- Scalars (every loss term, contrastive accuracy, scores, learning rates, steps/s) go to
  TensorBoard under MODEL_DIR/tensorboard/ and, one JSON object per logged step, to
  MODEL_DIR/metrics/train.jsonl.
- Image grids of fixed captions from G_ema go to TensorBoard and to
  MODEL_DIR/samples/step_XXXXXXX.png; the captions, in grid order, to samples/captions.txt.
- The operative gin configuration goes to TensorBoard as text.
- Progress lines (step, losses, steps/s, ETA) go to the absl log.

Only the chief writes; other workers get a no-op writer.

The events are written with core TensorFlow's `tf.summary.write` and the TensorBoard plugin
metadata of the scalars, images and text dashboards, so they need no TensorBoard package at
training time (`tf.summary.scalar`/`image`/`text` would) and open in any TensorBoard.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.framework import summary_pb2

TENSORBOARD_SUBDIR = "tensorboard"
METRICS_SUBDIR = "metrics"
SAMPLES_SUBDIR = "samples"
TRAIN_METRICS_FILE = "train.jsonl"

# Losses shown in the progress line, in this order, when present.
_PROGRESS_KEYS = ("loss/d_total", "loss/g_total", "contrastive/sentence_acc")


def _metadata(plugin_name: str, data_class: int) -> summary_pb2.SummaryMetadata:
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin_name),
        data_class=data_class)


def write_scalar(name: str, value: float, step: int) -> None:
    """A TensorBoard scalar (scalars dashboard) to the default writer."""
    tf.summary.write(name, tf.constant(value, tf.float32), step=step,
                     metadata=_metadata("scalars", summary_pb2.DATA_CLASS_SCALAR))


def write_png(name: str, image: np.ndarray, step: int) -> None:
    """A TensorBoard image (images dashboard) from [H, W, 3] uint8 to the default writer."""
    height, width = image.shape[:2]
    tensor = tf.stack([tf.constant(str(width)), tf.constant(str(height)),
                       tf.io.encode_png(image)])  # [width, height, png]
    tf.summary.write(name, tensor, step=step,
                     metadata=_metadata("images", summary_pb2.DATA_CLASS_BLOB_SEQUENCE))


def write_text(name: str, text: str, step: int) -> None:
    """A TensorBoard text summary (Markdown) to the default writer."""
    tf.summary.write(name, tf.constant(text), step=step,
                     metadata=_metadata("text", summary_pb2.DATA_CLASS_TENSOR))


def image_grid(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """Tiles images into one picture, row-major.

    Args:
      images: [N, H, W, 3] float in [0, 1] (values outside are clipped).
      columns: images per row; default ceil(sqrt(N)).

    Returns:
      [rows·H, columns·W, 3] uint8; empty cells are black.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"image_grid expects [N, H, W, 3] images, got shape {images.shape}")
    count, height, width, _ = images.shape
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    grid = np.zeros([rows * height, columns * width, 3], np.uint8)
    pixels = np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)
    for index in range(count):
        row, column = divmod(index, columns)
        grid[row * height:(row + 1) * height, column * width:(column + 1) * width] = pixels[index]
    return grid


def sample_path(model_dir: str, step: int) -> str:
    """MODEL_DIR/samples/step_XXXXXXX.png."""
    return os.path.join(model_dir, SAMPLES_SUBDIR, f"step_{step:07d}.png")


def read_train_metrics(model_dir: str) -> list[dict]:
    """The records of MODEL_DIR/metrics/train.jsonl (one dict per logged step)."""
    path = os.path.join(model_dir, METRICS_SUBDIR, TRAIN_METRICS_FILE)
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class TrainingSummaries:
    """Writes a run's scalars, sample grids and configuration.

    Args:
      model_dir: the run directory.
      enabled: False on non-chief workers (nothing is written).
    """

    def __init__(self, model_dir: str, enabled: bool = True):
        self.model_dir = model_dir
        self.enabled = enabled
        if enabled:
            for subdir in (METRICS_SUBDIR, SAMPLES_SUBDIR):
                tf.io.gfile.makedirs(os.path.join(model_dir, subdir))
            self.writer = tf.summary.create_file_writer(
                os.path.join(model_dir, TENSORBOARD_SUBDIR))
        else:
            self.writer = tf.summary.create_noop_writer()

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Writes scalars to TensorBoard and appends {step, **values} to metrics/train.jsonl."""
        if not self.enabled:
            return
        with self.writer.as_default():
            for name, value in values.items():
                write_scalar(name, value, step)
        self.writer.flush()
        path = os.path.join(self.model_dir, METRICS_SUBDIR, TRAIN_METRICS_FILE)
        record = {"step": int(step), **{k: float(v) for k, v in values.items()}}
        with tf.io.gfile.GFile(path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def samples(self, step: int, images: np.ndarray, captions: Sequence[str]) -> str | None:
        """Writes the grid of `images` (one per caption) as PNG and to TensorBoard.

        Args:
          step: training step.
          images: [N, S, S, 3] float in [0, 1].
          captions: the N captions, written once to samples/captions.txt.

        Returns:
          The PNG path (None when disabled).
        """
        if not self.enabled:
            return None
        grid = image_grid(images)
        path = sample_path(self.model_dir, step)
        tf.io.write_file(path, tf.io.encode_png(grid))
        captions_path = os.path.join(self.model_dir, SAMPLES_SUBDIR, "captions.txt")
        if not tf.io.gfile.exists(captions_path):
            with tf.io.gfile.GFile(captions_path, "w") as f:
                f.write("".join(f"{i}: {c}\n" for i, c in enumerate(captions)))
        with self.writer.as_default():
            write_png("samples/generator_ema", grid, step)
            write_text("samples/captions",
                       "\n\n".join(f"{i}: {c}" for i, c in enumerate(captions)), step)
        self.writer.flush()
        return path

    def text(self, name: str, text: str, step: int = 0) -> None:
        """Writes a text summary (e.g. the operative gin config), as Markdown code."""
        if not self.enabled:
            return
        with self.writer.as_default():
            write_text(name, "    " + text.replace("\n", "\n    "), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class Progress:
    """Steps/s over the last interval and the ETA, for the log line.

    Args:
      total_steps: the step the run stops at.
      start_step: the step the run (re)started from.
    """

    def __init__(self, total_steps: int, start_step: int):
        self.total_steps = total_steps
        self._last_step = start_step
        self._last_time = time.perf_counter()
        self._start_time = self._last_time

    def elapsed(self) -> dict[str, float]:
        """Wall and CPU minutes of this process so far (CPU summed over its threads).

        The time-to-quality benchmark reads them from metrics/train.jsonl.
        """
        return {"perf/wall_minutes": (time.perf_counter() - self._start_time) / 60.0,
                "perf/process_cpu_minutes": time.process_time() / 60.0}

    def tick(self, step: int) -> float:
        """Steps per second since the previous tick (or the start)."""
        now = time.perf_counter()
        rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
        self._last_step, self._last_time = step, now
        return rate

    def line(self, step: int, values: Mapping[str, float], steps_per_sec: float) -> str:
        """`step 120/1000 | loss/d_total 2.31 ... | 3.4 steps/s | ETA 0:04:19`."""
        shown = [k for k in _PROGRESS_KEYS if k in values]
        shown += sorted(k for k in values if k.startswith("loss/") and k not in shown)
        losses = " ".join(f"{k} {values[k]:.4g}" for k in shown)
        remaining = (self.total_steps - step) / steps_per_sec if steps_per_sec > 0 else 0.0
        eta = time.strftime("%H:%M:%S", time.gmtime(remaining)) if remaining < 86400 else (
            f"{remaining / 86400:.1f} days")
        return (f"step {step}/{self.total_steps} | {losses} | {steps_per_sec:.3g} steps/s | "
                f"ETA {eta}")

    def log(self, step: int, values: Mapping[str, float], steps_per_sec: float) -> None:
        logging.info("%s", self.line(step, values, steps_per_sec))
