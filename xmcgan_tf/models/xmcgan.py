"""XMC-GAN: the cross-modal contrastive GAN update (SPEC §3; Zhang et al. 2021,
https://arxiv.org/abs/2101.04702).

    L_D = hinge_D + λ1 · L_sent(real) + λ2 · L_word(real) [+ λ_mis · hinge_mis]
          [+ λ_cf · hinge_cf] [+ γ/2 · R1]
    L_G = hinge_G + λ1 · L_sent(fake) + λ2 · L_word(fake) + λ3 · (L_img^D + L_img^enc)
          + Σ_extra weight · term

With an `augmentation` T (DiffAugment), D sees T(x) in place of every real and fake image x,
in both updates.

The discriminator never trains its contrastive heads on fakes: the fake-side contrastive terms
only enter L_G. Each training step takes `d_steps_per_g_step` slices of the per-replica batch,
one per update (each slice is an update's own batch): every slice but the last is a
discriminator-only update (`_discriminator_step`, which leaves G's batch-norm statistics as
they were), the last one is a joint update (`_joint_step`): one forward pass, D's gradient from
L_D and G's from L_G out of one tape, both optimizers stepping together. The EMA generator then
follows G.

The step is a single-replica view (STYLE rule 5): every loss is a per-replica mean, scaled once
by `distribution.scale_for_replicas` inside the tape.

Extension points (used by caption- and label-contrastive variants):
- `branch_fn` turns a batch into one or more `Branch`es (image, z and caption the generator is
  conditioned on). Every GAN and XMC-GAN term is summed over the branches.
- `extra_generator_losses` are `GeneratorLossTerm`s called with the `BranchOutputs` of all
  branches; their weighted losses are added to L_G and reported under their own names.

Legend: B per-replica batch (of one slice), S image size, T tokens, D text dimension,
C discriminator channels, R regions.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple, Protocol, Sequence

import keras
import tensorflow as tf

from xmcgan_tf.losses import adversarial
from xmcgan_tf.losses import contrastive
from xmcgan_tf.losses import distribution
from xmcgan_tf.losses import word_contrastive
from xmcgan_tf.models import ema as ema_lib
from xmcgan_tf.networks import discriminator as discriminator_lib
from xmcgan_tf.networks import generator as generator_lib

D_LOSS_NAMES = ("loss/d_total", "loss/d_hinge", "loss/d_sentence", "loss/d_word",
                "loss/d_mismatch", "loss/d_counterfactual", "loss/d_r1")
G_LOSS_NAMES = ("loss/g_total", "loss/g_hinge", "loss/g_sentence", "loss/g_word",
                "loss/g_image_d", "loss/g_image_enc")
SCORE_NAMES = ("scores/real", "scores/fake", "contrastive/sentence_acc")


class Branch(NamedTuple):
    """What the generator is conditioned on, with the matching real images.

    Attributes:
      image: [B, S, S, 3] float32 in [0, 1], real images described by the caption.
      z: [B, z_dim] float32 noise.
      sentence: [B, D] float32 sentence embeddings.
      words: [B, T, D] float32 word embeddings.
      word_mask: [B, T] float32, 1 on real tokens.
      label: [B] int64 class labels, for terms that need them (SCL); None otherwise.
      image_key: [B] int64 image identities (`input_pipeline.image_key`), which keep the
        caption bank's captions of an image from being its negatives; None: no exclusion.
      counterfactual_sentence: [B, D] float32 sentence embeddings of false captions, each
        differing from the caption in one attribute (for hinge_cf); None: none.
    """

    image: tf.Tensor
    z: tf.Tensor
    sentence: tf.Tensor
    words: tf.Tensor
    word_mask: tf.Tensor
    label: tf.Tensor | None = None
    image_key: tf.Tensor | None = None
    counterfactual_sentence: tf.Tensor | None = None


class BranchOutputs(NamedTuple):
    """One branch after the forward pass.

    Attributes:
      inputs: the Branch.
      fake_images: [B, S, S, 3] G(z, caption), in [0, 1].
      real: DiscriminatorOutputs of (inputs.image, inputs.sentence).
      fake: DiscriminatorOutputs of (fake_images, inputs.sentence).
      counterfactual_projection: [B, C] D's sentence projection e of
        inputs.counterfactual_sentence, when hinge_cf is on; None otherwise.
      real_gradient_penalty: float32 scalar R1 = E_real[‖∇_x D(x, s)‖²], the squared norm of
        D's logit gradient with respect to the real images it saw (after the augmentation),
        when the R1 penalty is on; None otherwise.
    """

    inputs: Branch
    fake_images: tf.Tensor
    real: discriminator_lib.DiscriminatorOutputs
    fake: discriminator_lib.DiscriminatorOutputs
    counterfactual_projection: tf.Tensor | None = None
    real_gradient_penalty: tf.Tensor | None = None


class GeneratorLossTerm(Protocol):
    """An extra generator loss: L_G += weight · Σ (values of the returned dict).

    Attributes:
      weight: the term's weight in L_G.
      names: the names of the losses the term returns (reported as they are).
    """

    weight: float
    names: Sequence[str]

    def __call__(self, branches: Sequence[BranchOutputs]) -> Mapping[str, tf.Tensor]:
        """Returns named float32 scalar losses (per-replica means), e.g. {"loss/g_nt_xent": x}."""


BranchFn = Callable[[Mapping[str, tf.Tensor]], Sequence[Branch]]


def single_branch(batch: Mapping[str, tf.Tensor]) -> list[Branch]:
    """The default `branch_fn`: one branch from `image`, `z`, `sentence`, `words`, `word_mask`
    (and `image_key`, `counterfactual_sentence` when the batch has them)."""
    return [Branch(image=batch["image"], z=batch["z"], sentence=batch["sentence"],
                   words=batch["words"], word_mask=batch["word_mask"],
                   image_key=batch.get("image_key"),
                   counterfactual_sentence=batch.get("counterfactual_sentence"))]


def split_batch(batch: Mapping[str, tf.Tensor], num_slices: int) -> list[dict[str, tf.Tensor]]:
    """Splits every tensor of a batch into `num_slices` equal slices along the batch axis.

    Raises:
      ValueError: the static batch size is not divisible by `num_slices`.
    """
    for name, value in batch.items():
        size = value.shape[0]
        if size is not None and size % num_slices:
            raise ValueError(f"per-replica batch size {size} (of {name!r}) is not divisible by "
                             f"d_steps_per_g_step={num_slices}")
    slices = [dict() for _ in range(num_slices)]
    for name, value in batch.items():
        for piece, part in zip(slices, tf.split(value, num_slices, axis=0)):
            piece[name] = part
    return slices


def _sum(values: Sequence[tf.Tensor]) -> tf.Tensor:
    return tf.add_n(list(values)) if len(values) > 1 else values[0]


def _batch_size(x: tf.Tensor) -> int | tf.Tensor:
    """Static batch size when known, else the dynamic one."""
    return x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]


def _split_real_fake(outputs: discriminator_lib.DiscriminatorOutputs, num_real: int):
    """Splits D outputs of concat([real, fake]) into the real and the fake halves (both keep
    the caption bank's projection)."""
    paired = ("logits", "global_features", "region_features", "sentence_projection")
    real = outputs._replace(**{name: getattr(outputs, name)[:num_real] for name in paired})
    fake = outputs._replace(**{name: getattr(outputs, name)[num_real:] for name in paired})
    return real, fake


class XMCGAN(keras.Model):
    """Generator G, discriminator D and EMA generator G_ema with the XMC-GAN update.

    Call `compile(d_optimizer=..., g_optimizer=...)` inside the distribution strategy's scope,
    then train with `fit` or a custom loop calling `train_step` under `strategy.run`.

    Args:
      generator: the Generator G (built or not).
      discriminator: the Discriminator D (built or not).
      max_tokens: T, used to build the networks.
      sentence_weight: λ1 of L_sent (D and G). 0 skips the term.
      word_weight: λ2 of L_word (D and G). 0 skips the term.
      image_weight: λ3 of L_img^D + L_img^enc (G). 0 skips both.
      sentence_temperature: τ of L_sent.
      image_temperature: τ of L_img^D and L_img^enc.
      gamma1: L_word attention sharpness over regions.
      gamma2: L_word word soft-maximum sharpness.
      gamma3: L_word logit scale.
      global_negatives: contrastive negatives from all replicas instead of the local batch.
      d_steps_per_g_step: slices per step; all but the last are D-only updates.
      ema_decay: EMA decay of G_ema.
      ema_rampup: ramp the EMA decay up from 0.1 as (1 + t) / (10 + t) over G's first updates
        (off in the paper; useful for short runs).
      image_encoder: frozen image encoder for L_img^enc ([B, S, S, 3] in [0, 1] -> [B, K]
        float32), or None to leave L_img^enc out.
      branch_fn: batch -> branches (default `single_branch`).
      extra_generator_losses: GeneratorLossTerms added to L_G.
      negative_sentences: optional [N, D] caption bank (`input_pipeline.caption_bank`): extra
        negatives of every image→text row of L_sent, for D and G alike.
      negative_image_keys: [N] int64 image keys of the bank's captions (required with it).
      mismatch_weight: λ_mis of hinge_mis = E[max(0, 1 + D(x, hardest bank caption))]
        (`adversarial.hardest_mismatch_logits`; needs the caption bank). 0, the released
        update, leaves it out.
      counterfactual_weight: λ_cf of hinge_cf = E[max(0, 1 + D(x, s'))], s' the batch's
        `counterfactual_sentence` (a false caption one attribute away from the image's own,
        `adversarial.counterfactual_logits`; needs
        `train_config.DataConfig.counterfactual_captions`). 0, the released update, leaves
        it out.
      counterfactual_negatives: the counterfactual captions are also negatives of every
        image→text row of L_sent, for D and G alike (each image is scored against the B
        counterfactuals of the batch, its own the hardest); needs `counterfactual_weight`.
      augmentation: differentiable augmentation of every image D sees, real and fake, in both
        updates ([B, S, S, 3] -> [B, S, S, 3] in [0, 1], e.g.
        `differentiable_augmentation.DifferentiableAugmentation`); None, the released update,
        feeds D the images as they are.
      r1_weight: γ of the R1 penalty γ/2 · E_real[‖∇_x D(x, s)‖²] in L_D (Mescheder et al.
        2018, https://arxiv.org/abs/1801.04406; StyleGAN2's regulariser of D), taken on the
        real images as D sees them (after the augmentation). 0, the released update, leaves
        it out.
      **kwargs: `keras.Model` arguments (name).
    """

    def __init__(self, generator: generator_lib.Generator,
                 discriminator: discriminator_lib.Discriminator, *, max_tokens: int,
                 sentence_weight: float = 1.0, word_weight: float = 1.0,
                 image_weight: float = 1.0, sentence_temperature: float = 0.1,
                 image_temperature: float = 0.1, gamma1: float = 5.0, gamma2: float = 5.0,
                 gamma3: float = 50.0, global_negatives: bool = False,
                 d_steps_per_g_step: int = 2, ema_decay: float = 0.999,
                 ema_rampup: bool = False, image_encoder: keras.layers.Layer | None = None,
                 branch_fn: BranchFn = single_branch,
                 extra_generator_losses: Sequence[GeneratorLossTerm] = (),
                 negative_sentences: tf.Tensor | None = None,
                 negative_image_keys: tf.Tensor | None = None, mismatch_weight: float = 0.0,
                 counterfactual_weight: float = 0.0, counterfactual_negatives: bool = False,
                 augmentation: Callable[[tf.Tensor], tf.Tensor] | None = None,
                 r1_weight: float = 0.0, **kwargs):
        kwargs.setdefault("name", "xmcgan")
        super().__init__(**kwargs)
        if d_steps_per_g_step < 1:
            raise ValueError(f"d_steps_per_g_step must be >= 1, got {d_steps_per_g_step}")
        self.generator = generator
        self.discriminator = discriminator
        self.max_tokens = int(max_tokens)
        self.sentence_weight = float(sentence_weight)
        self.word_weight = float(word_weight)
        self.image_weight = float(image_weight)
        self.sentence_temperature = float(sentence_temperature)
        self.image_temperature = float(image_temperature)
        self.gamma1, self.gamma2, self.gamma3 = float(gamma1), float(gamma2), float(gamma3)
        self.global_negatives = bool(global_negatives)
        self.d_steps_per_g_step = int(d_steps_per_g_step)
        self.image_encoder = image_encoder
        self.branch_fn = branch_fn
        self.extra_generator_losses = list(extra_generator_losses)
        if (negative_sentences is None) != (negative_image_keys is None):
            raise ValueError("negative_sentences and negative_image_keys go together")
        self.negative_sentences = (None if negative_sentences is None else
                                   tf.constant(negative_sentences, tf.float32))  # [N, D]
        self.negative_image_keys = (None if negative_image_keys is None else
                                    tf.constant(negative_image_keys, tf.int64))  # [N]
        self.mismatch_weight = float(mismatch_weight)
        if self.mismatch_weight and self.negative_sentences is None:
            raise ValueError("mismatch_weight > 0 needs a caption bank (negative_sentences; "
                             "train_config.DataConfig.negative_captions > 0)")
        self.counterfactual_weight = float(counterfactual_weight)
        self.counterfactual_negatives = bool(counterfactual_negatives)
        if self.counterfactual_negatives and not self.counterfactual_weight:
            raise ValueError("counterfactual_negatives needs counterfactual_weight > 0")
        self.augmentation = augmentation
        if r1_weight < 0:
            raise ValueError(f"r1_weight must be >= 0, got {r1_weight}")
        self.r1_weight = float(r1_weight)

        config = generator.get_config()
        self.image_size = int(config["image_size"])
        inputs = generator.example_inputs(self.max_tokens)
        generator(*inputs, training=False)
        discriminator(tf.zeros([1, self.image_size, self.image_size, 3]), inputs[1],
                      training=False)
        self.generator_ema = generator_lib.Generator.from_config(config)
        self.generator_ema(*inputs, training=False)
        self.ema = ema_lib.ExponentialMovingAverage(generator, self.generator_ema, ema_decay,
                                                  rampup=ema_rampup)
        self.ema.initialize()

        self._trackers = {name: keras.metrics.Mean(name=name)
                          for name in self._reported_names()}
        self.d_optimizer = None
        self.g_optimizer = None
        self.built = True

    def _reported_names(self) -> list[str]:
        skipped = set()
        if not self.sentence_weight:
            skipped |= {"loss/d_sentence", "loss/g_sentence"}
        if not self.word_weight:
            skipped |= {"loss/d_word", "loss/g_word"}
        if not self.mismatch_weight:
            skipped.add("loss/d_mismatch")
        if not self.counterfactual_weight:
            skipped.add("loss/d_counterfactual")
        if not self.r1_weight:
            skipped.add("loss/d_r1")
        if not self.image_weight:
            skipped |= {"loss/g_image_d", "loss/g_image_enc"}
        if self.image_encoder is None:
            skipped.add("loss/g_image_enc")
        names = [n for n in D_LOSS_NAMES + G_LOSS_NAMES + SCORE_NAMES if n not in skipped]
        for term in self.extra_generator_losses:
            names.extend(n for n in term.names if n not in names)
        return names

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self._trackers.values())

    def compile(self, d_optimizer: keras.optimizers.Optimizer,
                g_optimizer: keras.optimizers.Optimizer, **kwargs) -> None:
        """Sets and builds both optimizers (call inside the strategy scope).

        Args:
          d_optimizer: optimizer of D's trainable weights.
          g_optimizer: optimizer of G's trainable weights.
          **kwargs: `keras.Model.compile` arguments (`jit_compile`, `run_eagerly`).
        """
        super().compile(optimizer=None, **kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        # Built eagerly, in the caller's strategy scope: lazily built optimizers fail under
        # MirroredStrategy.
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)

    # Forward pass.

    def _generate(self, branch: Branch, training: bool) -> tf.Tensor:
        return self.generator(branch.z, branch.sentence, branch.words, branch.word_mask,
                              training=training)

    def _discriminate(self, branch: Branch, fake_images: tf.Tensor,
                      training: bool) -> BranchOutputs:
        """D on real and fake images in one concatenated pass (the caption bank and the
        counterfactual captions projected in the same call), after the augmentation when there
        is one."""
        images = tf.concat([branch.image, tf.cast(fake_images, branch.image.dtype)], axis=0)
        if self.augmentation is not None:
            images = self.augmentation(images)
        sentences = tf.concat([branch.sentence, branch.sentence], axis=0)  # [2B, D]
        negatives = self.negative_sentences  # [N, D] or None
        counterfactuals = branch.counterfactual_sentence if self.counterfactual_weight else None
        if counterfactuals is not None:
            negatives = (counterfactuals if negatives is None else
                         tf.concat([negatives, tf.cast(counterfactuals, negatives.dtype)], 0))
        num_real = _batch_size(branch.image)
        # The input tape records only while the R1 penalty is on.
        with tf.GradientTape(watch_accessed_variables=False) as input_tape:
            if self.r1_weight:
                input_tape.watch(images)
            outputs = self.discriminator(images, sentences, training=training,
                                         negative_sentences=negatives)
        real_gradient_penalty = None
        if self.r1_weight:
            # D scores each image on its own: back-propagating 1 from every real logit (0 from
            # the fakes) gives each real image the gradient of its own logit.
            seed = tf.concat([tf.ones([num_real]), tf.zeros_like(outputs.logits[num_real:])], 0)
            gradients = input_tape.gradient(outputs.logits, images, output_gradients=seed)
            real_gradient_penalty = tf.reduce_mean(tf.reduce_sum(
                tf.square(tf.cast(gradients[:num_real], tf.float32)), axis=[1, 2, 3]))
        del input_tape
        counterfactual_projection = None
        if counterfactuals is not None:
            num_bank = 0 if self.negative_sentences is None else self.negative_sentences.shape[0]
            counterfactual_projection = outputs.negative_projection[num_bank:]  # [B, C]
            outputs = outputs._replace(
                negative_projection=outputs.negative_projection[:num_bank])
        real, fake = _split_real_fake(outputs, num_real)
        return BranchOutputs(inputs=branch, fake_images=fake_images, real=real, fake=fake,
                             counterfactual_projection=counterfactual_projection,
                             real_gradient_penalty=real_gradient_penalty)

    # Losses (per-replica means; summed over branches).

    def discriminator_loss(self, outputs: Sequence[BranchOutputs]
                           ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """L_D = hinge_D + λ1 · L_sent(real) + λ2 · L_word(real) [+ λ_mis · hinge_mis]
        [+ λ_cf · hinge_cf] [+ γ/2 · R1], summed over branches.

        Returns:
          (L_D float32 scalar, {name: float32 scalar} of every term, L_D and the scores).
        """
        terms = {"loss/d_hinge": _sum([adversarial.hinge_discriminator_loss(
            o.real.logits, o.fake.logits) for o in outputs])}
        total = terms["loss/d_hinge"]
        if self.sentence_weight:
            terms["loss/d_sentence"] = _sum([self._sentence_loss(o.real, o)
                                             for o in outputs])
            total += self.sentence_weight * terms["loss/d_sentence"]
        if self.word_weight:
            terms["loss/d_word"] = _sum([self._word_loss(o.real.region_features, o.inputs)
                                         for o in outputs])
            total += self.word_weight * terms["loss/d_word"]
        if self.mismatch_weight:
            terms["loss/d_mismatch"] = _sum([adversarial.mismatch_hinge_loss(
                adversarial.hardest_mismatch_logits(
                    o.real.logits, o.real.global_features, o.real.sentence_projection,
                    o.real.negative_projection, self._bank_excluded(o.inputs)))
                for o in outputs])
            total += self.mismatch_weight * terms["loss/d_mismatch"]
        if self.counterfactual_weight:
            if any(o.counterfactual_projection is None for o in outputs):
                raise ValueError("counterfactual_weight > 0 needs counterfactual captions in "
                                 "the batch (train_config.DataConfig.counterfactual_captions)")
            terms["loss/d_counterfactual"] = _sum([adversarial.mismatch_hinge_loss(
                adversarial.counterfactual_logits(
                    o.real.logits, o.real.global_features, o.real.sentence_projection,
                    o.counterfactual_projection))
                for o in outputs])
            total += self.counterfactual_weight * terms["loss/d_counterfactual"]
        if self.r1_weight:
            terms["loss/d_r1"] = _sum([o.real_gradient_penalty for o in outputs])
            total += 0.5 * self.r1_weight * terms["loss/d_r1"]
        terms["loss/d_total"] = total
        terms["scores/real"] = _sum([tf.reduce_mean(tf.cast(o.real.logits, tf.float32))
                                     for o in outputs]) / len(outputs)
        terms["scores/fake"] = _sum([tf.reduce_mean(tf.cast(o.fake.logits, tf.float32))
                                     for o in outputs]) / len(outputs)
        terms["contrastive/sentence_acc"] = _sum([contrastive.contrastive_accuracy(
            o.real.global_features, o.real.sentence_projection) for o in outputs]) / len(outputs)
        return total, terms

    def generator_loss(self, outputs: Sequence[BranchOutputs]
                       ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """L_G = hinge_G + λ1 · L_sent(fake) + λ2 · L_word(fake) + λ3 · (L_img^D + L_img^enc)
        + Σ extra, summed over branches.

        Returns:
          (L_G float32 scalar, {name: float32 scalar} of every term and L_G).
        """
        terms = {"loss/g_hinge": _sum([adversarial.hinge_generator_loss(o.fake.logits)
                                       for o in outputs])}
        total = terms["loss/g_hinge"]
        if self.sentence_weight:
            terms["loss/g_sentence"] = _sum([self._sentence_loss(o.fake, o)
                                             for o in outputs])
            total += self.sentence_weight * terms["loss/g_sentence"]
        if self.word_weight:
            terms["loss/g_word"] = _sum([self._word_loss(o.fake.region_features, o.inputs)
                                         for o in outputs])
            total += self.word_weight * terms["loss/g_word"]
        if self.image_weight:
            terms["loss/g_image_d"] = _sum([contrastive.image_contrastive_loss(
                o.fake.global_features, o.real.global_features,
                temperature=self.image_temperature, global_negatives=self.global_negatives)
                for o in outputs])
            image_terms = terms["loss/g_image_d"]
            if self.image_encoder is not None:
                terms["loss/g_image_enc"] = _sum([self._encoder_image_loss(o) for o in outputs])
                image_terms += terms["loss/g_image_enc"]
            total += self.image_weight * image_terms
        for term in self.extra_generator_losses:
            values = dict(term(outputs))
            terms.update(values)
            total += term.weight * _sum(list(values.values()))
        terms["loss/g_total"] = total
        return total, terms

    def _sentence_loss(self, images: discriminator_lib.DiscriminatorOutputs,
                       output: BranchOutputs) -> tf.Tensor:
        """L_sent of real or fake images, with the caption bank's and the counterfactual
        captions' negatives when there are."""
        negatives = excluded = None
        if self.negative_sentences is not None:
            negatives = images.negative_projection  # [N, C]
            excluded = self._bank_excluded(output.inputs)
        if self.counterfactual_negatives:
            counterfactuals = output.counterfactual_projection  # [B, C]
            if negatives is None:
                negatives = counterfactuals
            else:
                negatives = tf.concat([negatives, counterfactuals], axis=0)  # [N + B, C]
                if excluded is not None:
                    excluded = tf.concat([excluded, tf.zeros(
                        [tf.shape(excluded)[0], tf.shape(counterfactuals)[0]], tf.bool)], 1)
        return contrastive.sentence_contrastive_loss(
            images.global_features, images.sentence_projection,
            temperature=self.sentence_temperature, global_negatives=self.global_negatives,
            negative_sentence_features=negatives, negative_excluded=excluded)

    def _bank_excluded(self, branch: Branch) -> tf.Tensor | None:
        """[B, N] bool: bank caption m describes image n (None without image keys)."""
        if branch.image_key is None:
            return None
        return tf.equal(branch.image_key[:, None], self.negative_image_keys[None, :])

    def _word_loss(self, regions: tf.Tensor, branch: Branch) -> tf.Tensor:
        return word_contrastive.word_contrastive_loss(
            regions, branch.words, branch.word_mask, gamma1=self.gamma1, gamma2=self.gamma2,
            gamma3=self.gamma3, global_negatives=self.global_negatives)

    def _encoder_image_loss(self, output: BranchOutputs) -> tf.Tensor:
        """L_img^enc on the frozen encoder's features of the fake and real images."""
        num_real = _batch_size(output.inputs.image)
        features = self.image_encoder(tf.concat(
            [tf.cast(output.fake_images, output.inputs.image.dtype), output.inputs.image],
            axis=0))  # [2B, K]
        real_features = tf.stop_gradient(features[num_real:])
        return contrastive.image_contrastive_loss(
            features[:num_real], real_features, temperature=self.image_temperature,
            global_negatives=self.global_negatives)

    # The update.

    def _discriminator_step(self, half_batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """D-only update on one slice; fakes from G in training mode, outside the tape.

        G runs with batch statistics, but its moving statistics are put back afterwards: the
        released `train_d` discards G's new batch-norm state, so only the joint update moves it.
        """
        branches = self.branch_fn(half_batch)
        statistics = self.generator.non_trainable_variables
        kept = [tf.identity(v.value) for v in statistics]
        fakes = [self._generate(b, training=True) for b in branches]
        with tf.control_dependencies(fakes):
            for variable, value in zip(statistics, kept):
                variable.assign(value)
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            outputs = [self._discriminate(b, f, training=True) for b, f in zip(branches, fakes)]
            d_total, terms = self.discriminator_loss(outputs)
            scaled = distribution.scale_for_replicas(d_total)
        gradients = tape.gradient(scaled, variables)
        self.d_optimizer.apply_gradients(zip(gradients, variables))
        return terms

    def _joint_step(self, half_batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """One forward pass; D steps on L_D and G on L_G, from one tape, together."""
        branches = self.branch_fn(half_batch)
        d_variables = self.discriminator.trainable_variables
        g_variables = self.generator.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            outputs = [self._discriminate(b, self._generate(b, training=True), training=True)
                       for b in branches]
            d_total, d_terms = self.discriminator_loss(outputs)
            g_total, g_terms = self.generator_loss(outputs)
            d_scaled = distribution.scale_for_replicas(d_total)
            g_scaled = distribution.scale_for_replicas(g_total)
        d_gradients = tape.gradient(d_scaled, d_variables)
        g_gradients = tape.gradient(g_scaled, g_variables)
        del tape
        self.d_optimizer.apply_gradients(zip(d_gradients, d_variables))
        self.g_optimizer.apply_gradients(zip(g_gradients, g_variables))
        return {**d_terms, **g_terms}

    def train_step(self, batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """One XMC-GAN step on a per-replica batch (a replica's view under `strategy.run`).

        Args:
          batch: dict from `input_pipeline.make_dataset` (numeric entries; string entries are
            ignored); the batch size must be divisible by `d_steps_per_g_step`.

        Returns:
          {name: float32 scalar}: the trackers' means since their last reset. The D terms
          average over every D update of the step, the G terms come from the joint update.
        """
        batch = {k: v for k, v in batch.items() if v.dtype != tf.string}
        slices = split_batch(batch, self.d_steps_per_g_step)
        results = [self._discriminator_step(s) for s in slices[:-1]]
        results.append(self._joint_step(slices[-1]))
        self.ema.update(step=self.g_optimizer.iterations)
        for terms in results:
            for name, value in terms.items():
                if name not in self._trackers:
                    raise KeyError(f"loss {name!r} is not among the reported names "
                                   f"{sorted(self._trackers)}; list it in the term's `names`")
                self._trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self._trackers.items()}

    def sample(self, batch: Mapping[str, tf.Tensor], use_ema: bool = True) -> tf.Tensor:
        """Images of the batch's captions and z from G_ema (or G), in inference mode.

        Args:
          batch: dict with `z` [B, z_dim], `sentence` [B, D], `words` [B, T, D],
            `word_mask` [B, T] float32.
          use_ema: G_ema (True) or G.

        Returns:
          [B, S, S, 3] float32 in [0, 1].
        """
        generator = self.generator_ema if use_ema else self.generator
        images = generator(batch["z"], batch["sentence"], batch["words"], batch["word_mask"],
                           training=False)
        return tf.cast(images, tf.float32)
