"""Tests of xmcgan_tf.models.xmcgan: L_D / L_G assembly, the D-only and joint updates, EMA,
branches and extra generator terms (tiny 64 px networks of width 4)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.losses import numpy_reference
from xmcgan_tf.models import xmcgan
from xmcgan_tf.networks import discriminator as discriminator_lib
from xmcgan_tf.networks import generator as generator_lib

B, T, D, Z, S = 4, 5, 16, 8, 64
WEIGHTS = dict(sentence_weight=0.5, word_weight=2.0, image_weight=0.25)


def _networks(seed: int = 0):
    keras.utils.set_random_seed(seed)
    generator = generator_lib.Generator(image_size=S, gf_dim=4, z_dim=Z, embedding_dim=D)
    discriminator = discriminator_lib.Discriminator(image_size=S, df_dim=4, embedding_dim=D)
    return generator, discriminator


def _batch(seed: int = 0, size: int = B) -> dict:
    rng = np.random.default_rng(seed)
    num_words = rng.integers(2, T + 1, size=size)
    return {
        "image": tf.constant(rng.uniform(size=[size, S, S, 3]), tf.float32),
        "z": tf.constant(rng.normal(size=[size, Z]), tf.float32),
        "sentence": tf.constant(rng.normal(size=[size, D]), tf.float32),
        "words": tf.constant(rng.normal(size=[size, T, D]), tf.float32),
        "word_mask": tf.constant(np.arange(T)[None] < num_words[:, None], tf.float32),
        "caption": tf.constant(["a caption"] * size),
        "label": tf.zeros([size], tf.int64),
    }


def _outputs(seed: int, batch: dict) -> xmcgan.BranchOutputs:
    """Hand-made BranchOutputs with random features (C = 6, R = 4)."""
    rng = np.random.default_rng(seed)

    def d_outputs():
        return discriminator_lib.DiscriminatorOutputs(
            logits=tf.constant(rng.normal(size=[B]), tf.float32),
            global_features=tf.constant(rng.normal(size=[B, 6]), tf.float32),
            region_features=tf.constant(rng.normal(size=[B, 4, D]), tf.float32),
            sentence_projection=tf.constant(rng.normal(size=[B, 6]), tf.float32),
            negative_projection=tf.zeros([0, 6]))

    return xmcgan.BranchOutputs(inputs=xmcgan.single_branch(batch)[0],
                                fake_images=batch["image"], real=d_outputs(), fake=d_outputs())


def _perturbed(outputs, side: str, field: str):
    d_out = getattr(outputs, side)
    changed = d_out._replace(**{field: getattr(d_out, field) + 3.0})
    return outputs._replace(**{side: changed})


def _num_words(batch):
    return batch["word_mask"].numpy().sum(-1).astype(int)


@pytest.fixture(scope="module")
def model():
    generator, discriminator = _networks()
    gan = xmcgan.XMCGAN(generator, discriminator, max_tokens=T, ema_decay=0.9, **WEIGHTS)
    gan.compile(d_optimizer=keras.optimizers.SGD(0.05), g_optimizer=keras.optimizers.SGD(0.02))
    return gan


class _ConstantTerm:
    """Extra generator term returning the mean fake logit of every branch."""

    weight = 0.5
    names = ("loss/g_extra",)

    def __call__(self, branches):
        return {"loss/g_extra": tf.add_n([tf.reduce_mean(b.fake.logits) for b in branches])}


def _two_branches(batch):
    first = xmcgan.single_branch(batch)[0]
    return [first, first._replace(words=batch["words_2"], word_mask=batch["word_mask_2"],
                                  sentence=batch["sentence_2"])]


def test_split_batch_slices_every_entry_and_checks_divisibility():
    batch = _batch()
    slices = xmcgan.split_batch(batch, 2)
    assert len(slices) == 2
    np.testing.assert_array_equal(slices[1]["z"].numpy(), batch["z"].numpy()[2:])
    assert slices[0]["caption"].shape == (2,)
    with pytest.raises(ValueError, match="divisible"):
        xmcgan.split_batch(batch, 3)


def test_discriminator_loss_matches_numpy_and_ignores_fake_features(model):
    batch = _batch(1)
    out = _outputs(1, batch)
    total, terms = model.discriminator_loss([out])
    real = out.real
    hinge = numpy_reference.hinge_discriminator(real.logits.numpy(), out.fake.logits.numpy())
    sentence = numpy_reference.symmetric_contrastive(
        real.global_features.numpy(), real.sentence_projection.numpy(), 0.1)
    word = numpy_reference.word_contrastive(real.region_features.numpy(), batch["words"].numpy(),
                                            _num_words(batch), 5.0, 5.0, 50.0)
    assert terms["loss/d_hinge"].numpy() == pytest.approx(hinge, rel=1e-5)
    assert terms["loss/d_sentence"].numpy() == pytest.approx(sentence, rel=1e-5)
    assert terms["loss/d_word"].numpy() == pytest.approx(word, rel=1e-4)
    assert total.numpy() == pytest.approx(hinge + 0.5 * sentence + 2.0 * word, rel=1e-4)
    assert terms["scores/real"].numpy() == pytest.approx(real.logits.numpy().mean(), rel=1e-5)
    assert terms["contrastive/sentence_acc"].numpy() == pytest.approx(
        numpy_reference.row_accuracy(real.global_features.numpy(),
                                     real.sentence_projection.numpy()))
    # D never trains its contrastive heads on fakes: only the fake logits enter L_D.
    for field in ("global_features", "region_features", "sentence_projection"):
        changed, _ = model.discriminator_loss([_perturbed(out, "fake", field)])
        assert changed.numpy() == pytest.approx(total.numpy(), rel=1e-6)
    changed, _ = model.discriminator_loss([_perturbed(out, "fake", "logits")])
    assert changed.numpy() != pytest.approx(total.numpy(), rel=1e-3)


def test_generator_loss_matches_numpy(model):
    batch = _batch(2)
    out = _outputs(2, batch)
    total, terms = model.generator_loss([out])
    fake, real = out.fake, out.real
    hinge = numpy_reference.hinge_generator(fake.logits.numpy())
    sentence = numpy_reference.symmetric_contrastive(
        fake.global_features.numpy(), fake.sentence_projection.numpy(), 0.1)
    word = numpy_reference.word_contrastive(fake.region_features.numpy(), batch["words"].numpy(),
                                            _num_words(batch), 5.0, 5.0, 50.0)
    image = numpy_reference.symmetric_contrastive(fake.global_features.numpy(),
                                                  real.global_features.numpy(), 0.1)
    assert terms["loss/g_image_d"].numpy() == pytest.approx(image, rel=1e-5)
    assert "loss/g_image_enc" not in terms  # no image encoder configured
    assert total.numpy() == pytest.approx(hinge + 0.5 * sentence + 2.0 * word + 0.25 * image,
                                          rel=1e-4)
    for field in ("logits", "region_features", "sentence_projection"):
        changed, _ = model.generator_loss([_perturbed(out, "real", field)])
        assert changed.numpy() == pytest.approx(total.numpy(), rel=1e-6)


def test_zero_weights_leave_terms_out(model):
    gan = xmcgan.XMCGAN(model.generator, model.discriminator, max_tokens=T, sentence_weight=0.0,
                        word_weight=0.0, image_weight=0.0)
    batch = _batch(3)
    out = _outputs(3, batch)
    d_total, d_terms = gan.discriminator_loss([out])
    g_total, g_terms = gan.generator_loss([out])
    assert set(d_terms) == {"loss/d_hinge", "loss/d_total", "scores/real", "scores/fake",
                            "contrastive/sentence_acc"}
    assert set(g_terms) == {"loss/g_hinge", "loss/g_total"}
    assert d_total.numpy() == pytest.approx(d_terms["loss/d_hinge"].numpy())
    assert g_total.numpy() == pytest.approx(g_terms["loss/g_hinge"].numpy())
    assert "loss/g_word" not in [m.name for m in gan.metrics]


def test_branches_are_summed_and_extra_terms_added(model):
    gan = xmcgan.XMCGAN(model.generator, model.discriminator, max_tokens=T, branch_fn=_two_branches,
                        extra_generator_losses=[_ConstantTerm()], **WEIGHTS)
    batch = _batch(4)
    first, second = _outputs(5, batch), _outputs(6, batch)
    _, both = gan.generator_loss([first, second])
    _, one = gan.generator_loss([first])
    _, other = gan.generator_loss([second])
    for name in ("loss/g_hinge", "loss/g_sentence", "loss/g_word", "loss/g_image_d"):
        assert both[name].numpy() == pytest.approx((one[name] + other[name]).numpy(), rel=1e-5)
    extra = (tf.reduce_mean(first.fake.logits) + tf.reduce_mean(second.fake.logits)).numpy()
    assert both["loss/g_extra"].numpy() == pytest.approx(extra, rel=1e-5)
    base = sum(w * (one[n] + other[n]).numpy() for w, n in (
        (1.0, "loss/g_hinge"), (0.5, "loss/g_sentence"), (2.0, "loss/g_word"),
        (0.25, "loss/g_image_d")))
    assert both["loss/g_total"].numpy() == pytest.approx(base + 0.5 * extra, rel=1e-4)

    # The whole step runs on two-caption batches and reports the extra term.
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-4), g_optimizer=keras.optimizers.Adam(1e-4))
    data = _batch(7)
    data.update(words_2=data["words"][::-1], word_mask_2=data["word_mask"][::-1],
                sentence_2=data["sentence"][::-1])
    results = gan.train_step(data)
    assert np.isfinite(results["loss/g_extra"].numpy())


def _snapshot(model):
    variables = model.generator.weights + model.discriminator.weights
    return variables, [v.numpy() for v in variables]


def _restore(variables, values):
    for v, value in zip(variables, values):
        v.assign(value)


def test_joint_step_updates_both_networks_from_one_forward_pass(model):
    half = xmcgan.split_batch(_batch(8), 2)[1]
    variables, before = _snapshot(model)
    model._joint_step(half)
    after = {v.path: v.numpy() for v in variables}

    # Independent recomputation from the same starting point: SGD with lr 0.05 (D), 0.02 (G).
    _restore(variables, before)
    branch = model.branch_fn(half)[0]
    with tf.GradientTape(persistent=True) as tape:
        out = model._discriminate(branch, model._generate(branch, training=True), training=True)
        d_total, _ = model.discriminator_loss([out])
        g_total, _ = model.generator_loss([out])
    for network, loss, lr in ((model.discriminator, d_total, 0.05),
                              (model.generator, g_total, 0.02)):
        gradients = tape.gradient(loss, network.trainable_variables)
        for v, g in zip(network.trainable_variables, gradients):
            np.testing.assert_allclose(after[v.path], v.numpy() - lr * g.numpy(), atol=2e-5,
                                       err_msg=v.path)
    changed = [not np.array_equal(after[v.path], old) for v, old in zip(variables, before)]
    assert any(changed)


def test_discriminator_step_leaves_generator_weights_alone(model):
    half = xmcgan.split_batch(_batch(9), 2)[0]
    g_before = [v.numpy() for v in model.generator.trainable_variables]
    d_before = [v.numpy() for v in model.discriminator.trainable_variables]
    terms = model._discriminator_step(half)
    assert "loss/g_total" not in terms
    for v, old in zip(model.generator.trainable_variables, g_before):
        np.testing.assert_array_equal(v.numpy(), old)
    assert any(not np.array_equal(v.numpy(), old)
               for v, old in zip(model.discriminator.trainable_variables, d_before))


def test_discriminator_step_keeps_generator_batch_norm_statistics(model):
    """The released train_d discards G's new batch-norm state; the joint update moves it."""
    slices = xmcgan.split_batch(_batch(11), 2)
    statistics = model.generator.non_trainable_variables
    assert statistics  # the moving means and variances of G's batch norms
    before = [v.numpy() for v in statistics]
    tf.function(model._discriminator_step)(slices[0])
    for v, old in zip(statistics, before):
        np.testing.assert_array_equal(v.numpy(), old, err_msg=v.path)
    model._joint_step(slices[1])
    assert any(not np.array_equal(v.numpy(), old) for v, old in zip(statistics, before))


