"""Dual-encoder pretraining: DAMSM, plus T2I_CL's NT-Xent and SCL's SupCon (SPEC §4, §5).

    L = L_DAMSM_word + L_DAMSM_sent                                   (AttnGAN, both directions)
      + λ_cap · NT-Xent(sentence(caption), sentence(caption'))          (T2I_CL, two_captions data)
      + λ_lab · SupCon({image, text, image', text'}, labels)            (SCL, label_pairs data)

With label pairs the DAMSM terms are summed over both branches (the branches share parameters).
Batches come from `xmcgan_tf.data.input_pipeline.make_dataset` (`single`, `two_captions` or
`label_pairs`). Legend: B batch, T tokens, D BERT dimension, K joint dimension.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from xmcgan_tf.losses import contrastive
from xmcgan_tf.losses import damsm
from xmcgan_tf.losses import distribution
from xmcgan_tf.losses import nt_xent
from xmcgan_tf.losses import supcon
from xmcgan_tf.networks import dual_encoder as dual_encoder_lib


class DualEncoderPretraining(keras.Model):
    """Trains a `DualEncoder` with DAMSM and the optional caption / label contrastive terms.

    Args:
      encoder: the DualEncoder to train.
      gamma1: DAMSM attention sharpness over regions (4).
      gamma2: DAMSM word-match aggregation (5).
      gamma3: DAMSM logit scale (10).
      caption_contrastive_weight: λ_cap of the T2I_CL NT-Xent term (0 = off; paper 1). Needs
        `two_captions` batches.
      caption_temperature: NT-Xent τ (0.5).
      label_contrastive_weight: λ_lab of the SCL SupCon term (0 = off). Needs `label_pairs`
        batches.
      label_temperature: SupCon τ (0.1).
    """

    def __init__(self, encoder: dual_encoder_lib.DualEncoder, *, gamma1: float = 4.0,
                 gamma2: float = 5.0, gamma3: float = 10.0,
                 caption_contrastive_weight: float = 0.0, caption_temperature: float = 0.5,
                 label_contrastive_weight: float = 0.0, label_temperature: float = 0.1,
                 **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.gamma1 = gamma1
        self.gamma2 = gamma2
        self.gamma3 = gamma3
        self.caption_contrastive_weight = caption_contrastive_weight
        self.caption_temperature = caption_temperature
        self.label_contrastive_weight = label_contrastive_weight
        self.label_temperature = label_temperature
        names = ["loss/total", "loss/damsm_word", "loss/damsm_sentence",
                 "retrieval/image_to_text_acc"]
        if caption_contrastive_weight:
            names.append("loss/caption_nt_xent")
        if label_contrastive_weight:
            names.append("loss/label_supcon")
        self._trackers = {n: keras.metrics.Mean(name=n) for n in names}
        self.built = True

    @property
    def metrics(self) -> list:
        return list(self._trackers.values())

    def _damsm(self, images: tf.Tensor, words: tf.Tensor, word_mask: tf.Tensor,
               training: bool) -> tuple[dict, dual_encoder_lib.ImageFeatures,
                                        dual_encoder_lib.TextFeatures]:
        image_features, text_features = self.encoder(images, words, word_mask, training=training)
        losses = {
            "loss/damsm_word": damsm.damsm_word_loss(
                image_features.regions, text_features.words, word_mask,
                gamma1=self.gamma1, gamma2=self.gamma2, gamma3=self.gamma3),
            "loss/damsm_sentence": damsm.damsm_sentence_loss(
                image_features.global_features, text_features.sentence, gamma3=self.gamma3),
        }
        return losses, image_features, text_features

    def compute_losses(self, batch: dict, training: bool) -> dict[str, tf.Tensor]:
        """All loss terms and the retrieval accuracy of one per-replica batch."""
        losses, image_features, text_features = self._damsm(
            batch["image"], batch["words"], batch["word_mask"], training)
        total = losses["loss/damsm_word"] + losses["loss/damsm_sentence"]
        if self.caption_contrastive_weight:
            second = self.encoder.text_encoder(batch["words_2"], batch["word_mask_2"])
            losses["loss/caption_nt_xent"] = nt_xent.nt_xent_loss(
                text_features.sentence, second.sentence, temperature=self.caption_temperature)
            total += self.caption_contrastive_weight * losses["loss/caption_nt_xent"]
        if self.label_contrastive_weight:
            losses_2, image_features_2, text_features_2 = self._damsm(
                batch["image_2"], batch["words_2"], batch["word_mask_2"], training)
            for name, value in losses_2.items():
                losses[name] += value
                total += value
            features = tf.concat([image_features.global_features, text_features.sentence,
                                  image_features_2.global_features, text_features_2.sentence],
                                 axis=0)  # [4B, K]
            labels = tf.concat([batch["label"], batch["label"],
                                batch["label_2"], batch["label_2"]], axis=0)  # [4B]
            losses["loss/label_supcon"] = supcon.supervised_contrastive_loss(
                features, labels, temperature=self.label_temperature)
            total += self.label_contrastive_weight * losses["loss/label_supcon"]
        losses["loss/total"] = total
        losses["retrieval/image_to_text_acc"] = contrastive.contrastive_accuracy(
            image_features.global_features, text_features.sentence)
        return losses

    def train_step(self, batch: dict) -> dict[str, tf.Tensor]:
        variables = self.encoder.trainable_variables
        with tf.GradientTape() as tape:
            losses = self.compute_losses(batch, training=True)
            scaled = distribution.scale_for_replicas(losses["loss/total"])
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._update_trackers(losses)

    def test_step(self, batch: dict) -> dict[str, tf.Tensor]:
        return self._update_trackers(self.compute_losses(batch, training=False))

    def _update_trackers(self, losses: dict) -> dict[str, tf.Tensor]:
        for name, value in losses.items():
            self._trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self._trackers.items()}
