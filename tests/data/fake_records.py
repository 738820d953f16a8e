"""Writes small TFRecord datasets with known content for tests and benchmarks.

Every value is a deterministic function of (seed, split, index), so a test can recompute what
any record holds with `fake_record` and compare it with what the pipeline returns. Captions
are unique strings, `"<split> image <index> caption <k>"`, which identify the record.

Record i of a split of n images, with K = captions_per_image and N = num_labels:
- image: uint8 noise of `image_size` ([H, W] or S for square), PNG encoded;
- S_i captions: 1 if i % 7 == 6, else max(1, K - i % 2);
- embeddings [S_i, T, D] standard normal everywhere (padded positions too), num_tokens in
  [2, T];
- label: -1 if i % 11 == 10 (or N == 0), else i % N; with `multi_labels`, labels is a sorted
  set of 1 to 3 ids (empty where label is -1) and label is its first id.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from typing import Sequence

import numpy as np
import tensorflow as tf

from xmcgan_tf.data import schema


@dataclasses.dataclass
class FakeRecord:
    """Content of one fake record (numpy, before encoding)."""

    image: np.ndarray  # [H, W, 3] uint8
    png: bytes
    filename: str
    captions: list[str]
    embeddings: np.ndarray  # [S, T, D] float32
    num_tokens: np.ndarray  # [S] int32
    label: int
    labels: list[int]


def _size(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)):
        return int(image_size), int(image_size)
    height, width = image_size
    return int(height), int(width)


def fake_record(split: str, index: int, *, seed: int, image_size: int | Sequence[int],
                max_tokens: int, embedding_dim: int, captions_per_image: int, num_labels: int,
                multi_labels: bool = False) -> FakeRecord:
    """The content of record `index` of `split` (see the module docstring)."""
    rng = np.random.default_rng([seed, zlib.crc32(split.encode()), index])
    height, width = _size(image_size)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    num_captions = 1 if index % 7 == 6 else max(1, captions_per_image - index % 2)
    captions = [f"{split} image {index} caption {k}" for k in range(num_captions)]
    embeddings = rng.standard_normal((num_captions, max_tokens, embedding_dim)).astype(np.float32)
    num_tokens = rng.integers(2, max_tokens + 1, size=num_captions).astype(np.int32)
    labels: list[int] = []
    label = schema.NO_LABEL
    if num_labels > 0 and index % 11 != 10:
        label = index % num_labels
        if multi_labels:
            extra = rng.choice(num_labels, size=int(rng.integers(0, 3)), replace=True)
            labels = sorted({label, *(int(e) for e in extra)})
            label = labels[0]
    return FakeRecord(image=image, png=tf.io.encode_png(image).numpy(),
                      filename=f"{split}_{index:05d}.png", captions=captions,
                      embeddings=embeddings, num_tokens=num_tokens, label=label, labels=labels)


def write_fake_dataset(data_dir: str, *, num_images: int, image_size: int | Sequence[int],
                       max_tokens: int, embedding_dim: int, captions_per_image: int,
                       num_labels: int, splits: Sequence[str] = ("train", "val"),
                       num_shards: int = 2, seed: int = 0,
                       multi_labels: bool = False) -> schema.DatasetInfo:
    """Writes `num_images` records per split in `num_shards` contiguous shards + dataset_info.

    Returns:
      The `schema.DatasetInfo` written to `data_dir/dataset_info.json`.
    """
    tf.io.gfile.makedirs(data_dir)
    bounds = np.linspace(0, num_images, num_shards + 1).astype(int)
    for split in splits:
        for shard in range(num_shards):
            path = os.path.join(data_dir, schema.shard_name(split, shard, num_shards))
            with tf.io.TFRecordWriter(path) as writer:
                for index in range(bounds[shard], bounds[shard + 1]):
                    record = fake_record(
                        split, index, seed=seed, image_size=image_size, max_tokens=max_tokens,
                        embedding_dim=embedding_dim, captions_per_image=captions_per_image,
                        num_labels=num_labels, multi_labels=multi_labels)
                    example = schema.make_example(
                        image=record.png, filename=record.filename, captions=record.captions,
                        embeddings=record.embeddings, num_tokens=record.num_tokens,
                        label=record.label, labels=record.labels)
                    writer.write(example.SerializeToString())
    info = schema.DatasetInfo(
        splits={split: num_images for split in splits}, captions_per_image=captions_per_image,
        max_tokens=max_tokens, embedding_dim=embedding_dim,
        text_encoder={"preprocessor": "fake", "encoder": "fake"},
        label_vocabulary=[f"class_{i}" for i in range(num_labels)],
        image_size=list(_size(image_size)), source="fake", tool_version="test",
        num_shards={split: num_shards for split in splits})
    schema.write_dataset_info(data_dir, info)
    return info


def records_by_caption(split: str, *, num_images: int, **kwargs) -> dict[str, FakeRecord]:
    """Maps every caption of a split to its record; kwargs as for `fake_record`."""
    table = {}
    for index in range(num_images):
        record = fake_record(split, index, **kwargs)
        for caption in record.captions:
            table[caption] = record
    return table
