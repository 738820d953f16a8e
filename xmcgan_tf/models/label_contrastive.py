"""Label-guided supervised contrastive GAN stage (SCL; Liu et al., https://arxiv.org/abs/2202.13148).

Two parameter-sharing branches are fed pairs of examples that share a class label
(`label_pair_branches`, from the `label_pairs` pipeline variant). Every GAN and XMC-GAN term is
summed over both branches, and L_G gains

    λ_lab · SupCon({f(G(z, t)), g(t), f(G(z', t')), g(t')}, labels {y, y, y', y'}; τ),

with f, g the frozen pretrained dual encoder's image and text features (SPEC §5; τ = 0.1 and
λ_lab = 0.2 by default). Gradients flow through f into G; the encoder's weights never change.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf

from xmcgan_tf.losses import supcon
from xmcgan_tf.models import xmcgan
from xmcgan_tf.networks import dual_encoder as dual_encoder_lib

LOSS_NAME = "loss/g_label_supcon"


def label_pair_branches(batch: Mapping[str, tf.Tensor]) -> list[xmcgan.Branch]:
    """Branch 1 from the example, branch 2 from its same-label partner (`image_2`, `z_2`...)."""
    first = xmcgan.Branch(image=batch["image"], z=batch["z"], sentence=batch["sentence"],
                          words=batch["words"], word_mask=batch["word_mask"],
                          label=batch["label"], image_key=batch.get("image_key"))
    second = xmcgan.Branch(image=batch["image_2"], z=batch["z_2"], sentence=batch["sentence_2"],
                           words=batch["words_2"], word_mask=batch["word_mask_2"],
                           label=batch["label_2"], image_key=batch.get("image_key_2"))
    return [first, second]


class LabelContrastiveTerm:
    """SupCon over the frozen encoder's features of both fakes and both captions.

    Args:
      encoder: the frozen pretrained DualEncoder.
      weight: λ_lab (0.2).
      temperature: SupCon τ (0.1).
    """

    names = (LOSS_NAME,)

    def __init__(self, encoder: dual_encoder_lib.DualEncoder, *, weight: float = 0.2,
                 temperature: float = 0.1):
        self.encoder = encoder
        self.weight = float(weight)
        self.temperature = float(temperature)

    def __call__(self, branches: Sequence[xmcgan.BranchOutputs]) -> dict[str, tf.Tensor]:
        if len(branches) != 2 or any(b.inputs.label is None for b in branches):
            raise ValueError("the label-contrastive term needs 2 labelled branches (same-label "
                             "pairs); use label_pair_branches with the label_pairs pipeline")
        features, labels = [], []
        for branch in branches:
            features.append(self.encoder.encode_images(branch.fake_images))  # [B, K]
            features.append(self.encoder.encode_texts(branch.inputs.words,
                                                      branch.inputs.word_mask))  # [B, K]
            labels.extend([branch.inputs.label, branch.inputs.label])
        return {LOSS_NAME: supcon.supervised_contrastive_loss(
            tf.concat(features, axis=0), tf.concat(labels, axis=0),
            temperature=self.temperature)}
