"""Tests of xmcgan_tf.text.encoder and the offline all-MiniLM-L6-v2 TF-Hub modules.

Token ids and encoder outputs are compared with tests/text/reference_outputs.json, written by
tests/text/make_reference.py from the PyTorch sentence-transformers model of the same weights.
"""

import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from data_tools import build_text_encoder
from xmcgan_tf.text import encoder

REFERENCE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference_outputs.json")
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference() -> dict:
    with open(REFERENCE_PATH, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def text_encoder(offline_text_encoder_dir, reference) -> encoder.TextEncoder:
    """TextEncoder with T equal to the reference's sequence length."""
    return encoder.TextEncoder(
        os.path.join(offline_text_encoder_dir, "preprocess"),
        os.path.join(offline_text_encoder_dir, "encoder"),
        max_tokens=reference["seq_length"],
    )


def _masked_mean_normalized(sequence_output: np.ndarray, mask: np.ndarray) -> np.ndarray:
    mask = mask[..., None].astype(np.float64)
    mean = (sequence_output * mask).sum(1) / mask.sum(1)
    return mean / np.linalg.norm(mean, axis=-1, keepdims=True)


def test_reference_was_made_from_the_installed_weights(reference):
    digest = hashlib.sha256()
    path = os.path.join(build_text_encoder.find_weights_dir(), build_text_encoder.WEIGHTS_FILE)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    assert digest.hexdigest() == reference["weights_sha256"]


def test_preprocessor_gives_bert_base_uncased_ids(text_encoder, reference):
    preprocessor = text_encoder.preprocessor_module
    outputs = preprocessor(tf.constant(["a red bird"] + reference["sentences"]))
    ids = outputs["input_word_ids"].numpy()
    assert ids.shape == (1 + len(reference["sentences"]), build_text_encoder.DEFAULT_SEQ_LENGTH)
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids[0, :6], [101, 1037, 2417, 4743, 102, 0])
    for row, expected in zip(ids[1:], reference["token_ids"], strict=True):
        np.testing.assert_array_equal(row[: len(expected)], expected)
        assert not row[len(expected) :].any()
    lengths = [5] + [len(expected) for expected in reference["token_ids"]]
    np.testing.assert_array_equal(outputs["input_mask"].numpy().sum(1), lengths)
    assert not outputs["input_type_ids"].numpy().any()


def test_accents_are_stripped_and_unknown_pieces_map_to_unk(text_encoder):
    ids = text_encoder.preprocessor_module(tf.constant(["Café crème brûlée", "a 🦜"]))[
        "input_word_ids"
    ].numpy()
    # "cafe creme brulee", as bert-base-uncased tokenizes it; the emoji is [UNK] (100).
    np.testing.assert_array_equal(ids[0, :9], [101, 7668, 13675, 21382, 7987, 9307, 2063, 102, 0])
    np.testing.assert_array_equal(ids[1, :5], [101, 1037, 100, 102, 0])


def test_tokenize_returns_words_of_wordpieces(text_encoder, reference):
    tokens = text_encoder.preprocessor_module.tokenize(tf.constant(reference["sentences"][1:2]))
    assert isinstance(tokens, tf.RaggedTensor)
    assert tokens.dtype == tf.int32
    assert tokens.to_list() == [[[7668], [13675, 21382], [7987, 9307, 2063]]]


@pytest.mark.parametrize("seq_length", [5, 7, 40])
def test_bert_pack_inputs_takes_seq_length_at_call_time(text_encoder, reference, seq_length):
    preprocessor = text_encoder.preprocessor_module
    long_ids = reference["token_ids"][4]
    tokens = preprocessor.tokenize(tf.constant([reference["sentences"][4], "a red bird"]))
    packed = preprocessor.bert_pack_inputs([tokens], seq_length=seq_length)
    ids = packed["input_word_ids"].numpy()
    assert ids.shape == (2, seq_length)
    expected_long = long_ids[: seq_length - 1] + [102] if seq_length < len(long_ids) else long_ids
    np.testing.assert_array_equal(ids[0, : len(expected_long)], expected_long)
    np.testing.assert_array_equal(
        packed["input_mask"].numpy().sum(1), [len(expected_long), min(5, seq_length)]
    )


def test_bert_pack_inputs_two_segments(text_encoder):
    preprocessor = text_encoder.preprocessor_module
    first = preprocessor.tokenize(tf.constant(["a red bird"]))
    second = preprocessor.tokenize(tf.constant(["blue"]))
    packed = preprocessor.bert_pack_inputs([first, second], seq_length=tf.constant(9))
    np.testing.assert_array_equal(
        packed["input_word_ids"].numpy(), [[101, 1037, 2417, 4743, 102, 2630, 102, 0, 0]]
    )
    np.testing.assert_array_equal(packed["input_type_ids"].numpy(), [[0, 0, 0, 0, 0, 1, 1, 0, 0]])
    np.testing.assert_array_equal(packed["input_mask"].numpy(), [[1, 1, 1, 1, 1, 1, 1, 0, 0]])


