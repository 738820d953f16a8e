"""The real side of evaluation: a split's examples in a fixed order, and cached network outputs.

`eval_examples` reads the first N images of a split deterministically (shards in order, no
shuffling or flipping) with one caption per image chosen by a seed, and everything evaluation
needs to condition a generator on it and to score the result. `real_outputs` runs a network
(a feature extractor, the domain evaluator, an R-precision judge) over those real images once
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
from xmcgan_tf.data import schema
from xmcgan_tf.data import sentence_embedding

CACHE_FORMAT_VERSION = 1


def eval_examples(data_dir: str, split: str, *, image_size: int, batch_size: int,
                  num_samples: int | None = None, seed: int = 0, z_dim: int | None = None,
                  sentence_mode: str = sentence_embedding.OFFICIAL, with_objects: bool = False,
                  with_images: bool = True, max_tokens: int | None = None,
                  embedding_dim: int | None = None) -> tf.data.Dataset:
    """The first `num_samples` examples of a split, in file order, one caption each.

    The caption of image i is chosen uniformly by a stateless draw keyed on (seed, i), and so is
    its noise vector z; the result does not depend on the batch size.

    Args:
      data_dir: dataset directory (dataset_info.json + shards).
      split: "train" or "val".
      image_size: S; images are resized bilinearly to S×S.
      batch_size: B (the last batch may be smaller).
      num_samples: how many images, from the start of the split; None for all.
      seed: caption choice and z seed.
      z_dim: if given, each example carries z [z_dim] float32 ~ N(0, I).
      sentence_mode: "official", "masked_mean" or "cls" (`xmcgan_tf.data.sentence_embedding`).
      with_objects: also read the synthetic set's objects/* and caption/states_*.
      with_images: decode the images (False leaves `image` out, for conditioning-only passes).
      max_tokens: T the caller expects; checked against dataset_info.json.
      embedding_dim: D the caller expects; checked against dataset_info.json.

    Returns:
      Dataset of dict batches: `index` [B] int64, `image` [B, S, S, 3] float32 in [0, 1] (with
      images), `caption` [B] string, `caption_index` [B] int32, `words` [B, T, D] float32,
      `word_mask` [B, T] float32, `sentence` [B, D] float32, `label` [B] int64, `z` [B, z_dim]
      float32 (with z_dim); with objects also `objects/<field>` [B, K] int64 (-1 padding), `states_position` and
      `states_size` [B] int64 of the chosen caption (0 where the record has none).
    """
    sentence_embedding.check_method(sentence_mode)
    info = schema.read_dataset_info(data_dir)
    if max_tokens is not None or embedding_dim is not None:
        schema.check_compatible(info, max_tokens=max_tokens or info.max_tokens,
                                embedding_dim=embedding_dim or info.embedding_dim,
                                data_dir=data_dir)
    files = schema.list_shards(data_dir, split)
    tokens, dim = info.max_tokens, info.embedding_dim

    def parse(index: tf.Tensor, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        record = schema.parse_example(serialized, max_tokens=tokens, embedding_dim=dim,
                                      with_objects=with_objects)
        num_captions = tf.shape(record["captions"])[0]
        key = tf.stack([tf.cast(seed, tf.int64), index])
        choice = tf.random.stateless_uniform([], seed=key, maxval=num_captions, dtype=tf.int32,
                                             alg="philox")
        num_tokens = record["num_tokens"][choice]
        words = record["embeddings"][choice]  # [T, D]
        out = {
            "index": index,
            "caption": record["captions"][choice],
            "caption_index": choice,
            "words": tf.ensure_shape(words, [tokens, dim]),
            "word_mask": sentence_embedding.word_mask(num_tokens, tokens),
            "sentence": sentence_embedding.sentence_embedding(words, num_tokens, sentence_mode),
            "label": record["label"],
        }
        if with_images:
            image = tf.io.decode_image(record["image"], channels=3, expand_animations=False)
            image = tf.image.resize(tf.cast(image, tf.float32) / 255.0,
                                    [image_size, image_size], method="bilinear")
            out["image"] = tf.ensure_shape(tf.clip_by_value(image, 0.0, 1.0),
                                           [image_size, image_size, 3])
        if z_dim is not None:
            z_key = key + tf.constant([0, 1 << 40], tf.int64)  # apart from the caption draw
            out["z"] = tf.random.stateless_normal([z_dim], seed=z_key, alg="philox")
        if with_objects:
            for field in schema.OBJECT_FIELDS:
                out[schema.OBJECT_PREFIX + field] = record[schema.OBJECT_PREFIX + field]
            for name in ("states_position", "states_size"):
                states = record[name]
                out[name] = tf.cond(tf.size(states) > choice, lambda s=states: s[choice],
                                    lambda: tf.constant(0, tf.int64))
        return out

    dataset = tf.data.TFRecordDataset(files).enumerate()
    if num_samples is not None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        dataset = dataset.take(num_samples)
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if with_objects:
        # Objects per image vary: pad them with -1 (other fields have fixed shapes).
        padding_values = {k: tf.constant(-1 if k.startswith(schema.OBJECT_PREFIX) else 0,
                                         v.dtype) if v.dtype != tf.string else tf.constant("")
                          for k, v in dataset.element_spec.items()}
        dataset = dataset.padded_batch(batch_size, padding_values=padding_values)
    else:
        dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)


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
        examples = eval_examples(data_dir, split, image_size=image_size, batch_size=batch_size,
                                 num_samples=num_samples)
        return run_network(network, examples.map(lambda batch: batch["image"]),
                           desc=f"real {split} images, {network_name}",
                           num_batches=-(-num_samples // batch_size) if num_samples else None)

    return cached(cache_dir or default_cache_dir(data_dir), key, compute)
