"""A tiny learnable captioned dataset written with xmcgan_tf.data.schema, for training tests.

Class c of `num_classes` has a fixed colour (its images are that colour with mild noise) and
fixed word embeddings (its captions' embeddings are those plus noise), so the text determines
the image and a discriminator can learn to match them.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from xmcgan_tf.data import schema

PALETTE = np.array([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.15, 0.2, 0.9], [0.95, 0.9, 0.1],
                    [0.8, 0.2, 0.9], [0.1, 0.9, 0.9], [0.5, 0.5, 0.5], [0.95, 0.6, 0.2]],
                   np.float32)


def write_dataset(data_dir: str, *, num_train: int = 16, num_val: int = 8, image_size: int = 64,
                  max_tokens: int = 6, embedding_dim: int = 16, num_classes: int = 4,
                  num_shards: int = 4, seed: int = 0) -> schema.DatasetInfo:
    """Writes train/val shards and dataset_info.json into `data_dir`; returns the info."""
    if num_classes > len(PALETTE):
        raise ValueError(f"at most {len(PALETTE)} classes")
    rng = np.random.default_rng(seed)
    class_words = rng.normal(size=[num_classes, max_tokens, embedding_dim]).astype(np.float32)
    os.makedirs(data_dir, exist_ok=True)
    for split, count in (("train", num_train), ("val", num_val)):
        writers = [tf.io.TFRecordWriter(os.path.join(data_dir, schema.shard_name(split, i,
                                                                                  num_shards)))
                   for i in range(num_shards)]
        for index in range(count):
            label = index % num_classes
            noise = rng.normal(scale=0.05, size=[image_size, image_size, 3])
            image = np.clip(PALETTE[label] + noise, 0.0, 1.0)
            png = tf.io.encode_png(np.round(image * 255).astype(np.uint8)).numpy()
            embeddings = (class_words[label][None]
                          + rng.normal(scale=0.1, size=[2, max_tokens, embedding_dim]))
            num_tokens = rng.integers(3, max_tokens + 1, size=2)
            example = schema.make_example(
                image=png, filename=f"{split}_{index}",
                captions=[f"a picture of class {label}", f"class {label} colour"],
                embeddings=embeddings.astype(np.float32), num_tokens=num_tokens, label=label)
            writers[index % num_shards].write(example.SerializeToString())
        for writer in writers:
            writer.close()
    info = schema.DatasetInfo(
        splits={"train": num_train, "val": num_val}, captions_per_image=2,
        max_tokens=max_tokens, embedding_dim=embedding_dim,
        text_encoder={"preprocessor": "none", "encoder": "none"},
        label_vocabulary=[f"class {c}" for c in range(num_classes)],
        image_size=[image_size, image_size], source="tests", tool_version="0",
        num_shards={"train": num_shards, "val": num_shards})
    schema.write_dataset_info(data_dir, info)
    return info
