"""TFRecord schema of a captioned-image dataset (SPEC §1.1) and its `dataset_info.json`.

One `tf.train.Example` per image. Legend: S captions of the image, T tokens per caption
(including [CLS] and [SEP], padded), D text-encoder dimension.

| feature              | type          | content                                          |
|----------------------|---------------|--------------------------------------------------|
| `image`              | bytes         | encoded PNG or JPEG, original size, RGB          |
| `image/filename`     | bytes         | source file name or synthetic id                 |
| `caption/text`       | bytes [S]     | the captions                                     |
| `caption/embedding`  | float [S*T*D] | BERT `sequence_output`, row-major [S, T, D]      |
| `caption/num_tokens` | int64 [S]     | real tokens per caption incl. [CLS] and [SEP]    |
| `image/label`        | int64         | single class id, -1 if none                      |
| `image/labels`       | int64 list    | multi-label class ids, may be empty              |
| `objects/<field>`    | int64 list    | synthetic set only: per-object ground truth      |
| `caption/states_*`   | int64 [S]     | synthetic set only: 1 if caption s states the    |
|                      |               | absolute position / the size of its objects      |
| `caption/counterfactual_*` | as `caption/*` | optional (`text`, `embedding`, `num_tokens`): |
|                      |               | per caption, a false caption one attribute away  |
|                      |               | (`dataset_info.extra.counterfactual_captions`)   |

This module imports nothing from the rest of `xmcgan_tf`; `data_tools` writes with it and
`xmcgan_tf.data.input_pipeline` reads with it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from xmcgan_tf import files

IMAGE = "image"
FILENAME = "image/filename"
CAPTION_TEXT = "caption/text"
CAPTION_EMBEDDING = "caption/embedding"
CAPTION_NUM_TOKENS = "caption/num_tokens"
LABEL = "image/label"
LABELS = "image/labels"
OBJECT_PREFIX = "objects/"
CAPTION_STATES_POSITION = "caption/states_position"
CAPTION_STATES_SIZE = "caption/states_size"
COUNTERFACTUAL_TEXT = "caption/counterfactual_text"
COUNTERFACTUAL_EMBEDDING = "caption/counterfactual_embedding"
COUNTERFACTUAL_NUM_TOKENS = "caption/counterfactual_num_tokens"
# `dataset_info.extra` key: true when every record has counterfactual captions.
HAS_COUNTERFACTUALS = "counterfactual_captions"

# Per-object ground-truth fields of the synthetic set (one int64 per object).
OBJECT_FIELDS = ("shape", "color", "size", "row", "col")

DATASET_INFO_FILE = "dataset_info.json"
NO_LABEL = -1

_SHARD_PATTERN = "{split}.tfrecord-{index:05d}-of-{count:05d}"
_SHARD_REGEX = re.compile(r"^(?P<split>.+)\.tfrecord-(?P<index>\d{5})-of-(?P<count>\d{5})$")


class DatasetError(ValueError):
    """A dataset directory or record that cannot be used; the message names the problem."""


@dataclasses.dataclass
class DatasetInfo:
    """Contents of `dataset_info.json`.

    Attributes:
      splits: number of images per split name, e.g. {"train": 2000, "val": 500}.
      captions_per_image: S, the most captions any image holds.
      max_tokens: T, tokens per caption after padding.
      embedding_dim: D, text-encoder output dimension.
      text_encoder: {"preprocessor": handle, "encoder": handle} used to embed the captions.
      label_vocabulary: class names indexed by `image/label` (and `image/labels`).
      image_size: [height, width] of the stored images, or None for original sizes.
      source: what the dataset was made from ("synthetic", "coco", "cub", "localized_narratives").
      tool_version: version of xmcgan_tf that wrote it.
      num_shards: number of shards per split.
      extra: free-form source-specific facts (e.g. object vocabularies of the synthetic set).
    """

    splits: dict[str, int]
    captions_per_image: int
    max_tokens: int
    embedding_dim: int
    text_encoder: dict[str, str]
    label_vocabulary: list[str]
    image_size: list[int] | None
    source: str
    tool_version: str
    num_shards: dict[str, int] = dataclasses.field(default_factory=dict)
    extra: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping) -> "DatasetInfo":
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in d and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise DatasetError(f"{DATASET_INFO_FILE} lacks the fields {missing}")
        return cls(**{k: v for k, v in d.items() if k in names})


def write_dataset_info(data_dir: str, info: DatasetInfo) -> str:
    """Writes `data_dir/dataset_info.json` atomically (temp file, then rename)."""
    path = os.path.join(data_dir, DATASET_INFO_FILE)
    files.write_atomic(path, info.to_json())
    return path


def read_dataset_info(data_dir: str) -> DatasetInfo:
    """Reads `data_dir/dataset_info.json`; raises DatasetError naming the problem."""
    path = os.path.join(data_dir, DATASET_INFO_FILE)
    if not tf.io.gfile.exists(path):
        raise DatasetError(
            f"{path} not found: {data_dir!r} is not a dataset directory written by data_tools "
            "(expected dataset_info.json beside the *.tfrecord-* shards)")
    try:
        with tf.io.gfile.GFile(path) as f:
            return DatasetInfo.from_dict(json.load(f))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path} is not valid JSON: {e}") from e


def check_compatible(info: DatasetInfo, *, max_tokens: int, embedding_dim: int,
                     data_dir: str = "") -> None:
    """Raises DatasetError when the dataset's T or D differ from the model configuration."""
    problems = []
    if info.max_tokens != max_tokens:
        problems.append(f"tokens per caption T: dataset {info.max_tokens}, model {max_tokens}")
    if info.embedding_dim != embedding_dim:
        problems.append(f"embedding dim D: dataset {info.embedding_dim}, model {embedding_dim}")
    if problems:
        raise DatasetError(
            f"dataset {data_dir or ''} does not match the model configuration ("
            + "; ".join(problems)
            + "). Bind the model to the dataset's values in gin or re-encode the captions.")


