"""tf.data input pipeline for training and evaluation (SPEC §1.2).

Legend: B batch (per replica when an `input_context` is given), S image size, T tokens per
caption (including [CLS] and [SEP], padded), D text-encoder dimension, Z = z_dim.

    per epoch: shards (this input pipeline's share; a stateless permutation per epoch when
       training) -> interleave (parallel, each shard checked for corruption) -> shuffle the
       serialized records (training; a stateless permutation of each window of
       `shuffle_buffer` records) -> [skip to a start position]
    -> parse -> decode PNG/JPEG -> resize to [S, S] (bilinear) -> random horizontal flip
       (training) -> [0, 1] -> caption choice -> words, word_mask, sentence -> z ~ N(0, I)
    -> [label_pairs: pair by label] -> batch (drop remainder) -> prefetch

Element dicts (see `make_dataset`): `image [B, S, S, 3] float32 in [0, 1]`, `words [B, T, D]
float32`, `word_mask [B, T] float32`, `sentence [B, D] float32`, `z [B, Z] float32`,
`label [B] int64`, `caption [B] string`, plus the `_2` fields of the pairing variants
(`xmcgan_tf.data.pairing`) and, with `counterfactuals`, `counterfactual_sentence [B, D] float32`.

Randomness. Every random choice of an example (flip, caption, second caption, z) is a stateless
op keyed by (seed, input pipeline id, epoch, place of the record in the epoch), and the
shuffles are seeded per epoch, so the stream is a function of `seed` alone and epoch e is the
same wherever it is built. Resuming needs no buffered data: each training example carries its
`position` (epoch, offset), and `make_dataset(start=...)` rebuilds the stream from the
position after the last example a run consumed (training checkpoints store that position,
two integers, not the iterator). The `label_pairs` variant, whose pairing holds examples back
across batches, is resumed from a `tf.train.Checkpoint` of its iterator instead.

Evaluation order. With `training=False`, and in `ordered_examples` (the reader of evaluation,
of the training sample grids, of the R-precision judge's validation and of the domain
evaluator), shards are read one after the other in file order, nothing is shuffled or flipped,
and the caption of the i-th image and its z are stateless draws keyed on (seed, i)
(`_ordered_draws`): the same images get the same captions and noise wherever they are read,
and two passes are equal.

Corrupt shards. A shard is read with errors ignored while the bytes of its records (plus 16
framing bytes each) are counted; when the shard ends, the count must equal the file size, or
the pipeline fails with an `InvalidArgumentError` whose message names the shard (a truncated
file or a record with a bad checksum stops the count short). Iterating inside
`dataset_errors()` turns that error into one `schema.DatasetError`.
"""

from __future__ import annotations

import contextlib
import re
from typing import Iterator

import numpy as np
import tensorflow as tf

from xmcgan_tf.data import pairing
from xmcgan_tf.data import schema
from xmcgan_tf.data import sentence_embedding as sentence_embedding_lib

SINGLE = "single"
TWO_CAPTIONS = "two_captions"
LABEL_PAIRS = "label_pairs"
VARIANTS = (SINGLE, TWO_CAPTIONS, LABEL_PAIRS)

# Field of training batches: each example's (epoch, offset) in the stream (`make_dataset`).
POSITION = "position"
# Every example's `image_key`: a hash of its encoded image, equal for the captions of one image.
IMAGE_KEY = "image_key"
_IMAGE_KEY_BUCKETS = 1 << 62
# With `counterfactuals`: the sentence embedding [D] of the chosen caption's counterfactual.
COUNTERFACTUAL_SENTENCE = "counterfactual_sentence"

CORRUPT_SHARD = "corrupt or unreadable TFRecord shard"
# Bytes around each record in a TFRecord file: length (8), length CRC (4), data CRC (4).
_RECORD_FRAMING_BYTES = 16
_MAX_CYCLE_LENGTH = 16
_CHECK_CHUNK = 16  # records per corruption-check step
_CORRUPT_SHARD_PATTERN = re.compile(re.escape(CORRUPT_SHARD) + r" .*? bytes")


