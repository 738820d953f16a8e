"""Tests of xmcgan_tf.export.serving_module with the real offline text encoder (D = 384)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.export import tiny_export
from xmcgan_tf.export import export_lib
from xmcgan_tf.export import serving_module
from xmcgan_tf.networks import generator as generator_lib
from xmcgan_tf.text import encoder as encoder_lib

MAX_TOKENS = 10
CAPTIONS = ["a small red circle above a blue square", "a large green star in the top left"]


@pytest.fixture(scope="module")
def exported(offline_text_encoder_dir, tmp_path_factory):
    """A 64 px gf=4 generator + the offline BERT encoder, exported once and loaded back."""
    encoder = encoder_lib.TextEncoder(os.path.join(offline_text_encoder_dir, "preprocess"),
                                      os.path.join(offline_text_encoder_dir, "encoder"),
                                      max_tokens=MAX_TOKENS)
    generator = generator_lib.Generator(image_size=64, gf_dim=4, z_dim=8,
                                        embedding_dim=encoder.embedding_dim, cond_size=16)
    module = serving_module.ServingModule(generator, encoder, max_tokens=MAX_TOKENS,
                                          embedding_dim=encoder.embedding_dim)
    export_dir = str(tmp_path_factory.mktemp("export"))
    version, path = export_lib.write_version(module, export_dir)
    loaded = serving_module.load(export_dir)
    return dict(encoder=encoder, generator=generator, version=version, path=path,
                model=loaded.model, loaded=loaded)


def _run(model, name, **inputs) -> np.ndarray:
    return model.signatures[name](**inputs)[serving_module.IMAGES].numpy()


def test_layout_and_signatures(exported):
    assert exported["version"] == 1
    assert os.path.basename(exported["path"]) == "1"
    assert set(serving_module.SIGNATURE_NAMES) <= set(exported["model"].signatures)
    seeded = exported["model"].signatures[serving_module.SERVE_CAPTIONS_SEEDED]
    _, inputs = seeded.structured_input_signature
    assert inputs["captions"].dtype == tf.string and inputs["captions"].shape.as_list() == [None]
    assert inputs["seed"].dtype == tf.int64 and inputs["seed"].shape.as_list() == [None]
    output = seeded.structured_outputs["images"]
    assert output.dtype == tf.uint8 and output.shape.as_list() == [None, 64, 64, 3]
    embeddings = exported["model"].signatures[serving_module.SERVE_EMBEDDINGS]
    _, inputs = embeddings.structured_input_signature
    assert inputs["words"].shape.as_list() == [None, MAX_TOKENS, 384]
    assert inputs["word_mask"].shape.as_list() == [None, MAX_TOKENS]


def test_images_match_generator_on_pipeline_inputs(exported):
    seeds = [3, 11]
    images = _run(exported["model"], serving_module.SERVE_CAPTIONS_SEEDED,
                  captions=tf.constant(CAPTIONS), seed=tf.constant(seeds, tf.int64))
    expected = tiny_export.reference_images(exported["generator"], exported["encoder"], CAPTIONS,
                                            seeds)
    tiny_export.assert_same_pixels(images, expected)


def test_same_caption_and_seed_give_the_same_image_in_any_batch(exported):
    model = exported["model"]
    batch = _run(model, serving_module.SERVE_CAPTIONS_SEEDED,
                 captions=tf.constant([CAPTIONS[0], CAPTIONS[1], CAPTIONS[0]]),
                 seed=tf.constant([5, 5, 5], tf.int64))
    alone = _run(model, serving_module.SERVE_CAPTIONS_SEEDED, captions=tf.constant(CAPTIONS[:1]),
                 seed=tf.constant([5], tf.int64))
    np.testing.assert_array_equal(batch[0], batch[2])
    tiny_export.assert_same_pixels(alone[0:1], batch[0:1])


def test_different_seeds_give_different_images(exported):
    images = _run(exported["model"], serving_module.SERVE_CAPTIONS_SEEDED,
                  captions=tf.constant([CAPTIONS[0]] * 3), seed=tf.constant([0, 1, 2], tf.int64))
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert np.abs(images[i].astype(np.int32) - images[j].astype(np.int32)).mean() > 1.0


def test_default_signature_uses_seed_zero(exported):
    model = exported["model"]
    default = _run(model, serving_module.SERVING_DEFAULT, captions=tf.constant(CAPTIONS))
    seeded = _run(model, serving_module.SERVE_CAPTIONS_SEEDED, captions=tf.constant(CAPTIONS),
                  seed=tf.zeros([2], tf.int64))
    np.testing.assert_array_equal(default, seeded)
    np.testing.assert_array_equal(
        default, _run(model, serving_module.SERVE_CAPTIONS, captions=tf.constant(CAPTIONS)))


def test_embeddings_signature_matches_captions_signature(exported):
    words, num_tokens = encoder_lib.encode_captions(exported["encoder"], CAPTIONS)
    mask = (np.arange(MAX_TOKENS)[None, :] < num_tokens[:, None]).astype(np.float32)
    model = exported["model"]
    from_embeddings = _run(model, serving_module.SERVE_EMBEDDINGS_SEEDED, words=tf.constant(words),
                           word_mask=tf.constant(mask), seed=tf.constant([4, 9], tf.int64))
    from_captions = _run(model, serving_module.SERVE_CAPTIONS_SEEDED,
                         captions=tf.constant(CAPTIONS), seed=tf.constant([4, 9], tf.int64))
    tiny_export.assert_same_pixels(from_embeddings, from_captions)
    unseeded = _run(model, serving_module.SERVE_EMBEDDINGS, words=tf.constant(words),
                    word_mask=tf.constant(mask))
    tiny_export.assert_same_pixels(
        unseeded, _run(model, serving_module.SERVING_DEFAULT, captions=tf.constant(CAPTIONS)))


def test_bad_batches_are_rejected(exported):
    model = exported["model"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="batch size 0"):
        _run(model, serving_module.SERVING_DEFAULT, captions=tf.constant([], tf.string))
    with pytest.raises(tf.errors.InvalidArgumentError, match="seed must have one row"):
        _run(model, serving_module.SERVE_CAPTIONS_SEEDED, captions=tf.constant(CAPTIONS),
             seed=tf.constant([1], tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one real token"):
        _run(model, serving_module.SERVE_EMBEDDINGS, words=tf.zeros([1, MAX_TOKENS, 384]),
             word_mask=tf.zeros([1, MAX_TOKENS]))


def test_latents_depend_on_the_row_seed_only():
    z = serving_module.latents(tf.constant([7, 8, 7], tf.int64), 16).numpy()
    assert z.shape == (3, 16) and z.dtype == np.float32
    np.testing.assert_array_equal(z[0], z[2])
    assert not np.allclose(z[0], z[1])
    np.testing.assert_array_equal(
        z[1], tf.random.stateless_normal([16], seed=[8, 0], alg="philox").numpy())


def test_to_uint8_rounds_and_clips():
    x = np.array([-0.5, 0.0, 0.3, 0.5, 1.0, 1.7], np.float32).reshape(1, 1, 2, 3)
    expected = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(serving_module.to_uint8(tf.constant(x)).numpy(), expected)


def test_constructor_rejects_unknown_sentence_method():
    with pytest.raises(ValueError, match="sentence"):
        serving_module.ServingModule(tiny_export.tiny_generator(), tiny_export.TinyTextEncoder(),
                                     max_tokens=tiny_export.MAX_TOKENS,
                                     embedding_dim=tiny_export.EMBEDDING_DIM,
                                     sentence_embedding="mean_of_everything")


def test_sentence_method_is_used():
    """Two rows that differ only at padded positions: the `official` sentence (a sum over all T
    positions) sees the difference, `cls` (position 0 only) does not, and the generator's word
    attention ignores padding."""
    encoder = tiny_export.TinyTextEncoder()
    row = encoder(tf.constant(["red circle"]))["sequence_output"].numpy()[0]  # [T, D]
    words = np.stack([row, row])
    words[1, 5:] += 3.0  # padding positions
    mask = np.zeros([2, tiny_export.MAX_TOKENS], np.float32)
    mask[:, :4] = 1.0
    generator = tiny_export.tiny_generator()
    images = {}
    for method in ("official", "cls"):
        module = serving_module.ServingModule(
            generator, encoder, max_tokens=tiny_export.MAX_TOKENS,
            embedding_dim=tiny_export.EMBEDDING_DIM, sentence_embedding=method)
        fn = module.signatures()[serving_module.SERVE_EMBEDDINGS_SEEDED]
        images[method] = fn(words=tf.constant(words), word_mask=tf.constant(mask),
                            seed=tf.constant([1, 1], tf.int64))["images"].numpy()
    np.testing.assert_array_equal(images["cls"][0], images["cls"][1])
    assert np.abs(images["official"][0].astype(int) - images["official"][1].astype(int)).max() > 0


def test_saved_model_cli_wrapper_runs_the_session_loader(exported, tmp_path):
    """`saved_model_cli run` loads through the session-based loader, as TF Serving does."""
    captions = ["a red circle", "a blue square"]
    result = subprocess.run(
        [sys.executable, "-m", "xmcgan_tf.export.saved_model_cli", "run", "--dir", exported["path"],
         "--tag_set", "serve", "--signature_def", "serve_captions_seeded",
         "--input_exprs", f"captions={captions!r};seed=[4, 2]", "--outdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    images = np.load(tmp_path / "images.npy")
    assert images.shape == (2, 64, 64, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(
        images, _run(exported["model"], serving_module.SERVE_CAPTIONS_SEEDED,
                     captions=tf.constant(captions), seed=tf.constant([4, 2], tf.int64)))
