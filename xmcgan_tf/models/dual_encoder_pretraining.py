"""Dual-encoder pretraining: DAMSM, plus T2I_CL's NT-Xent and SCL's SupCon (SPEC §4, §5).

    L = Σ_views [L_DAMSM_word + L_DAMSM_sent]                        (AttnGAN, both directions)
      + λ_cap · NT-Xent(sentence(caption), sentence(caption'))          (T2I_CL, two_captions data)
      + λ_lab · SupCon({image, text, image', text'}, labels)            (SCL, label_pairs data)

Views: (image, caption) always; with label pairs also (image', caption') (the branches share
parameters); with two captions (T2I_CL) also (image, caption'), as the released T2I_CL
`pretrain_DAMSM.py` computes w_loss0/1 and s_loss0/1 for both captions. The logged
`loss/damsm_word` and `loss/damsm_sentence` are these sums over views.

DAMSM's word–region score has two forms (`damsm_form`, see `xmcgan_tf.losses.damsm`):
`attngan` (the released AttnGAN / T2I_CL code) and `xmcgan` (XMC-GAN's L_word score). With
`mask_same_class`, negatives whose `label` equals the positive's (both ≥ 0) are dropped, as the
released code does with CUB's class ids.

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

    Code vs paper (T2I_CL): the released `pretrain_DAMSM.py` feeds caption 0's sentence
    embedding to both sides of its NT-Xent (`sent_emb_2 = l2norm(sent_emb)`); here the two
    sides are the two distinct captions, as the paper (and SPEC §4) describe.

    Args:
      encoder: the DualEncoder to train.
      gamma1: DAMSM attention sharpness over regions (4).
      gamma2: DAMSM word-match aggregation (5).
      gamma3: DAMSM logit scale (10).
      damsm_form: `attngan` (released AttnGAN / T2I_CL word–region score, the default) or
        `xmcgan` (XMC-GAN's L_word score); see `xmcgan_tf.losses.damsm`.
      mask_same_class: drop DAMSM negatives whose `label` equals the positive's (both ≥ 0; −1
        never masks), as the released code does with class ids.
      caption_contrastive_weight: λ_cap of the T2I_CL NT-Xent term (0 = off; paper 1). Needs
        `two_captions` batches (or `label_pairs`, whose caption' belongs to image'); with
        two-caption batches the DAMSM terms of (image, caption') are added too.
      caption_temperature: NT-Xent τ (0.5).
      label_contrastive_weight: λ_lab of the SCL SupCon term (0 = off). Needs `label_pairs`
        batches.
      label_temperature: SupCon τ (0.1).
    """

    def __init__(self, encoder: dual_encoder_lib.DualEncoder, *, gamma1: float = 4.0,
                 gamma2: float = 5.0, gamma3: float = 10.0,
                 damsm_form: str = damsm.ATTNGAN_FORM, mask_same_class: bool = True,
                 caption_contrastive_weight: float = 0.0, caption_temperature: float = 0.5,
                 label_contrastive_weight: float = 0.0, label_temperature: float = 0.1,
                 **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.gamma1 = gamma1
        self.gamma2 = gamma2
        self.gamma3 = gamma3
        self.damsm_form = damsm.check_form(damsm_form)
        self.mask_same_class = bool(mask_same_class)
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

    def _damsm(self, image_features: dual_encoder_lib.ImageFeatures,
               text_features: dual_encoder_lib.TextFeatures, word_mask: tf.Tensor,
               labels: tf.Tensor | None) -> dict[str, tf.Tensor]:
        """DAMSM word and sentence losses of one (images, captions) view."""
        labels = labels if self.mask_same_class else None
        return {
            "loss/damsm_word": damsm.damsm_word_loss(
                image_features.regions, text_features.words, word_mask,
                gamma1=self.gamma1, gamma2=self.gamma2, gamma3=self.gamma3, labels=labels,
                form=self.damsm_form),
            "loss/damsm_sentence": damsm.damsm_sentence_loss(
                image_features.global_features, text_features.sentence, gamma3=self.gamma3,
                labels=labels),
        }

    def compute_losses(self, batch: dict, training: bool) -> dict[str, tf.Tensor]:
        """All loss terms and the retrieval accuracy of one per-replica batch."""
        image_features, text_features = self.encoder(
            batch["image"], batch["words"], batch["word_mask"], training=training)
        losses = self._damsm(image_features, text_features, batch["word_mask"],
                             batch.get("label"))
        second = None  # (image features, text features) of the second view
        if self.label_contrastive_weight:
            # SCL: another image of the same label with its own caption.
            second = self.encoder(batch["image_2"], batch["words_2"], batch["word_mask_2"],
                                  training=training)
            second_labels = batch.get("label_2")
        elif self.caption_contrastive_weight:
            # T2I_CL: the same image with its second caption; the image encoder is
            # deterministic, so its features are reused.
            second = (image_features, self.encoder.text_encoder(batch["words_2"],
                                                                batch["word_mask_2"]))
            second_labels = batch.get("label")
        if second is not None:
            for name, value in self._damsm(second[0], second[1], batch["word_mask_2"],
                                           second_labels).items():
                losses[name] += value
        total = losses["loss/damsm_word"] + losses["loss/damsm_sentence"]
        if self.caption_contrastive_weight:
            losses["loss/caption_nt_xent"] = nt_xent.nt_xent_loss(
                text_features.sentence, second[1].sentence, temperature=self.caption_temperature)
            total += self.caption_contrastive_weight * losses["loss/caption_nt_xent"]
        if self.label_contrastive_weight:
            features = tf.concat([image_features.global_features, text_features.sentence,
                                  second[0].global_features, second[1].sentence],
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