def has_position(variant: str) -> bool:
    """Whether training batches of `variant` carry POSITION, from which a run resumes (not
    `label_pairs`: its pairing holds examples back across batches)."""
    return variant != LABEL_PAIRS


def dataset_info(data_dir: str) -> schema.DatasetInfo:
    """Reads `data_dir/dataset_info.json`; raises `schema.DatasetError` naming the problem."""
    return schema.read_dataset_info(data_dir)


@contextlib.contextmanager
def dataset_errors(data_dir: str | None = None, split: str | None = None) -> Iterator[None]:
    """Re-raises a data error of a pipeline iterated inside as one `schema.DatasetError`: a
    corrupt shard (named by the pipeline's check), or an image TensorFlow cannot decode (the
    shards of `data_dir`/`split` are then scanned to name the shard and the record).

    Usage: `with input_pipeline.dataset_errors(data_dir, "train"): model.fit(dataset, ...)`.
    """
    try:
        yield
    except tf.errors.OpError as e:
        match = _CORRUPT_SHARD_PATTERN.search(e.message)
        if match is not None:
            raise schema.DatasetError(match.group(0)) from e
        if "DecodeImage" not in e.message and "decode_image" not in e.message:
            raise
        cause = re.sub(r"\{\{.*?\}\}\s*", "", e.message.strip().splitlines()[0])
        bad = undecodable_records(data_dir, split) if data_dir and split else []
        where = (", ".join(f"{path} record {index}" for path, index in bad) if bad
                 else f"a record of {data_dir or 'the dataset'}")
        raise schema.DatasetError(f"an image TensorFlow cannot decode ({cause}) in {where}; "
                                  "convert the dataset again (the converters now refuse such "
                                  "images) or remove the record") from e


def undecodable_records(data_dir: str, split: str, limit: int = 3) -> list[tuple[str, int]]:
    """(shard path, record index) of up to `limit` records whose image
    `tf.io.decode_image` refuses."""
    bad = []
    for path in schema.list_shards(data_dir, split):
        for index, serialized in enumerate(tf.data.TFRecordDataset(path)):
            image = tf.io.parse_single_example(
                serialized, {schema.IMAGE: tf.io.FixedLenFeature([], tf.string)})[schema.IMAGE]
            try:
                tf.io.decode_image(image, channels=3, expand_animations=False)
            except tf.errors.OpError:
                bad.append((path, index))
                if len(bad) >= limit:
                    return bad
    return bad


def _check_positive(**values: int | None) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_arguments(*, split: str, batch_size: int, image_size: int, z_dim: int, seed: int,
                     repeat: int | None, shuffle_buffer: int, variant: str,
                     sentence_embedding: str, label_rule: str) -> None:
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty string, got {split!r}")
    _check_positive(batch_size=batch_size, image_size=image_size, z_dim=z_dim,
                    shuffle_buffer=shuffle_buffer)
    if repeat is not None:
        _check_positive(repeat=repeat)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; allowed: {list(VARIANTS)}")
    sentence_embedding_lib.check_method(sentence_embedding)
    pairing.check_label_rule(label_rule)


def _check_complete(shards: list[str], data_dir: str, split: str) -> None:
    """Raises DatasetError unless the shards are exactly 0..K-1 of one K."""
    names = [schema.parse_shard_name(path) for path in shards]
    counts = sorted({count for _, _, count in names})
    indices = {index for _, index, _ in names}
    if len(counts) != 1 or indices != set(range(counts[0])):
        expected = counts[-1]
        missing = [schema.shard_name(split, i, expected) for i in range(expected)
                   if i not in indices]
        raise schema.DatasetError(
            f"split {split!r} in {data_dir} is incomplete or mixes shard sets: found "
            f"{len(shards)} shards with totals {counts}, missing {missing[:5]}"
            + (" ..." if len(missing) > 5 else ""))