def test_fit_step_reports_every_term_and_updates_ema():
    generator, discriminator = _networks(10)
    gan = xmcgan.XMCGAN(generator, discriminator, max_tokens=T, ema_decay=0.9)
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
    g_before = [v.numpy() for v in generator.trainable_variables]
    dataset = tf.data.Dataset.from_tensors(_batch(10))
    history = gan.fit(dataset, epochs=1, verbose=0)
    expected = {"loss/d_total", "loss/d_hinge", "loss/d_sentence", "loss/d_word",
                "loss/g_total", "loss/g_hinge", "loss/g_sentence", "loss/g_word",
                "loss/g_image_d", "scores/real", "scores/fake", "contrastive/sentence_acc"}
    assert expected <= set(history.history)
    assert all(np.isfinite(history.history[k][0]) for k in expected)
    assert gan.d_optimizer.iterations.numpy() == 2  # one D-only and one joint update
    assert gan.g_optimizer.iterations.numpy() == 1
    for ema_weight, old, new in zip(gan.generator_ema.trainable_variables, g_before,
                                    generator.trainable_variables):
        np.testing.assert_allclose(ema_weight.numpy(), 0.9 * old + 0.1 * new.numpy(),
                                   atol=1e-6)
    for ema_weight, weight in zip(gan.generator_ema.non_trainable_variables,
                                  generator.non_trainable_variables):
        np.testing.assert_array_equal(ema_weight.numpy(), weight.numpy())

    batch = _batch(11)
    samples = gan.sample(batch)
    assert samples.shape == (B, S, S, 3) and samples.dtype == tf.float32
    assert 0.0 <= samples.numpy().min() and samples.numpy().max() <= 1.0
    expected_ema = gan.generator_ema(batch["z"], batch["sentence"], batch["words"],
                                     batch["word_mask"], training=False)
    np.testing.assert_allclose(samples.numpy(), expected_ema.numpy(), atol=1e-6)
    raw = gan.sample(batch, use_ema=False).numpy()
    assert not np.allclose(raw, samples.numpy(), atol=1e-7)


