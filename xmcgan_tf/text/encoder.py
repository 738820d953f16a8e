"""Captions -> BERT word embeddings through TF-Hub BERT modules (a TF-Hub handle or a local dir).

Shape legend: B captions in a batch, N captions in total, T tokens per caption (`max_tokens`,
[CLS] and [SEP] included, padded), D text-encoder width (768 for BERT-base, 384 for the offline
all-MiniLM-L6-v2 module built by `python -m data_tools.build_text_encoder --output_dir DIR`,
which writes `DIR/preprocess` and `DIR/encoder`).

Any pair of modules with the TF-Hub BERT interfaces works: a preprocessor exposing
`tokenize(strings [B]) -> ragged [B, words, wordpieces]` and
`bert_pack_inputs(segments, seq_length=T) -> {input_word_ids, input_mask, input_type_ids}`, and an
encoder mapping those inputs to `sequence_output [B, T, D]` and `pooled_output [B, D]`.

`TextEncoder` is a Keras 3 layer that calls `hub.load`-ed modules directly (`hub.KerasLayer` does
not work in Keras 3 models). The encoder is frozen: the layer has no Keras weights; fine-tuning
code can reach the module's variables through `encoder_module.trainable_variables`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  Registers the WordPiece ops used by BERT preprocessors.

DEFAULT_PREPROCESSOR_URL = "https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3"
DEFAULT_ENCODER_URL = "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/4"
BUILD_COMMAND = "python -m data_tools.build_text_encoder --output_dir DIR"


def load_hub_module(handle: str) -> Any:
    """Loads a TF-Hub module from a URL or a local SavedModel directory.

    Args:
        handle: an http(s) TF-Hub URL, a local SavedModel directory, or another path
            `hub.load` understands (e.g. `gs://...`).

    Returns:
        The loaded module (`hub.load(handle)`).

    Raises:
        ValueError: `handle` is empty.
        FileNotFoundError: a local `handle` does not exist or holds no SavedModel.
        OSError: a URL cannot be fetched (e.g. no network access).
    """
    if not handle:
        raise ValueError("The text-encoder module handle is empty.")
    if handle.startswith(("http://", "https://")):
        try:
            return hub.load(handle)
        except OSError as err:
            raise OSError(
                f"Cannot load the TF-Hub module {handle!r} ({err}). Without network access, build "
                f"the offline text encoder with `{BUILD_COMMAND}` and pass DIR/preprocess and "
                "DIR/encoder as the preprocessor and encoder handles."
            ) from err
    if "://" not in handle:
        if not os.path.isdir(handle):
            raise FileNotFoundError(
                f"Text-encoder module directory {handle!r} does not exist. Build the offline "
                f"module with `{BUILD_COMMAND}` (it writes DIR/preprocess and DIR/encoder)."
            )
        if not os.path.isfile(os.path.join(handle, "saved_model.pb")):
            raise FileNotFoundError(
                f"Text-encoder module directory {handle!r} holds no saved_model.pb; pass the "
                "preprocess/ or encoder/ directory itself."
            )
    return hub.load(handle)


class TextEncoder(keras.layers.Layer):
    """Captions [B] tf.string -> BERT token embeddings [B, T, D], truncated and padded to T.

    Each caption is tokenized by the preprocessor's `tokenize`, truncated to T - 2 wordpieces,
    wrapped in [CLS] ... [SEP] and padded to T by `bert_pack_inputs(seq_length=T)`, then encoded.
    """

    def __init__(self, preprocessor: str, encoder: str, max_tokens: int = 17, **kwargs: Any):
        """Loads both modules.

        Args:
            preprocessor: handle of the BERT preprocessor module (URL or directory).
            encoder: handle of the BERT encoder module (URL or directory).
            max_tokens: T, tokens per caption including [CLS] and [SEP]; at least 2.
            **kwargs: `keras.layers.Layer` arguments (`trainable` defaults to False).

        Raises:
            ValueError: `max_tokens` < 2.
            FileNotFoundError, OSError: a module cannot be loaded (see `load_hub_module`).
        """
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if int(max_tokens) != max_tokens or max_tokens < 2:
            raise ValueError(
                f"max_tokens must be an integer >= 2 ([CLS] and [SEP]); got {max_tokens!r}."
            )
        self.preprocessor_handle = preprocessor
        self.encoder_handle = encoder
        self.max_tokens = int(max_tokens)
        self._preprocessor = load_hub_module(preprocessor)
        self._encoder = load_hub_module(encoder)
        probe = self._encoder(
            {
                "input_word_ids": tf.zeros([1, 2], tf.int32),
                "input_mask": tf.ones([1, 2], tf.int32),
                "input_type_ids": tf.zeros([1, 2], tf.int32),
            },
            training=False,
        )
        self._embedding_dim = int(probe["sequence_output"].shape[-1])

    @property
    def embedding_dim(self) -> int:
        """D, the width of `sequence_output` and `pooled_output`."""
        return self._embedding_dim

    @property
    def preprocessor_module(self) -> Any:
        """The loaded preprocessor module."""
        return self._preprocessor

    @property
    def encoder_module(self) -> Any:
        """The loaded encoder module (its `trainable_variables` serve fine-tuning)."""
        return self._encoder

    def call(self, captions: tf.Tensor) -> dict[str, tf.Tensor]:
        """Encodes a batch of captions.

        Args:
            captions: [B] tf.string.

        Returns:
            Dict with `sequence_output [B, T, D]` float32 (last-layer BERT output, padded
            positions included), `pooled_output [B, D]` float32, `input_mask [B, T]` int32 (1 on
            real tokens incl. [CLS]/[SEP]), `num_tokens [B]` int32 (real tokens, at most T).

        Raises:
            TypeError: `captions` is not tf.string.
            ValueError: `captions` is not rank 1.
        """
        captions = tf.convert_to_tensor(captions)
        if captions.dtype != tf.string:
            raise TypeError(f"captions must be tf.string, got {captions.dtype.name}.")
        if captions.shape.rank != 1:
            raise ValueError(f"captions must have shape [B], got {captions.shape}.")
        tokens = self._preprocessor.tokenize(captions)  # ragged [B, words, wordpieces]
        inputs = self._preprocessor.bert_pack_inputs(
            [tokens], seq_length=self.max_tokens
        )  # [B, T] each
        outputs = self._encoder(inputs, training=False)
        input_mask = tf.cast(inputs["input_mask"], tf.int32)  # [B, T]
        return {
            "sequence_output": tf.cast(outputs["sequence_output"], tf.float32),
            "pooled_output": tf.cast(outputs["pooled_output"], tf.float32),
            "input_mask": input_mask,
            "num_tokens": tf.reduce_sum(input_mask, axis=1),
        }

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            preprocessor=self.preprocessor_handle,
            encoder=self.encoder_handle,
            max_tokens=self.max_tokens,
        )
        return config


def encode_captions(
    text_encoder: TextEncoder, captions: Sequence[str], batch_size: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """Encodes captions in batches.

    Args:
        text_encoder: the encoder (fixes T = `max_tokens` and D = `embedding_dim`).
        captions: N non-empty strings.
        batch_size: captions per encoder call.

    Returns:
        (embeddings [N, T, D] float32 `sequence_output`, num_tokens [N] int32).

    Raises:
        ValueError: a caption is empty or blank, or `batch_size` < 1.
        TypeError: a caption is not a str.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    captions = list(captions)
    for index, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise TypeError(
                f"Caption {index} is a {type(caption).__name__}, not a str: {caption!r}."
            )
        if not caption.strip():
            raise ValueError(f"Caption {index} is empty ({caption!r}); every caption needs text.")
    num = len(captions)
    embeddings = np.zeros([num, text_encoder.max_tokens, text_encoder.embedding_dim], np.float32)
    num_tokens = np.zeros([num], np.int32)
    for start in range(0, num, batch_size):
        stop = min(start + batch_size, num)
        outputs = text_encoder(tf.constant(captions[start:stop]))
        embeddings[start:stop] = outputs["sequence_output"].numpy()
        num_tokens[start:stop] = outputs["num_tokens"].numpy()
    return embeddings, num_tokens
