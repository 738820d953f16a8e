"""Tests for xmcgan_tf.models.dual_encoder_pretraining."""

import keras
import numpy as np
import pytest
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
    # DAMSM in the AttnGAN form (the default) with same-class negatives dropped, per branch.
    word = (damsm.damsm_word_loss(image.regions, text.words, batch["word_mask"],
                                  labels=batch["label"])
            + damsm.damsm_word_loss(image_2.regions, text_2.words, batch["word_mask_2"],
                                    labels=batch["label_2"]))
    sentence = (damsm.damsm_sentence_loss(image.global_features, text.sentence,
                                          labels=batch["label"])
                + damsm.damsm_sentence_loss(image_2.global_features, text_2.sentence,
                                            labels=batch["label_2"]))
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


def _two_caption_batch(seed=0):
    """T2I_CL batch: every image with two distinct captions (`words`, `words_2`)."""
    batch = _batch(seed)
    rng = np.random.default_rng(seed + 100)
    words_2 = batch["words"].numpy() + 0.3 * rng.normal(size=batch["words"].shape)
    mask_2 = np.ones((_B, _T), np.float32)
    mask_2[:, 4:] = 0
    return {"image": batch["image"], "label": batch["label"],
            "words": batch["words"], "word_mask": batch["word_mask"],
            "words_2": tf.constant(words_2, tf.float32), "word_mask_2": tf.constant(mask_2)}


def _swap_captions(batch):
    swapped = dict(batch)
    swapped["words"], swapped["words_2"] = batch["words_2"], batch["words"]
    swapped["word_mask"], swapped["word_mask_2"] = batch["word_mask_2"], batch["word_mask"]
    return swapped


def test_t2icl_damsm_covers_both_captions():
    # As the released T2I_CL pretrain_DAMSM.py: w_loss0/1 + s_loss0/1 for each caption, + NT-Xent.
    model = _model(caption_contrastive_weight=1.0)
    batch = _two_caption_batch()
    losses = model.compute_losses(batch, training=False)
    image, text = model.encoder(batch["image"], batch["words"], batch["word_mask"])
    text_2 = model.encoder.text_encoder(batch["words_2"], batch["word_mask_2"])
    labels = batch["label"]
    word = [damsm.damsm_word_loss(image.regions, t.words, m, labels=labels)
            for t, m in ((text, batch["word_mask"]), (text_2, batch["word_mask_2"]))]
    sentence = [damsm.damsm_sentence_loss(image.global_features, t.sentence, labels=labels)
                for t in (text, text_2)]
    caption = nt_xent.nt_xent_loss(text.sentence, text_2.sentence, temperature=0.5)
    np.testing.assert_allclose(losses["loss/damsm_word"], sum(word), rtol=1e-5)
    np.testing.assert_allclose(losses["loss/damsm_sentence"], sum(sentence), rtol=1e-5)
    np.testing.assert_allclose(losses["loss/caption_nt_xent"], caption, rtol=1e-5)
    np.testing.assert_allclose(losses["loss/total"], sum(word) + sum(sentence) + caption,
                               rtol=1e-5)
    # Caption 1 alone contributes: the loss is not that of caption 0's DAMSM + NT-Xent.
    assert abs(float(losses["loss/total"]) - float(word[0] + sentence[0] + caption)) > 1e-3


def test_t2icl_loss_is_symmetric_in_the_two_captions():
    model = _model(caption_contrastive_weight=1.0)
    batch = _two_caption_batch(seed=1)
    losses = model.compute_losses(batch, training=False)
    swapped = model.compute_losses(_swap_captions(batch), training=False)
    for name in ("loss/total", "loss/damsm_word", "loss/damsm_sentence",
                 "loss/caption_nt_xent"):
        np.testing.assert_allclose(swapped[name], losses[name], rtol=1e-5, err_msg=name)
    # ...and the second caption's DAMSM terms depend on it.
    changed = dict(batch, words_2=batch["words_2"] + 1.0)
    other = model.compute_losses(changed, training=False)
    assert abs(float(other["loss/damsm_word"]) - float(losses["loss/damsm_word"])) > 1e-4
    assert abs(float(other["loss/damsm_sentence"])
               - float(losses["loss/damsm_sentence"])) > 1e-4


def test_damsm_form_and_class_masking_are_selectable():
    batch = _two_caption_batch(seed=2)
    default = _model(caption_contrastive_weight=1.0)
    assert default.damsm_form == "attngan" and default.mask_same_class
    weights = default.encoder.get_weights()

    def losses(**kwargs):
        model = _model(caption_contrastive_weight=1.0, **kwargs)
        model.encoder.set_weights(weights)
        return model.compute_losses(batch, training=False)

    attngan = default.compute_losses(batch, training=False)
    xmcgan = losses(damsm_form="xmcgan")
    unmasked = losses(mask_same_class=False)
    no_labels = default.compute_losses(dict(batch, label=-tf.ones_like(batch["label"])),
                                       training=False)
    image, text = default.encoder(batch["image"], batch["words"], batch["word_mask"])
    text_2 = default.encoder.text_encoder(batch["words_2"], batch["word_mask_2"])
    expected_xmcgan = sum(
        damsm.damsm_word_loss(image.regions, t.words, m, labels=batch["label"], form="xmcgan")
        for t, m in ((text, batch["word_mask"]), (text_2, batch["word_mask_2"])))
    np.testing.assert_allclose(xmcgan["loss/damsm_word"], expected_xmcgan, rtol=1e-5)
    assert abs(float(xmcgan["loss/damsm_word"]) - float(attngan["loss/damsm_word"])) > 1e-3
    # Labels pair up the 8 examples (classes // 2): masking drops those negatives.
    assert float(unmasked["loss/damsm_sentence"]) > float(attngan["loss/damsm_sentence"])
    np.testing.assert_allclose(no_labels["loss/total"], unmasked["loss/total"], rtol=1e-5)
    with pytest.raises(ValueError, match="attngan"):
        _model(damsm_form="attn_gan")


def test_plain_damsm_has_no_extra_terms():
    losses = _model().compute_losses(_batch(), training=False)
    assert "loss/caption_nt_xent" not in losses and "loss/label_supcon" not in losses
    np.testing.assert_allclose(losses["loss/total"],
                               losses["loss/damsm_word"] + losses["loss/damsm_sentence"],
                               rtol=1e-6)


def test_retrieval_accuracy_rises_above_chance():
    # T2I_CL (AttnGAN-form DAMSM on both captions + NT-Xent); one class per example, so no
    # negative is masked and every pair has to be told apart.
    model = _model(caption_contrastive_weight=1.0)
    batch = dict(_two_caption_batch(), label=tf.range(_B, dtype=tf.int64))
    data = tf.data.Dataset.from_tensors(batch).repeat(60)
    first = model.evaluate(tf.data.Dataset.from_tensors(batch), return_dict=True, verbose=0)
    model.fit(data, epochs=1, verbose=0)
    last = model.evaluate(tf.data.Dataset.from_tensors(batch), return_dict=True, verbose=0)
    assert last["loss/total"] < first["loss/total"]
    assert last["retrieval/image_to_text_acc"] >= 0.75  # chance is 1/8
