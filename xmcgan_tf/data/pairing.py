"""Pairing variants of the input pipeline (SPEC §1.2): `two_captions` and `label_pairs`.

Legend: S captions of an image, L labels of an image (multi-label sets).

- `two_captions` (T2I_CL, SPEC §4): a second, distinct caption of the same image;
  `other_caption_index` picks its index.
- `label_pairs` (SCL, SPEC §5): each example is paired with another example of the same label;
  `pair_by_label` does it with `tf.data.Dataset.group_by_window` (no Python loop over data):
  the stream is grouped by label into windows of two consecutive same-label examples and each
  full window becomes one pair, so every example is used once and its partner is another image.
  A window that cannot fill (a label's last example when a finite stream ends) pairs the example
  with itself. Label rules:
  * `largest_area`: the key is `image/label`; examples with label -1 are dropped.
  * `any_shared`: an example is copied once per distinct id in `image/labels` and each copy is
    keyed by that id, so partners share at least that label; both `label` and `label_2` of the
    pair are set to the shared id. Examples with no labels are dropped.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

LARGEST_AREA = "largest_area"
ANY_SHARED = "any_shared"
LABEL_RULES = (LARGEST_AREA, ANY_SHARED)

PARTNER_SUFFIX = "_2"
_WINDOW_SIZE = 2


def check_label_rule(label_rule: str) -> None:
    """Raises ValueError when `label_rule` is not one of `LABEL_RULES`."""
    if label_rule not in LABEL_RULES:
        raise ValueError(f"unknown label rule {label_rule!r}; allowed: {list(LABEL_RULES)}")


def other_caption_index(first: tf.Tensor, num_captions: tf.Tensor,
                        seed: tf.Tensor | None = None) -> tf.Tensor:
    """Index of a second caption, distinct from `first` whenever the image has >= 2.

    Args:
      first: scalar int32, index of the first caption, in [0, S).
      num_captions: scalar int32, S >= 1.
      seed: [2] int stateless seed; uniform over the other S - 1 captions. None: the next
        caption, (first + 1) mod S (deterministic, for evaluation).

    Returns:
      scalar int32 in [0, S); equals `first` only when S == 1.
    """
    first = tf.cast(first, tf.int32)
    num_captions = tf.cast(num_captions, tf.int32)
    if seed is None:
        offset = tf.constant(1, tf.int32)
    else:
        # Uniform in [1, S - 1]; with S == 1 the range is empty and the offset is 0.
        others = tf.maximum(num_captions - 1, 1)
        offset = 1 + tf.random.stateless_uniform([], seed, minval=0, maxval=others, dtype=tf.int32)
    return tf.math.floormod(first + tf.minimum(offset, num_captions - 1), num_captions)


def _without(example: Mapping[str, tf.Tensor], key: str) -> dict[str, tf.Tensor]:
    return {k: v for k, v in example.items() if k != key}


def _keyed_by_label(example: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, dict]:
    return example["label"], _without(example, "labels")


def _copies_per_label(example: Mapping[str, tf.Tensor]) -> tf.data.Dataset:
    labels = tf.unique(tf.cast(example["labels"], tf.int64)).y  # [L'] distinct ids
    labels = tf.boolean_mask(labels, labels >= 0)
    rest = _without(example, "labels")

    def keyed(label: tf.Tensor) -> tuple[tf.Tensor, dict]:
        return label, {**rest, "label": label}

    return tf.data.Dataset.from_tensor_slices(labels).map(keyed)


def _pair_window(key: tf.Tensor, window: tf.data.Dataset) -> tf.data.Dataset:
    del key  # Every element of the window carries it.

    def to_pair(keys: tf.Tensor, batch: dict) -> dict:
        del keys
        first = {k: v[0] for k, v in batch.items()}
        second = {k + PARTNER_SUFFIX: v[-1] for k, v in batch.items()}  # v[0] if alone
        return {**first, **second}

    return window.batch(_WINDOW_SIZE).map(to_pair)


def pair_by_label(dataset: tf.data.Dataset, *, label_rule: str = LARGEST_AREA) -> tf.data.Dataset:
    """Pairs each example with another example of the same label.

    Args:
      dataset: dict elements with `label` scalar int64 (`image/label`, -1 if none) and, for
        `any_shared`, `labels` [L] int64; every other field has a fixed shape.
      label_rule: `largest_area` or `any_shared` (see the module docstring).

    Returns:
      dict elements with the input's fields (without `labels`) and, for each field `f`, the
      partner's `f_2`. `label == label_2` always.

    Raises:
      ValueError: unknown `label_rule`, or `labels` missing for `any_shared`.
    """
    check_label_rule(label_rule)
    if label_rule == LARGEST_AREA:
        keyed = dataset.filter(lambda example: example["label"] >= 0).map(_keyed_by_label)
    else:
        if "labels" not in dataset.element_spec:
            raise ValueError("label rule 'any_shared' needs a 'labels' field in the examples")
        keyed = dataset.flat_map(_copies_per_label)
    return keyed.group_by_window(key_func=lambda key, example: key, reduce_func=_pair_window,
                                 window_size=_WINDOW_SIZE)