def test_special_tokens_dict(text_encoder):
    special = {
        k: int(v)
        for k, v in text_encoder.preprocessor_module.tokenize.get_special_tokens_dict().items()
    }
    assert special == {
        "vocab_size": 30522,
        "start_of_sequence_id": 101,
        "end_of_segment_id": 102,
        "padding_id": 0,
        "mask_id": 103,
    }


def test_encoder_matches_pytorch_reference(text_encoder, reference):
    outputs = text_encoder(tf.constant(reference["sentences"]))
    mask = outputs["input_mask"].numpy()
    np.testing.assert_array_equal(mask, reference["input_mask"])
    tokens = text_encoder.preprocessor_module.tokenize(tf.constant(reference["sentences"]))
    packed = text_encoder.preprocessor_module.bert_pack_inputs(
        [tokens], seq_length=reference["seq_length"]
    )
    np.testing.assert_array_equal(packed["input_word_ids"].numpy(), reference["input_word_ids"])

    num_dims = reference["num_dims"]
    sequence_output = outputs["sequence_output"].numpy()
    pooled_output = outputs["pooled_output"].numpy()
    diffs = {
        "sequence_output": np.abs(
            sequence_output[..., :num_dims] - reference["sequence_output_first_dims"]
        ).max(),
        "pooled_output": np.abs(pooled_output - reference["pooled_output"]).max(),
        "sentence_embedding": np.abs(
            _masked_mean_normalized(sequence_output, mask) - reference["sentence_embedding"]
        ).max(),
    }
    print("max abs diff vs PyTorch:", {k: f"{v:.2e}" for k, v in diffs.items()})
    for name, diff in diffs.items():
        assert diff < TOLERANCE, (name, diff)


def test_text_encoder_shapes_and_num_tokens(text_encoder, reference):
    outputs = text_encoder(tf.constant(reference["sentences"]))
    num, seq_length = len(reference["sentences"]), reference["seq_length"]
    assert text_encoder.embedding_dim == 384
    assert outputs["sequence_output"].shape == (num, seq_length, 384)
    assert outputs["sequence_output"].dtype == tf.float32
    assert outputs["pooled_output"].shape == (num, 384)
    assert outputs["input_mask"].dtype == tf.int32
    expected = [min(len(ids), seq_length) for ids in reference["token_ids"]]
    np.testing.assert_array_equal(outputs["num_tokens"].numpy(), expected)
    assert outputs["num_tokens"].dtype == tf.int32
    np.testing.assert_array_equal(
        outputs["num_tokens"].numpy(), outputs["input_mask"].numpy().sum(1)
    )


def test_truncation_to_max_tokens(text_encoder, reference):
    # The last caption has 41 wordpieces: it is cut to T - 2 of them, then [SEP] closes it.
    seq_length, long_ids = reference["seq_length"], reference["token_ids"][4]
    assert len(long_ids) > seq_length
    tokens = text_encoder.preprocessor_module.tokenize(tf.constant([reference["sentences"][4]]))
    packed = text_encoder.preprocessor_module.bert_pack_inputs([tokens], seq_length=seq_length)
    np.testing.assert_array_equal(
        packed["input_word_ids"].numpy()[0], long_ids[: seq_length - 1] + [102]
    )
    outputs = text_encoder(tf.constant([reference["sentences"][4]]))
    np.testing.assert_array_equal(outputs["num_tokens"].numpy(), [seq_length])
    np.testing.assert_array_equal(outputs["input_mask"].numpy(), np.ones([1, seq_length]))


def test_padding_does_not_change_real_token_outputs(text_encoder, reference):
    alone = text_encoder(tf.constant(["a red bird"]))
    batched = text_encoder(tf.constant(["a red bird", reference["sentences"][4]]))
    np.testing.assert_allclose(
        alone["sequence_output"].numpy()[0, :5],
        batched["sequence_output"].numpy()[0, :5],
        atol=TOLERANCE,
    )
    np.testing.assert_allclose(
        alone["pooled_output"].numpy()[0], batched["pooled_output"].numpy()[0], atol=TOLERANCE
    )


def test_text_encoder_inside_tf_function(text_encoder, reference):
    captions = tf.constant(reference["sentences"][:3])
    eager = text_encoder(captions)
    graph = tf.function(
        lambda x: text_encoder(x), input_signature=[tf.TensorSpec([None], tf.string)]
    )(captions)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(graph[key].numpy(), eager[key].numpy(), atol=TOLERANCE)
    np.testing.assert_array_equal(graph["num_tokens"].numpy(), eager["num_tokens"].numpy())