def _read_shard(path: tf.Tensor, size: tf.Tensor) -> tf.data.Dataset:
    """Records of one shard [scalar string each]; fails naming the shard if it is corrupt.

    Records are read with errors ignored (a reader error ends the shard) in chunks of
    `_CHECK_CHUNK`; a scan adds up their bytes plus framing, and an empty chunk appended at the
    end checks the sum against the file size. Working on chunks keeps the check to one
    function call per chunk instead of several per record.

    Args:
      path: scalar string, the shard's path.
      size: scalar int, the shard's size in bytes.
    """
    size = tf.cast(size, tf.int64)
    chunks = tf.data.TFRecordDataset(path).ignore_errors().batch(_CHECK_CHUNK)
    chunks = chunks.concatenate(tf.data.Dataset.from_tensors(tf.zeros([0], tf.string)))

    def count_bytes(total: tf.Tensor, chunk: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        lengths = tf.cast(tf.strings.length(chunk), tf.int64) + _RECORD_FRAMING_BYTES  # [n]
        total += tf.reduce_sum(lengths)
        is_end = tf.equal(tf.size(chunk), 0)  # batch() never emits an empty chunk itself
        intact = tf.logical_or(tf.logical_not(is_end), tf.equal(total, size))
        message = tf.strings.join([CORRUPT_SHARD, " ", path, ": read ", tf.strings.as_string(total),
                                   " of ", tf.strings.as_string(size), " bytes"])
        with tf.control_dependencies([tf.debugging.Assert(intact, [message])]):
            return total, tf.identity(chunk)

    return chunks.scan(tf.constant(0, tf.int64), count_bytes).unbatch()


def _decode_image(data: tf.Tensor, image_size: int) -> tf.Tensor:
    """PNG/JPEG bytes -> [S, S, 3] float32 in [0, 255], resized bilinearly."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return tf.image.resize(image, [image_size, image_size], method="bilinear")


def _unit_range(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """[S, S, 3] in [0, 255] -> float32 in [0, 1] with a static shape."""
    return tf.ensure_shape(tf.clip_by_value(image / 255.0, 0.0, 1.0),
                           [image_size, image_size, 3])


def _ordered_draws(seed: int, index: tf.Tensor, num_captions: tf.Tensor,
                   z_dim: int | None) -> tuple[tf.Tensor, tf.Tensor | None]:
    """The caption index (uniform over the record's captions) and z [z_dim] ~ N(0, I) of the
    index-th image of an ordered pass, both stateless draws keyed on (seed, index)."""
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])
    choice = tf.random.stateless_uniform([], seed=key, maxval=num_captions, dtype=tf.int32,
                                         alg="philox")
    z = None
    if z_dim is not None:
        z_key = key + tf.constant([0, 1 << 40], tf.int64)  # apart from the caption draw
        z = tf.random.stateless_normal([z_dim], seed=z_key, alg="philox")
    return choice, z


def _caption_fields(example: dict, index: tf.Tensor, max_tokens: int, method: str,
                    suffix: str = "") -> dict[str, tf.Tensor]:
    """words [T, D], word_mask [T], sentence [D] float32 and caption (string) of one caption."""
    words = example["embeddings"][index]  # [T, D]
    num_tokens = example["num_tokens"][index]
    return {
        "words" + suffix: words,
        "word_mask" + suffix: sentence_embedding_lib.word_mask(num_tokens, max_tokens),
        "sentence" + suffix: sentence_embedding_lib.sentence_embedding(words, num_tokens, method),
        "caption" + suffix: example["captions"][index],
    }


def image_key(encoded_image: tf.Tensor) -> tf.Tensor:
    """[] int64 in [0, 2⁶²): a hash of an example's encoded image bytes, the same for every
    caption of one image (records carry no other identifier that every converter fills)."""
    return tf.strings.to_hash_bucket_fast(encoded_image, _IMAGE_KEY_BUCKETS)


def caption_bank(data_dir: str, split: str, *, size: int, seed: int, max_tokens: int,
                 embedding_dim: int,
                 sentence_mode: str = sentence_embedding_lib.OFFICIAL
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Sentence embeddings of one caption of each of the first `size` images of a split (the
    caption `ordered_examples` draws for `seed`): the extra negatives of L_sent.

    Args:
      data_dir: dataset directory.
      split: e.g. "train".
      size: N, images to take (fewer when the split is smaller).
      seed: caption choice seed.
      max_tokens: T the caller expects.
      embedding_dim: D the caller expects.
      sentence_mode: "official", "masked_mean" or "cls".

    Returns:
      (sentences [N, D] float32, image keys [N] int64, see `image_key`).

    Raises:
      ValueError: size < 1.
      schema.DatasetError: T or D differ from the dataset's.
    """
    if size < 1:
        raise ValueError(f"caption bank size must be >= 1, got {size}")
    sentences, keys = [], []
    for batch in ordered_examples(data_dir, split, image_size=1, batch_size=256,
                                  num_samples=size, seed=seed, sentence_mode=sentence_mode,
                                  with_images=False, max_tokens=max_tokens,
                                  embedding_dim=embedding_dim):
        sentences.append(batch["sentence"].numpy())
        keys.append(batch[IMAGE_KEY].numpy())
    return np.concatenate(sentences).astype(np.float32), np.concatenate(keys)


def _example_fn(*, training: bool, random_flip: bool, max_tokens: int, embedding_dim: int,
                image_size: int, variant: str, method: str, z_dim: int, keep_labels: bool,
                counterfactuals: bool, key: np.ndarray, seed: int, stream_offset: int):
    """The per-record map function (index [] int64, serialized [] string) -> dict."""
    base_key = tf.constant(key, tf.int64)  # [2]

    def process(index: tf.Tensor, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        example = schema.parse_example(serialized, max_tokens=max_tokens,
                                       embedding_dim=embedding_dim,
                                       with_counterfactuals=counterfactuals)
        flip_key, caption_key, second_key, z_key = tf.unstack(
            tf.random.experimental.stateless_split(
                tf.random.experimental.stateless_fold_in(base_key, index), num=4))

        image = _decode_image(example["image"], image_size)
        if training and random_flip:
            image = tf.image.stateless_random_flip_left_right(image, flip_key)
        image = _unit_range(image, image_size)

        num_captions = tf.shape(example["captions"])[0]
        if training:
            first = tf.random.stateless_uniform([], caption_key, minval=0, maxval=num_captions,
                                                dtype=tf.int32)
            z = tf.random.stateless_normal([z_dim], z_key)
        else:
            first, z = _ordered_draws(seed, index + stream_offset, num_captions, z_dim)
        out = {"image": image,
               **_caption_fields(example, first, max_tokens, method),
               "z": z,
               "label": example["label"],
               IMAGE_KEY: image_key(example["image"])}
        if variant == TWO_CAPTIONS:
            second = pairing.other_caption_index(first, num_captions,
                                                 second_key if training else None)
            out.update(_caption_fields(example, second, max_tokens, method,
                                       pairing.PARTNER_SUFFIX))
        if keep_labels:
            out["labels"] = example["labels"]
        if counterfactuals:
            words = example["counterfactual_embeddings"][first]  # [T, D]
            out[COUNTERFACTUAL_SENTENCE] = sentence_embedding_lib.sentence_embedding(
                words, example["counterfactual_num_tokens"][first], method)
        return out

    return process


def _training_records(shard_paths: tf.Tensor, shard_sizes: tf.Tensor, *, passes: int | None,
                      start: tuple[int, int] | None, file_seed: int, example_seed: int,
                      shuffle_buffer: int) -> tf.data.Dataset:
    """The training stream of records, epoch by epoch, from a position.

    Epoch e reads the shards in a stateless permutation keyed on (file_seed, e), interleaved,
    and permutes each window of `shuffle_buffer` consecutive records by a stateless draw keyed
    on (example_seed, e, window), so epoch e is the same sequence whenever it is built (and the
    iterator has no random state: a `tf.train.Checkpoint` of it still works). Its records are
    numbered twice: `index` (e·2³² + the record's place in the epoch's read order, the key of
    its random draws) and `position` (e, its place in the epoch's shuffled order). Starting at
    (e, k) builds epoch e and skips its first k records before anything is decoded: a resumed
    run continues the stream of an uninterrupted one from a checkpointed position, reading at
    most one epoch of records again.

    Returns:
      Dataset of (position [2] int64, index [] int64, serialized record [] string).
    """
    start_epoch, start_offset = start if start is not None else (0, 0)
    if start_epoch < 0 or start_offset < 0:
        raise ValueError(f"start must be a non-negative (epoch, offset), got {start}")
    num_shards = int(shard_paths.shape[0])

    def epoch_records(epoch: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_shards), seed=tf.stack([tf.constant(file_seed, tf.int64), epoch]))
        files = tf.data.Dataset.from_tensor_slices(
            (tf.gather(shard_paths, order), tf.gather(shard_sizes, order)))
        records = files.interleave(_read_shard, cycle_length=min(num_shards, _MAX_CYCLE_LENGTH),
                                   block_length=1, num_parallel_calls=tf.data.AUTOTUNE,
                                   deterministic=True)
        # A stateless shuffle (so the iterator stays serialisable): each window of
        # `shuffle_buffer` consecutive records is permuted by a draw keyed on (epoch, window).
        windows = records.enumerate().batch(shuffle_buffer).enumerate()

        def permute(window, items):
            index, serialized = items
            order = tf.random.experimental.stateless_shuffle(
                tf.range(tf.shape(index)[0]),
                seed=tf.stack([tf.constant(example_seed, tf.int64), epoch * (1 << 32) + window]))
            return tf.gather(index, order), tf.gather(serialized, order)

        records = windows.map(permute).unbatch()
        records = records.enumerate().skip(
            tf.where(epoch == start_epoch, tf.constant(start_offset, tf.int64), 0))
        return records.map(lambda offset, item: (tf.stack([epoch, offset]),
                                                 epoch * (1 << 32) + item[0], item[1]))

    stop = start_epoch + passes if passes is not None else np.iinfo(np.int64).max
    return tf.data.Dataset.range(start_epoch, stop).flat_map(epoch_records)


def make_dataset(data_dir: str, split: str, *, batch_size: int, training: bool, max_tokens: int,
                 embedding_dim: int, image_size: int, variant: str = SINGLE,
                 sentence_embedding: str = sentence_embedding_lib.OFFICIAL, z_dim: int = 128,
                 seed: int = 0, repeat: int | None = None, shuffle_buffer: int = 256,
                 label_rule: str = pairing.LARGEST_AREA, random_flip: bool = True,
                 counterfactuals: bool = False,
                 input_context: tf.distribute.InputContext | None = None,
                 start: tuple[int, int] | None = None) -> tf.data.Dataset:
    """Batched examples of one split.

    Args:
      data_dir: dataset directory (shards + `dataset_info.json`).
      split: split name, e.g. "train" or "val".
      batch_size: global batch size; with `input_context` each batch holds
        `input_context.get_per_replica_batch_size(batch_size)` examples.
      training: True: shuffled shards and examples, random flips (with `random_flip`), a
        uniformly drawn caption, endless by default. False: the ordered pass of evaluation
        (shards in file order, no flip, caption and z drawn by (seed, position); see the
        module docstring), one pass by default.
      max_tokens: T the model expects; must equal the dataset's.
      embedding_dim: D the model expects; must equal the dataset's.
      image_size: S, images are resized to [S, S].
      variant: "single", "two_captions" (adds `words_2, word_mask_2, sentence_2, caption_2`:
        another caption of the same image, distinct when it has >= 2, same image and z) or
        "label_pairs" (adds `image_2, words_2, word_mask_2, sentence_2, caption_2, label_2, z_2`
        of another example with the same label; see `xmcgan_tf.data.pairing`).
      sentence_embedding: "official", "masked_mean" or "cls" (see
        `xmcgan_tf.data.sentence_embedding`).
      z_dim: Z, size of the noise vector z ~ N(0, I).
      seed: non-negative integer; the whole stream is a function of it.
      repeat: passes over the split; None: endless when training, one pass otherwise.
      shuffle_buffer: records in each shuffled window (training).
      label_rule: "largest_area" (pairs by `image/label`; label -1 dropped) or "any_shared"
        (pairs by any id of `image/labels`; `label` and `label_2` are the shared id), for
        "label_pairs".
      random_flip: flip training images left-right at random. Turn it off when captions name
        left and right (the synthetic scenes: a flip would contradict the caption).
      counterfactuals: add `counterfactual_sentence [B, D] float32`, the sentence embedding of
        the chosen caption's counterfactual (a false caption differing from it in one
        attribute; the dataset must have them, `schema.HAS_COUNTERFACTUALS`).
      input_context: from `tf.distribute.Strategy.distribute_datasets_from_function`; this
        input pipeline reads shards `input_pipeline_id::num_input_pipelines`. Without it the
        dataset keeps the AUTO auto-shard policy.
      start: training only: (epoch, offset) of the first example, the `position` after the
        last example a run consumed (see `_training_records`); None: the stream's start.
        With `repeat`, the passes count from that epoch.

    Returns:
      A `tf.data.Dataset` of dicts: `image [B, S, S, 3] float32 in [0, 1]`, `words [B, T, D]
      float32`, `word_mask [B, T] float32` (1.0 on real tokens incl. [CLS]/[SEP]),
      `sentence [B, D] float32`, `z [B, Z] float32`, `label [B] int64`, `caption [B] string`,
      plus the variant's fields; when training (except `label_pairs`, whose pairing reorders
      examples) `position [B, 2] int64`, each example's (epoch, offset) in the stream.
      Incomplete last batches are dropped.

    Raises:
      ValueError: an invalid argument.
      schema.DatasetError: no `dataset_info.json`, T or D differ from the dataset's, no or an
        incomplete set of shards for the split, fewer shards than input pipelines, or fewer
        images than one batch in a finite pass. A corrupt shard fails at read time (see
        `dataset_errors`).
    """
    _check_arguments(split=split, batch_size=batch_size, image_size=image_size, z_dim=z_dim,
                     seed=seed, repeat=repeat, shuffle_buffer=shuffle_buffer, variant=variant,
                     sentence_embedding=sentence_embedding, label_rule=label_rule)
    info = dataset_info(data_dir)
    schema.check_compatible(info, max_tokens=max_tokens, embedding_dim=embedding_dim,
                            data_dir=data_dir)
    if counterfactuals and not info.extra.get(schema.HAS_COUNTERFACTUALS):
        raise schema.DatasetError(
            f"{data_dir} has no counterfactual captions; write it with them (data_tools."
            "synthetic_scenes --counterfactual_captions) or turn them off "
            "(train_config.DataConfig.counterfactual_captions = False)")
    shards = schema.list_shards(data_dir, split)
    _check_complete(shards, data_dir, split)
    passes = repeat if repeat is not None else (None if training else 1)
    num_images = info.splits.get(split)
    if passes is not None and num_images is not None and num_images * passes < batch_size:
        raise schema.DatasetError(
            f"split {split!r} in {data_dir} has {num_images} images; {passes} pass(es) cannot "
            f"fill one batch of {batch_size} (incomplete batches are dropped)")

    pipeline_id, num_pipelines, local_batch_size = 0, 1, batch_size
    if input_context is not None:
        pipeline_id = input_context.input_pipeline_id
        num_pipelines = input_context.num_input_pipelines
        local_batch_size = input_context.get_per_replica_batch_size(batch_size)
        if len(shards) < num_pipelines:
            raise schema.DatasetError(
                f"split {split!r} in {data_dir} has {len(shards)} shards, fewer than the "
                f"{num_pipelines} input pipelines; rewrite it with at least {num_pipelines} shards")
        shards = shards[pipeline_id::num_pipelines]
    sizes = [tf.io.gfile.stat(path).length for path in shards]

    # Independent seeds for the shard shuffle, the example shuffle and the per-example keys.
    file_seed, example_seed, *key = np.random.SeedSequence(
        [int(seed), int(pipeline_id)]).generate_state(4, dtype=np.uint32).tolist()

    process = _example_fn(
        training=training, random_flip=random_flip, max_tokens=max_tokens,
        embedding_dim=embedding_dim, image_size=image_size, variant=variant,
        method=sentence_embedding, z_dim=z_dim,
        keep_labels=variant == LABEL_PAIRS and label_rule == pairing.ANY_SHARED,
        counterfactuals=bool(counterfactuals), key=np.array(key, np.int64), seed=int(seed),
        stream_offset=int(pipeline_id) << 32)  # input pipelines draw apart
    shard_paths = tf.constant(shards, tf.string)
    shard_sizes = tf.constant(sizes, tf.int64)
    if training:
        records = _training_records(shard_paths, shard_sizes, passes=passes, start=start,
                                    file_seed=file_seed, example_seed=example_seed,
                                    shuffle_buffer=shuffle_buffer)
        with_position = has_position(variant)

        def process_training(position, index, serialized):
            example = process(index, serialized)
            return {**example, POSITION: position} if with_position else example

        examples = records.map(process_training, num_parallel_calls=tf.data.AUTOTUNE,
                               deterministic=True)
    else:
        # An ordered pass reads the shards one after the other.
        records = tf.data.Dataset.from_tensor_slices((shard_paths, shard_sizes)).repeat(passes)
        records = records.interleave(_read_shard, cycle_length=1, block_length=1,
                                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        examples = records.enumerate().map(process, num_parallel_calls=tf.data.AUTOTUNE,
                                           deterministic=True)
    if variant == LABEL_PAIRS:
        examples = pairing.pair_by_label(examples, label_rule=label_rule)
    batches = examples.batch(local_batch_size, drop_remainder=True,
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    batches = batches.prefetch(tf.data.AUTOTUNE)

    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF if input_context is not None
        else tf.data.experimental.AutoShardPolicy.AUTO)
    return batches.with_options(options)


def ordered_examples(data_dir: str, split: str, *, image_size: int, batch_size: int,
                     num_samples: int | None = None, seed: int = 0, z_dim: int | None = None,
                     sentence_mode: str = sentence_embedding_lib.OFFICIAL,
                     with_objects: bool = False, with_images: bool = True,
                     max_tokens: int | None = None,
                     embedding_dim: int | None = None) -> tf.data.Dataset:
    """The first `num_samples` examples of a split, in file order, one caption each: the
    reader of evaluation, of the training sample grids and of the domain evaluator.

    The caption of image i and its z are the draws of `make_dataset(training=False)` for the
    same (seed, i) (`_ordered_draws`); the result does not depend on the batch size.

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
      float32 (with z_dim); with objects also `objects/<field>` [B, K] int64 (-1 padding),
      `states_position` and `states_size` [B] int64 of the chosen caption (0 where the record
      has none).
    """
    sentence_embedding_lib.check_method(sentence_mode)
    if num_samples is not None and num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    info = schema.read_dataset_info(data_dir)
    if max_tokens is not None or embedding_dim is not None:
        schema.check_compatible(info, max_tokens=max_tokens or info.max_tokens,
                                embedding_dim=embedding_dim or info.embedding_dim,
                                data_dir=data_dir)
    tokens, dim = info.max_tokens, info.embedding_dim

    def parse(index: tf.Tensor, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        record = schema.parse_example(serialized, max_tokens=tokens, embedding_dim=dim,
                                      with_objects=with_objects)
        choice, z = _ordered_draws(seed, index, tf.shape(record["captions"])[0], z_dim)
        out = {"index": index, "caption_index": choice, "label": record["label"],
               IMAGE_KEY: image_key(record["image"]),
               **_caption_fields(record, choice, tokens, sentence_mode)}
        out["words"] = tf.ensure_shape(out["words"], [tokens, dim])
        if with_images:
            out["image"] = _unit_range(_decode_image(record["image"], image_size), image_size)
        if z is not None:
            out["z"] = z
        if with_objects:
            for field in schema.OBJECT_FIELDS:
                out[schema.OBJECT_PREFIX + field] = record[schema.OBJECT_PREFIX + field]
            for name in ("states_position", "states_size"):
                states = record[name]
                out[name] = tf.cond(tf.size(states) > choice, lambda s=states: s[choice],
                                    lambda: tf.constant(0, tf.int64))
        return out

    dataset = tf.data.TFRecordDataset(schema.list_shards(data_dir, split)).enumerate()
    if num_samples is not None:
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