def test_ema_rampup_uses_the_generator_update_count():
    generator, discriminator = _networks(13)
    gan = xmcgan.XMCGAN(generator, discriminator, max_tokens=T, ema_decay=0.999,
                        ema_rampup=True)
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
    g_before = [v.numpy() for v in generator.trainable_variables]
    gan.fit(tf.data.Dataset.from_tensors(_batch(13)), epochs=1, verbose=0)
    decay = 2.0 / 11.0  # update t = 1: min(0.999, (1 + t) / (10 + t))
    for ema_weight, old, new in zip(gan.generator_ema.trainable_variables, g_before,
                                    generator.trainable_variables):
        np.testing.assert_allclose(ema_weight.numpy(), decay * old + (1 - decay) * new.numpy(),
                                   atol=1e-6)


def test_mixed_bfloat16_keeps_losses_float32():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        generator, discriminator = _networks(12)
        gan = xmcgan.XMCGAN(generator, discriminator, max_tokens=T)
        gan.compile(d_optimizer=keras.optimizers.Adam(1e-4),
                    g_optimizer=keras.optimizers.Adam(1e-4))
        terms = gan._joint_step(xmcgan.split_batch(_batch(12), 2)[1])
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert generator.compute_dtype == "bfloat16"
    for name, value in terms.items():
        assert value.dtype == tf.float32, name
        assert np.isfinite(value.numpy()), name