def shard_name(split: str, index: int, count: int) -> str:
    """File name of shard `index` of `count` of a split: `train.tfrecord-00003-of-00016`."""
    return _SHARD_PATTERN.format(split=split, index=index, count=count)


def parse_shard_name(name: str) -> tuple[str, int, int] | None:
    """Inverse of `shard_name` on a base name; None if it is not a shard name."""
    m = _SHARD_REGEX.match(os.path.basename(name))
    if not m:
        return None
    return m.group("split"), int(m.group("index")), int(m.group("count"))


def list_shards(data_dir: str, split: str) -> list[str]:
    """Sorted complete shard paths of a split; raises DatasetError if there are none."""
    pattern = os.path.join(data_dir, f"{split}.tfrecord-*-of-*")
    paths = sorted(p for p in tf.io.gfile.glob(pattern) if parse_shard_name(p))
    if not paths:
        raise DatasetError(f"no shards for split {split!r} in {data_dir} (looked for {pattern})")
    return paths


def _bytes_list(values: Sequence[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _int64_list(values: Sequence[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _float_list(values: np.ndarray) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=values.reshape(-1).tolist()))


def make_example(*, image: bytes, filename: str, captions: Sequence[str],
                 embeddings: np.ndarray, num_tokens: Sequence[int], label: int = NO_LABEL,
                 labels: Sequence[int] = (),
                 objects: Mapping[str, Sequence[int]] | None = None,
                 states_position: Sequence[int] | None = None,
                 states_size: Sequence[int] | None = None,
                 counterfactual_captions: Sequence[str] | None = None,
                 counterfactual_embeddings: np.ndarray | None = None,
                 counterfactual_num_tokens: Sequence[int] | None = None) -> tf.train.Example:
    """Builds one record.

    Args:
      image: encoded PNG/JPEG bytes, RGB.
      filename: source file name or synthetic id.
      captions: S caption strings, S >= 1, none empty.
      embeddings: [S, T, D] float32 BERT `sequence_output`.
      num_tokens: [S] real tokens per caption including [CLS] and [SEP].
      label: single class id or NO_LABEL.
      labels: multi-label class ids.
      objects: per-object ground truth (synthetic set), field name in OBJECT_FIELDS -> one
        int per object.
      states_position: [S] 1 where caption s states its objects' absolute grid position.
      states_size: [S] 1 where caption s states its objects' sizes.
      counterfactual_captions: optional [S] false captions, one per caption.
      counterfactual_embeddings: [S, T, D] float32, with `counterfactual_captions`.
      counterfactual_num_tokens: [S], with `counterfactual_captions`.

    Returns:
      The `tf.train.Example`.
    """
    embeddings = np.asarray(embeddings, np.float32)
    if not captions:
        raise DatasetError(f"{filename}: an image needs at least one caption")
    if embeddings.ndim != 3 or embeddings.shape[0] != len(captions):
        raise DatasetError(f"{filename}: embeddings shape {embeddings.shape} is not "
                           f"[{len(captions)}, T, D]")
    if len(num_tokens) != len(captions):
        raise DatasetError(f"{filename}: {len(num_tokens)} token counts for {len(captions)} "
                           "captions")
    feature = {
        IMAGE: _bytes_list([image]),
        FILENAME: _bytes_list([filename.encode("utf-8")]),
        CAPTION_TEXT: _bytes_list([c.encode("utf-8") for c in captions]),
        CAPTION_EMBEDDING: _float_list(embeddings),
        CAPTION_NUM_TOKENS: _int64_list(num_tokens),
        LABEL: _int64_list([label]),
        LABELS: _int64_list(labels),
    }
    for name, values in (objects or {}).items():
        feature[OBJECT_PREFIX + name] = _int64_list(values)
    if states_position is not None:
        feature[CAPTION_STATES_POSITION] = _int64_list(states_position)
    if states_size is not None:
        feature[CAPTION_STATES_SIZE] = _int64_list(states_size)
    if counterfactual_captions is not None:
        counterfactual_embeddings = np.asarray(counterfactual_embeddings, np.float32)
        if (len(counterfactual_captions) != len(captions)
                or counterfactual_embeddings.shape != embeddings.shape
                or len(counterfactual_num_tokens) != len(captions)):
            raise DatasetError(f"{filename}: {len(counterfactual_captions)} counterfactual "
                               f"captions with embeddings {counterfactual_embeddings.shape} for "
                               f"{len(captions)} captions with embeddings {embeddings.shape}")
        feature[COUNTERFACTUAL_TEXT] = _bytes_list(
            [c.encode("utf-8") for c in counterfactual_captions])
        feature[COUNTERFACTUAL_EMBEDDING] = _float_list(counterfactual_embeddings)
        feature[COUNTERFACTUAL_NUM_TOKENS] = _int64_list(counterfactual_num_tokens)
    return tf.train.Example(features=tf.train.Features(feature=feature))


def feature_spec(with_objects: bool = False, with_counterfactuals: bool = False) -> dict:
    """`tf.io.parse_single_example` spec; variable-length fields parse as dense 1-D tensors."""
    spec = {
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
        CAPTION_TEXT: tf.io.RaggedFeature(tf.string),
        CAPTION_EMBEDDING: tf.io.RaggedFeature(tf.float32),
        CAPTION_NUM_TOKENS: tf.io.RaggedFeature(tf.int64),
        LABEL: tf.io.FixedLenFeature([], tf.int64, default_value=NO_LABEL),
        LABELS: tf.io.RaggedFeature(tf.int64),
    }
    if with_objects:
        for name in OBJECT_FIELDS:
            spec[OBJECT_PREFIX + name] = tf.io.RaggedFeature(tf.int64)
        spec[CAPTION_STATES_POSITION] = tf.io.RaggedFeature(tf.int64)
        spec[CAPTION_STATES_SIZE] = tf.io.RaggedFeature(tf.int64)
    if with_counterfactuals:
        spec[COUNTERFACTUAL_TEXT] = tf.io.RaggedFeature(tf.string)
        spec[COUNTERFACTUAL_EMBEDDING] = tf.io.RaggedFeature(tf.float32)
        spec[COUNTERFACTUAL_NUM_TOKENS] = tf.io.RaggedFeature(tf.int64)
    return spec


def parse_example(serialized: tf.Tensor, *, max_tokens: int, embedding_dim: int,
                  with_objects: bool = False,
                  with_counterfactuals: bool = False) -> dict[str, tf.Tensor]:
    """Parses one serialized record.

    Returns:
      dict with `image` (encoded bytes, scalar string), `filename` (scalar string),
      `captions` [S] string, `embeddings` [S, T, D] float32, `num_tokens` [S] int32,
      `label` scalar int64, `labels` [L] int64, and, if asked, `objects/<field>` [K] int64
      and `states_position`, `states_size` [S] int64 (empty when absent), and, if asked,
      `counterfactual_captions` [S] string, `counterfactual_embeddings` [S, T, D] float32 and
      `counterfactual_num_tokens` [S] int32.
    """
    f = tf.io.parse_single_example(serialized, feature_spec(with_objects, with_counterfactuals))
    embeddings = tf.reshape(f[CAPTION_EMBEDDING], [-1, max_tokens, embedding_dim])
    out = {
        "image": f[IMAGE],
        "filename": f[FILENAME],
        "captions": f[CAPTION_TEXT],
        "embeddings": embeddings,
        "num_tokens": tf.cast(f[CAPTION_NUM_TOKENS], tf.int32),
        "label": f[LABEL],
        "labels": f[LABELS],
    }
    if with_objects:
        for name in OBJECT_FIELDS:
            out[OBJECT_PREFIX + name] = f[OBJECT_PREFIX + name]
        out["states_position"] = f[CAPTION_STATES_POSITION]
        out["states_size"] = f[CAPTION_STATES_SIZE]
    if with_counterfactuals:
        out["counterfactual_captions"] = f[COUNTERFACTUAL_TEXT]
        out["counterfactual_embeddings"] = tf.reshape(f[COUNTERFACTUAL_EMBEDDING],
                                                      [-1, max_tokens, embedding_dim])
        out["counterfactual_num_tokens"] = tf.cast(f[COUNTERFACTUAL_NUM_TOKENS], tf.int32)
    return out
