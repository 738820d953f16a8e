"""The real side of evaluation: a split's examples in a fixed order, and cached network outputs.

The real images are read by `xmcgan_tf.data.input_pipeline.ordered_examples` (the first N
images of a split in file order, one caption per image chosen by a seed). `real_outputs` runs
a network (a feature extractor, the domain evaluator, an R-precision judge) over them once
and caches the outputs on disk, keyed on the dataset, split, resolution, sample count and the
network's identity; later calls with the same key read the cache.

Legend: B batch, S image size, T tokens, D text dimension, K objects per image (-1 padded).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Callable, Mapping

import numpy as np
import tensorflow as tf
from absl import logging

from xmcgan_tf import files
from xmcgan_tf import progress
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.data import schema

CACHE_FORMAT_VERSION = 1


def dataset_fingerprint(data_dir: str) -> str:
    """Hash of dataset_info.json and the shard names and sizes (identifies a dataset's content)."""
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(os.path.join(data_dir, schema.DATASET_INFO_FILE), "rb") as f:
        digest.update(f.read())
    for path in sorted(tf.io.gfile.glob(os.path.join(data_dir, "*.tfrecord-*-of-*"))):
        digest.update(f"{os.path.basename(path)}:{tf.io.gfile.stat(path).length};".encode())
    return digest.hexdigest()[:16]


def default_cache_dir(data_dir: str) -> str:
    """`DATA_DIR/eval_cache`: real-image outputs live beside the dataset they describe."""
    return os.path.join(data_dir, "eval_cache")


def cached(cache_dir: str, key: Mapping[str, object],
           compute: Callable[[], Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays stored under `key` in `cache_dir`, computed by `compute()` on the first call.

    Args:
      cache_dir: directory of the cache files (created if needed).
      key: JSON-serialisable description of what is computed; equal keys share one file.
      compute: returns the named arrays when there is no cache entry yet.

    Returns:
      name -> np.ndarray.
    """
    key_json = json.dumps({"format": CACHE_FORMAT_VERSION, **key}, sort_keys=True)
    digest = hashlib.sha256(key_json.encode()).hexdigest()[:20]
    readable = "_".join(str(key[k]) for k in ("split", "image_size", "network") if k in key)
    path = os.path.join(cache_dir, f"{readable}_{digest}.npz".lstrip("_"))
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path, "rb") as f:
            with np.load(io.BytesIO(f.read())) as data:
                logging.info("real statistics: reusing %s", path)
                return {name: data[name] for name in data.files}
    arrays = {name: np.asarray(value) for name, value in compute().items()}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    files.write_atomic(path, buffer.getvalue())
    with tf.io.gfile.GFile(path[:-len(".npz")] + ".json", "w") as f:
        f.write(json.dumps(json.loads(key_json), indent=2, sort_keys=True))
    logging.info("real statistics: computed and cached %s", path)
    return arrays


def run_network(network: Callable[[tf.Tensor], Mapping[str, tf.Tensor]],
                images: tf.data.Dataset, desc: str = "real images",
                num_batches: int | None = None) -> dict[str, np.ndarray]:
    """Runs `network` over a dataset of image batches and concatenates its named outputs.

    Args:
      network: images [B, S, S, 3] float32 in [0, 1] -> name -> [B, ...] tensor.
      images: dataset of [B, S, S, 3] float32 batches.
      desc: label of the progress bar.
      num_batches: batches in `images`, for the progress bar's ETA (None: unknown).

    Returns:
      name -> [N, ...] np.ndarray.
    """
    outputs: dict[str, list[np.ndarray]] = {}
    for batch in progress.bar(images, desc=desc, total=num_batches):
        for name, value in network(batch).items():
            outputs.setdefault(name, []).append(np.asarray(value))
    if not outputs:
        raise ValueError("no images to run the network on (empty split?)")
    return {name: np.concatenate(values) for name, values in outputs.items()}


def real_outputs(network: Callable[[tf.Tensor], Mapping[str, tf.Tensor]], *,
                 network_name: str, network_fingerprint: str, data_dir: str, split: str,
                 image_size: int, num_samples: int | None, batch_size: int = 64,
                 cache_dir: str | None = None) -> dict[str, np.ndarray]:
    """A network's outputs on the first `num_samples` real images of a split, cached on disk.

    Args:
      network: images [B, S, S, 3] float32 in [0, 1] -> name -> [B, ...] tensor (e.g. a
        feature extractor returning "features" and "logits").
      network_name: e.g. "domain", "inception", "judge"; part of the cache key and file name.
      network_fingerprint: identifies the network's weights; part of the cache key.
      data_dir: dataset directory.
      split: split whose images are the real statistics.
      image_size: S the real images are resized to (the generator's resolution).
      num_samples: first N images; None for the whole split.
      batch_size: images per network call (does not change the result).
      cache_dir: cache directory; default `default_cache_dir(data_dir)`.

    Returns:
      name -> [N, ...] np.ndarray.
    """
    key = {"dataset": dataset_fingerprint(data_dir), "split": split,
           "image_size": int(image_size), "num_samples": num_samples,
           "network": network_name, "network_fingerprint": network_fingerprint}

    def compute() -> dict[str, np.ndarray]:
        examples = input_pipeline.ordered_examples(
            data_dir, split, image_size=image_size, batch_size=batch_size,
            num_samples=num_samples)
        return run_network(network, examples.map(lambda batch: batch["image"]),
                           desc=f"real {split} images, {network_name}",
                           num_batches=-(-num_samples // batch_size) if num_samples else None)

    return cached(cache_dir or default_cache_dir(data_dir), key, compute)