def test_bad_schedule_raises():
    generator, discriminator = _networks(13)
    with pytest.raises(ValueError, match="d_steps_per_g_step"):
        xmcgan.XMCGAN(generator, discriminator, max_tokens=T, d_steps_per_g_step=0)


def test_caption_bank_adds_negatives_to_l_sent_except_the_images_own_captions():
    generator, discriminator = _networks()
    rng = np.random.default_rng(7)
    bank_keys = np.array([10, 11, 12, 13, 14], np.int64)
    gan = xmcgan.XMCGAN(generator, discriminator, max_tokens=T,
                        negative_sentences=rng.normal(size=[5, D]).astype(np.float32),
                        negative_image_keys=bank_keys, **WEIGHTS)
    batch = {**_batch(3), "image_key": tf.constant([11, 99, 14, 98], tf.int64)}
    excluded = batch["image_key"].numpy()[:, None] == bank_keys[None, :]
    assert excluded.sum() == 2
    out = _outputs(3, batch)
    bank_projection = tf.constant(rng.normal(size=[5, 6]), tf.float32)
    out = out._replace(real=out.real._replace(negative_projection=bank_projection),
                       fake=out.fake._replace(negative_projection=bank_projection))
    _, d_terms = gan.discriminator_loss([out])
    _, g_terms = gan.generator_loss([out])
    for terms, side in ((d_terms, out.real), (g_terms, out.fake)):
        name = "loss/d_sentence" if terms is d_terms else "loss/g_sentence"
        want = numpy_reference.contrastive_with_bank(
            side.global_features.numpy(), side.sentence_projection.numpy(),
            bank_projection.numpy(), excluded, 0.1)
        assert terms[name].numpy() == pytest.approx(want, rel=1e-5)
    # The forward pass projects the bank with D's sentence projection.
    branch = xmcgan.single_branch(batch)[0]
    forward = gan._discriminate(branch, batch["image"], training=False)
    assert forward.real.negative_projection.shape == (5, discriminator.df_dim * 16)
    with pytest.raises(ValueError, match="go together"):
        xmcgan.XMCGAN(generator, discriminator, max_tokens=T,
                      negative_sentences=np.zeros([2, D], np.float32))


