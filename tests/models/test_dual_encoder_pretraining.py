"""Tests for xmcgan_tf.models.dual_encoder_pretraining."""

import keras
import numpy as np
import tensorflow as tf

from xmcgan_tf.losses import damsm
from xmcgan_tf.losses import nt_xent
from xmcgan_tf.losses import supcon
from xmcgan_tf.models import dual_encoder_pretraining
from xmcgan_tf.networks import dual_encoder

_T, _D, _B = 5, 12, 8


def _batch(seed=0, batch=_B):
    """Images whose colour is determined by a class, captions whose embedding is too."""
    rng = np.random.default_rng(seed)
    classes = np.arange(batch) % 8
    palette = rng.uniform(size=(8, 3)).astype(np.float32)
    text_codes = rng.normal(size=(8, _D)).astype(np.float32)
    images = np.tile(palette[classes][:, None, None, :], (1, 64, 64, 1))
    words = np.tile(text_codes[classes][:, None, :], (1, _T, 1))
    words += 0.05 * rng.normal(size=words.shape).astype(np.float32)
    mask = np.ones((batch, _T), np.float32)
    mask[:, 3:] = 0
    return {
        "image": tf.constant(images), "words": tf.constant(words), "word_mask": tf.constant(mask),
        "label": tf.constant(classes // 2, tf.int64),
        "words_2": tf.constant(words[::-1].copy()), "word_mask_2": tf.constant(mask),
        "image_2": tf.constant(images[::-1].copy()), "label_2": tf.constant(classes[::-1] // 2,
                                                                           tf.int64),
    }


def _model(**kwargs):
    encoder = dual_encoder.DualEncoder(image_size=64, embedding_dim=_D, joint_dim=16,
                                       image_width=4, text_hidden_dim=16)
    encoder.build_for_inputs(max_tokens=_T)
    model = dual_encoder_pretraining.DualEncoderPretraining(encoder, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    return model


def test_total_is_the_weighted_sum_of_the_terms():
    model = _model(caption_contrastive_weight=1.0, label_contrastive_weight=0.3)
    batch = _batch()
    losses = model.compute_losses(batch, training=False)
    image, text = model.encoder(batch["image"], batch["words"], batch["word_mask"],
                                training=False)
    image_2, text_2 = model.encoder(batch["image_2"], batch["words_2"], batch["word_mask_2"],
                                    training=False)
    word = (damsm.damsm_word_loss(image.regions, text.words, batch["word_mask"])
            + damsm.damsm_word_loss(image_2.regions, text_2.words, batch["word_mask_2"]))
    sentence = (damsm.damsm_sentence_loss(image.global_features, text.sentence)
                + damsm.damsm_sentence_loss(image_2.global_features, text_2.sentence))
    caption = nt_xent.nt_xent_loss(text.sentence, text_2.sentence, temperature=0.5)
    label = supcon.supervised_contrastive_loss(
        tf.concat([image.global_features, text.sentence, image_2.global_features,
                   text_2.sentence], 0),
        tf.concat([batch["label"]] * 2 + [batch["label_2"]] * 2, 0), temperature=0.1)
    np.testing.assert_allclose(losses["loss/damsm_word"], word, rtol=1e-5)
    np.testing.assert_allclose(losses["loss/damsm_sentence"], sentence, rtol=1e-5)
    np.testing.assert_allclose(losses["loss/caption_nt_xent"], caption, rtol=1e-5)
    np.testing.assert_allclose(losses["loss/label_supcon"], label, rtol=1e-5)
    np.testing.assert_allclose(losses["loss/total"], word + sentence + caption + 0.3 * label,
                               rtol=1e-5)


def test_plain_damsm_has_no_extra_terms():
    losses = _model().compute_losses(_batch(), training=False)
    assert "loss/caption_nt_xent" not in losses and "loss/label_supcon" not in losses
    np.testing.assert_allclose(losses["loss/total"],
                               losses["loss/damsm_word"] + losses["loss/damsm_sentence"],
                               rtol=1e-6)


def test_retrieval_accuracy_rises_above_chance():
    model = _model(caption_contrastive_weight=1.0)
    data = tf.data.Dataset.from_tensors(_batch()).repeat(60)
    first = model.evaluate(tf.data.Dataset.from_tensors(_batch()), return_dict=True, verbose=0)
    model.fit(data, epochs=1, verbose=0)
    last = model.evaluate(tf.data.Dataset.from_tensors(_batch()), return_dict=True, verbose=0)
    assert last["loss/total"] < first["loss/total"]
    assert last["retrieval/image_to_text_acc"] >= 0.75  # chance is 1/8
