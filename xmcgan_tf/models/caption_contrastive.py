"""Caption-contrastive GAN stage (T2I_CL; Ye et al. 2021, https://arxiv.org/abs/2107.02423).

The generator draws one image from each of two distinct captions of the same real image, with
the same z. Every GAN and XMC-GAN term is summed over both branches (`two_caption_branches`),
and L_G gains

    λ_cap · NT-Xent(f(G(z, c)), f(G(z, c')); τ = 0.5),    λ_cap = 0.2,

where f is the frozen pretrained image encoder's global feature (SPEC §4). Gradients flow through
f into G; f's weights never change. Batches come from the `two_captions` pipeline variant.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf

from xmcgan_tf.losses import nt_xent
from xmcgan_tf.models import xmcgan
from xmcgan_tf.networks import dual_encoder as dual_encoder_lib

LOSS_NAME = "loss/g_caption_nt_xent"


def two_caption_branches(batch: Mapping[str, tf.Tensor]) -> list[xmcgan.Branch]:
    """Two branches of one image and one z: caption (`words`...) and caption' (`words_2`...)."""
    first = xmcgan.single_branch(batch)[0]
    second = first._replace(sentence=batch["sentence_2"], words=batch["words_2"],
                            word_mask=batch["word_mask_2"])
    return [first, second]


class CaptionContrastiveTerm:
    """NT-Xent between the frozen encoder's features of the fakes of the two captions.

    Args:
      encoder: the frozen pretrained DualEncoder; its global image features are f.
      weight: λ_cap (0.2).
      temperature: NT-Xent τ (0.5).
    """

    names = (LOSS_NAME,)

    def __init__(self, encoder: dual_encoder_lib.DualEncoder, *, weight: float = 0.2,
                 temperature: float = 0.5):
        self.encoder = encoder
        self.weight = float(weight)
        self.temperature = float(temperature)

    def __call__(self, branches: Sequence[xmcgan.BranchOutputs]) -> dict[str, tf.Tensor]:
        if len(branches) != 2:
            raise ValueError(f"the caption-contrastive term needs 2 branches (two captions of "
                             f"each image), got {len(branches)}; use two_caption_branches")
        first = self.encoder.encode_images(branches[0].fake_images)  # [B, K]
        second = self.encoder.encode_images(branches[1].fake_images)  # [B, K]
        return {LOSS_NAME: nt_xent.nt_xent_loss(first, second, temperature=self.temperature)}