def test_mismatch_term_scores_real_images_with_their_hardest_bank_caption_as_fakes():
    generator, discriminator = _networks()
    rng = np.random.default_rng(8)
    bank_keys = np.array([10, 11, 12], np.int64)
    gan = xmcgan.XMCGAN(generator, discriminator, max_tokens=T,
                        negative_sentences=rng.normal(size=[3, D]).astype(np.float32),
                        negative_image_keys=bank_keys, mismatch_weight=0.5, **WEIGHTS)
    assert "loss/d_mismatch" in gan._reported_names()
    batch = {**_batch(4), "image_key": tf.constant([11, 99, 98, 97], tf.int64)}
    out = _outputs(4, batch)
    bank_projection = tf.constant(rng.normal(size=[3, 6]), tf.float32)
    out = out._replace(real=out.real._replace(negative_projection=bank_projection),
                       fake=out.fake._replace(negative_projection=bank_projection))
    total, terms = gan.discriminator_loss([out])
    real = out.real
    phi, own = real.global_features.numpy(), real.sentence_projection.numpy()
    scores = phi @ bank_projection.numpy().T
    scores[0, 1] = -np.inf  # bank caption 1 describes image 0
    mismatch = real.logits.numpy() - (phi * own).sum(-1) + scores.max(-1)
    want = np.maximum(0.0, 1.0 + mismatch).mean()
    assert terms["loss/d_mismatch"].numpy() == pytest.approx(want, rel=1e-5)
    without = total.numpy() - 0.5 * want
    assert without == pytest.approx(
        terms["loss/d_hinge"].numpy() + 0.5 * terms["loss/d_sentence"].numpy()
        + 2.0 * terms["loss/d_word"].numpy(), rel=1e-4)
    with pytest.raises(ValueError, match="caption bank"):
        xmcgan.XMCGAN(generator, discriminator, max_tokens=T, mismatch_weight=1.0)