def test_text_encoder_rejects_bad_input(offline_text_encoder_dir, text_encoder):
    with pytest.raises(TypeError, match="tf.string"):
        text_encoder(tf.constant([1, 2]))
    with pytest.raises(ValueError, match=r"shape \[B\]"):
        text_encoder(tf.constant([["a", "b"]]))
    with pytest.raises(ValueError, match="max_tokens"):
        encoder.TextEncoder(
            os.path.join(offline_text_encoder_dir, "preprocess"),
            os.path.join(offline_text_encoder_dir, "encoder"),
            max_tokens=1,
        )


def test_get_config(text_encoder, offline_text_encoder_dir, reference):
    config = text_encoder.get_config()
    assert config["preprocessor"] == os.path.join(offline_text_encoder_dir, "preprocess")
    assert config["encoder"] == os.path.join(offline_text_encoder_dir, "encoder")
    assert config["max_tokens"] == reference["seq_length"]
    assert config["trainable"] is False


def test_encode_captions_batching_equals_one_shot(text_encoder, reference):
    captions = reference["sentences"] + ["a small green star", "two purple hearts"]
    one_shot, one_shot_tokens = encoder.encode_captions(text_encoder, captions, batch_size=128)
    batched, batched_tokens = encoder.encode_captions(text_encoder, captions, batch_size=3)
    assert one_shot.shape == (len(captions), reference["seq_length"], 384)
    assert one_shot.dtype == np.float32 and one_shot_tokens.dtype == np.int32
    np.testing.assert_allclose(batched, one_shot, atol=TOLERANCE)
    np.testing.assert_array_equal(batched_tokens, one_shot_tokens)
    direct = text_encoder(tf.constant(captions))
    np.testing.assert_allclose(one_shot, direct["sequence_output"].numpy(), atol=TOLERANCE)
    np.testing.assert_array_equal(one_shot_tokens, direct["num_tokens"].numpy())


@pytest.mark.parametrize("captions", [["a red bird", ""], ["   "]])
def test_encode_captions_rejects_empty_caption(text_encoder, captions):
    with pytest.raises(ValueError, match="empty"):
        encoder.encode_captions(text_encoder, captions)


def test_encode_captions_rejects_non_strings(text_encoder):
    with pytest.raises(TypeError, match="not a str"):
        encoder.encode_captions(text_encoder, ["a red bird", b"bytes"])


def test_encoder_module_has_reusable_saved_model_api(text_encoder):
    module = text_encoder.encoder_module
    assert len(module.variables) == len(module.trainable_variables) == 103
    assert list(module.regularization_losses) == []
    inputs = text_encoder.preprocessor_module(tf.constant(["a red bird", "a blue square"]))
    outputs = module(inputs)
    assert set(outputs) == {"sequence_output", "pooled_output", "default", "encoder_outputs"}
    assert len(outputs["encoder_outputs"]) == 6
    np.testing.assert_array_equal(outputs["default"].numpy(), outputs["pooled_output"].numpy())
    np.testing.assert_array_equal(
        outputs["encoder_outputs"][-1].numpy(), outputs["sequence_output"].numpy()
    )
    served = module.signatures["serving_default"](**inputs)
    assert set(served) == {"sequence_output", "pooled_output", "default"}
    np.testing.assert_allclose(
        served["pooled_output"].numpy(), outputs["pooled_output"].numpy(), atol=1e-5
    )
    tf.random.set_seed(0)
    dropped = module(inputs, training=True)
    assert (
        np.abs(dropped["sequence_output"].numpy() - outputs["sequence_output"].numpy()).max() > 1e-3
    )


def test_load_hub_module_errors(tmp_path):
    missing = str(tmp_path / "no_such_dir")
    with pytest.raises(FileNotFoundError, match="no_such_dir.*build_text_encoder"):
        encoder.load_hub_module(missing)
    with pytest.raises(FileNotFoundError, match="saved_model.pb"):
        encoder.load_hub_module(str(tmp_path))
    with pytest.raises(ValueError, match="empty"):
        encoder.load_hub_module("")
    # The .invalid top-level domain never resolves (RFC 2606), as when offline.
    url = "https://tfhub.invalid/tensorflow/bert_en_uncased_preprocess/3"
    with pytest.raises(OSError, match=r"tfhub\.invalid.*python -m data_tools\.build_text_encoder"):
        encoder.load_hub_module(url)


def test_default_handles_are_the_tf_hub_bert_modules():
    assert (
        encoder.DEFAULT_PREPROCESSOR_URL
        == "https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3"
    )
    assert (
        encoder.DEFAULT_ENCODER_URL
        == "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/4"
    )
