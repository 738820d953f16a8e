"""What a training run reports: TensorBoard, metrics/train.jsonl, sample grids, progress lines.

- Scalars (every loss term, contrastive accuracy, scores, learning rates, steps/s) go to
  TensorBoard under MODEL_DIR/tensorboard/ and, one JSON object per logged step, to
  MODEL_DIR/metrics/train.jsonl.
- Image grids of fixed captions from G_ema, each caption under its image, go to TensorBoard
  and to MODEL_DIR/samples/step_XXXXXXX.png; the captions, in grid order, also to
  samples/captions.txt.
- The operative gin configuration goes to TensorBoard as text.
- Progress lines (step, losses, steps/s, ETA) go to the absl log.

Only the chief writes; other workers get a no-op writer. The events are the standard
`tf.summary.scalar` / `image` / `text` ones.
"""

from __future__ import annotations

import json
import os
import time
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from xmcgan_tf import files
from xmcgan_tf import grids
from xmcgan_tf import run_dir


# Losses shown in the progress line, in this order, when present.
_PROGRESS_KEYS = ("loss/d_total", "loss/g_total", "contrastive/sentence_acc")


def read_train_metrics(model_dir: str) -> list[dict]:
    """The records of MODEL_DIR/metrics/train.jsonl (one dict per logged step)."""
    path = run_dir.metrics_path(model_dir, run_dir.TRAIN_METRICS_FILE)
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class TrainingSummaries:
    """Writes a run's scalars, sample grids and configuration.

    Args:
      model_dir: the run directory.
      enabled: False on non-chief workers (nothing is written).
      start_step: the step the run (re)starts from: records of later steps in
        metrics/train.jsonl, written after that checkpoint by an interrupted run, are removed,
        so that every step appears once.
    """

    def __init__(self, model_dir: str, enabled: bool = True, start_step: int = 0):
        self.model_dir = model_dir
        self.enabled = enabled
        if enabled:
            for subdir in (run_dir.METRICS_SUBDIR, run_dir.SAMPLES_SUBDIR):
                tf.io.gfile.makedirs(os.path.join(model_dir, subdir))
            self._drop_records_after(start_step)
            self.writer = tf.summary.create_file_writer(
                os.path.join(model_dir, run_dir.TENSORBOARD_SUBDIR))
        else:
            self.writer = tf.summary.create_noop_writer()

    def _drop_records_after(self, step: int) -> None:
        path = run_dir.metrics_path(self.model_dir, run_dir.TRAIN_METRICS_FILE)
        records = read_train_metrics(self.model_dir)
        kept = [r for r in records if r["step"] <= step]
        if len(kept) == len(records):
            return
        files.write_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Writes scalars to TensorBoard and appends {step, **values} to metrics/train.jsonl."""
        if not self.enabled:
            return
        with self.writer.as_default():
            for name, value in values.items():
                tf.summary.scalar(name, value, step=step)
        self.writer.flush()
        path = run_dir.metrics_path(self.model_dir, run_dir.TRAIN_METRICS_FILE)
        record = {"step": int(step), **{k: float(v) for k, v in values.items()}}
        with tf.io.gfile.GFile(path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def samples(self, step: int, images: np.ndarray, captions: Sequence[str]) -> str | None:
        """Writes the grid of `images`, each caption under its image, as PNG and to TensorBoard.

        Args:
          step: training step.
          images: [N, S, S, 3] float in [0, 1].
          captions: the N captions, written once to samples/captions.txt.

        Returns:
          The PNG path (None when disabled).
        """
        if not self.enabled:
            return None
        grid = grids.image_grid(images, captions)
        path = run_dir.sample_path(self.model_dir, step)
        tf.io.write_file(path, tf.io.encode_png(grid))
        captions_path = os.path.join(self.model_dir, run_dir.SAMPLES_SUBDIR, "captions.txt")
        if not tf.io.gfile.exists(captions_path):
            with tf.io.gfile.GFile(captions_path, "w") as f:
                f.write("".join(f"{i}: {c}\n" for i, c in enumerate(captions)))
        with self.writer.as_default():
            tf.summary.image("samples/generator_ema", grid[None], step=step)
            tf.summary.text("samples/captions",
                            "\n\n".join(f"{i}: {c}" for i, c in enumerate(captions)), step=step)
        self.writer.flush()
        return path

    def text(self, name: str, text: str, step: int = 0) -> None:
        """Writes a text summary (e.g. the operative gin config), as Markdown code."""
        if not self.enabled:
            return
        with self.writer.as_default():
            tf.summary.text(name, "    " + text.replace("\n", "\n    "), step=step)
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