def test_counterfactual_term_scores_real_images_with_their_counterfactual_captions_as_fakes():
    generator, discriminator = _networks()
    gan = xmcgan.XMCGAN(generator, discriminator, max_tokens=T, counterfactual_weight=0.5,
                        **WEIGHTS)
    assert "loss/d_counterfactual" in gan._reported_names()
    rng = np.random.default_rng(9)
    counterfactual = tf.constant(rng.normal(size=[B, D]), tf.float32)
    batch = {**_batch(5), "counterfactual_sentence": counterfactual}
    branch = xmcgan.single_branch(batch)[0]
    out = gan._discriminate(branch, batch["image"], training=False)
    assert out.real.negative_projection.shape[0] == 0  # no caption bank
    total, terms = gan.discriminator_loss([out])
    # The discriminator itself, run on the real images with the counterfactual captions.
    direct = discriminator(batch["image"], counterfactual, training=False).logits.numpy()
    want = np.maximum(0.0, 1.0 + direct).mean()
    assert terms["loss/d_counterfactual"].numpy() == pytest.approx(want, rel=1e-4, abs=1e-5)
    assert total.numpy() - 0.5 * want == pytest.approx(
        terms["loss/d_hinge"].numpy() + 0.5 * terms["loss/d_sentence"].numpy()
        + 2.0 * terms["loss/d_word"].numpy(), rel=1e-4)
    with pytest.raises(ValueError, match="counterfactual captions in the batch"):
        gan.discriminator_loss([gan._discriminate(xmcgan.single_branch(_batch(5))[0],
                                                  batch["image"], training=False)])


def test_counterfactual_captions_follow_the_caption_bank_in_one_projection():
    generator, discriminator = _networks()
    rng = np.random.default_rng(10)
    bank = rng.normal(size=[3, D]).astype(np.float32)
    gan = xmcgan.XMCGAN(generator, discriminator, max_tokens=T, negative_sentences=bank,
                        negative_image_keys=np.arange(3, dtype=np.int64),
                        counterfactual_weight=1.0, **WEIGHTS)
    counterfactual = tf.constant(rng.normal(size=[B, D]), tf.float32)
    batch = {**_batch(6), "counterfactual_sentence": counterfactual}
    out = gan._discriminate(xmcgan.single_branch(batch)[0], batch["image"], training=False)
    projection = discriminator.sentence_projection
    assert out.real.negative_projection.shape == (3, out.real.global_features.shape[1])
    np.testing.assert_allclose(out.real.negative_projection,
                               projection(tf.constant(bank), training=False), rtol=1e-5)
    np.testing.assert_allclose(out.counterfactual_projection,
                               projection(counterfactual, training=False), rtol=1e-5)


def test_counterfactual_negatives_join_every_image_to_text_row_of_l_sent():
    generator, discriminator = _networks()
    gan = xmcgan.XMCGAN(generator, discriminator, max_tokens=T, counterfactual_weight=1.0,
                        counterfactual_negatives=True, **WEIGHTS)
    rng = np.random.default_rng(11)
    batch = {**_batch(7), "counterfactual_sentence": tf.constant(rng.normal(size=[B, D]),
                                                                 tf.float32)}
    out = _outputs(7, batch)._replace(
        counterfactual_projection=tf.constant(rng.normal(size=[B, 6]), tf.float32))
    _, d_terms = gan.discriminator_loss([out])
    _, g_terms = gan.generator_loss([out])
    for side, terms, name in ((out.real, d_terms, "loss/d_sentence"),
                              (out.fake, g_terms, "loss/g_sentence")):
        a = side.global_features.numpy()
        b = np.concatenate([side.sentence_projection.numpy(),
                            out.counterfactual_projection.numpy()])
        a = a / np.linalg.norm(a, axis=-1, keepdims=True)
        b = b / np.linalg.norm(b, axis=-1, keepdims=True)
        logits = a @ b.T / 0.1  # [B, 2B]: the batch's captions, then its counterfactuals
        rows = -np.mean([logits[n, n] - np.log(np.exp(logits[n]).sum()) for n in range(B)])
        columns = -np.mean([logits[n, n] - np.log(np.exp(logits[:, n]).sum())
                            for n in range(B)])
        assert terms[name].numpy() == pytest.approx(rows + columns, rel=1e-5)
    with pytest.raises(ValueError, match="needs counterfactual_weight"):
        xmcgan.XMCGAN(generator, discriminator, max_tokens=T, counterfactual_negatives=True)


class _Mirror:
    """A deterministic stand-in augmentation: the images mirrored left-right."""

    def __call__(self, images):
        return images[:, :, ::-1]


def test_augmentation_transforms_every_image_the_discriminator_sees():
    generator, discriminator = _networks()
    gan = xmcgan.XMCGAN(generator, discriminator, max_tokens=T, augmentation=_Mirror(),
                        **WEIGHTS)
    batch = _batch(6)
    fakes = tf.constant(np.random.default_rng(7).uniform(size=[B, S, S, 3]), tf.float32)
    out = gan._discriminate(xmcgan.single_branch(batch)[0], fakes, training=False)
    for images, d_out in ((batch["image"], out.real), (fakes, out.fake)):
        direct = discriminator(images[:, :, ::-1], batch["sentence"], training=False)
        np.testing.assert_allclose(d_out.logits.numpy(), direct.logits.numpy(), rtol=1e-5,
                                   atol=1e-5)
        unaugmented = discriminator(images, batch["sentence"], training=False).logits.numpy()
        assert not np.allclose(d_out.logits.numpy(), unaugmented, atol=1e-4)


def _mean_squared_input_gradient(discriminator, images, sentences) -> float:
    """E‖∇_x D(x, s)‖², image by image (each image through D alone)."""
    norms = []
    for index in range(images.shape[0]):
        image = images[index:index + 1]
        with tf.GradientTape() as tape:
            tape.watch(image)
            logit = discriminator(image, sentences[index:index + 1], training=False).logits[0]
        norms.append(float(tf.reduce_sum(tf.square(tape.gradient(logit, image)))))
    return float(np.mean(norms))


def test_r1_penalty_is_the_mean_squared_input_gradient_of_the_real_images():
    generator, discriminator = _networks()
    gan = xmcgan.XMCGAN(generator, discriminator, max_tokens=T, r1_weight=3.0, **WEIGHTS)
    assert "loss/d_r1" in gan._reported_names()
    batch = _batch(8)
    fakes = tf.constant(np.random.default_rng(9).uniform(size=[B, S, S, 3]), tf.float32)
    out = gan._discriminate(xmcgan.single_branch(batch)[0], fakes, training=False)
    want = _mean_squared_input_gradient(discriminator, batch["image"], batch["sentence"])
    assert want > 0
    assert float(out.real_gradient_penalty) == pytest.approx(want, rel=1e-4)
    total, terms = gan.discriminator_loss([out])
    rest = (terms["loss/d_hinge"] + WEIGHTS["sentence_weight"] * terms["loss/d_sentence"]
            + WEIGHTS["word_weight"] * terms["loss/d_word"])
    assert float(total - rest) == pytest.approx(0.5 * 3.0 * want, rel=1e-4)
    plain = xmcgan.XMCGAN(generator, discriminator, max_tokens=T, **WEIGHTS)
    assert "loss/d_r1" not in plain._reported_names()
    assert plain._discriminate(xmcgan.single_branch(batch)[0], fakes,
                               training=False).real_gradient_penalty is None


def test_r1_penalty_flattens_the_discriminator_around_real_images():
    batch = _batch(10)
    penalties = {}
    for weight in (0.0, 30.0):
        generator, discriminator = _networks(seed=1)
        gan = xmcgan.XMCGAN(generator, discriminator, max_tokens=T, d_steps_per_g_step=2,
                            r1_weight=weight, **WEIGHTS)
        gan.compile(d_optimizer=keras.optimizers.Adam(1e-3),
                    g_optimizer=keras.optimizers.SGD(0.0))
        step = tf.function(gan._discriminator_step)
        for _ in range(20):
            step(batch)
        penalties[weight] = _mean_squared_input_gradient(discriminator, batch["image"],
                                                         batch["sentence"])
    assert penalties[30.0] < 0.5 * penalties[0.0]


def test_negative_r1_weight_raises():
    generator, discriminator = _networks()
    with pytest.raises(ValueError, match="r1_weight"):
        xmcgan.XMCGAN(generator, discriminator, max_tokens=T, r1_weight=-1.0)
