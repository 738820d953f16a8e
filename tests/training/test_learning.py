"""Evidence that the XMC-GAN update learns (slow, CPU, small 64 px networks).

1. On a dataset where each of 8 classes has its own colour and its own caption embeddings, a
   short run must make D's real image–sentence contrastive accuracy rise well above chance and
   make G_ema's samples take the colour their caption names (same z, different captions).
2. On the synthetic captioned scenes encoded by the offline text encoder, with the demo's
   network widths, D's contrastive accuracy must rise well above chance and G_ema's samples must
   change with the caption typed (same z), not only with z.
"""

import functools

import numpy as np
import pytest
import tensorflow as tf

from tests.training import tiny_dataset
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.data import sentence_embedding
from xmcgan_tf.models import generator_loading
from xmcgan_tf.models import xmcgan
from xmcgan_tf.networks import discriminator as discriminator_lib
from xmcgan_tf.networks import generator as generator_lib
from xmcgan_tf.text import encoder as text_encoder
from xmcgan_tf.training import summaries
from xmcgan_tf.training import train_config
from xmcgan_tf.training import train_lib

CLASSES, T, D, Z, BATCH = 8, 6, 16, 16, 16


@pytest.mark.slow
def test_contrastive_accuracy_rises_and_samples_follow_the_caption(tmp_path):
    data_dir, model_dir = str(tmp_path / "data"), str(tmp_path / "run")
    tiny_dataset.write_dataset(data_dir, max_tokens=T, embedding_dim=D, num_classes=CLASSES,
                               num_train=128, num_val=16)
    train_lib.train(
        model_dir=model_dir,
        data=train_config.DataConfig(data_dir=data_dir, max_tokens=T, shuffle_buffer=128),
        schedule=train_config.ScheduleConfig(num_steps=300, batch_size=BATCH // 2, log_every=1,
                                             checkpoint_every=300, sample_every=300,
                                             num_samples=8),
        generator_fn=functools.partial(generator_lib.Generator, image_size=64, gf_dim=8,
                                       z_dim=Z, embedding_dim=D),
        discriminator_fn=functools.partial(discriminator_lib.Discriminator, image_size=64,
                                           df_dim=8, embedding_dim=D),
        model_fn=functools.partial(xmcgan.XMCGAN, ema_decay=0.95))

    # D's accuracy of matching real images to their sentences, among the 8 of an update:
    # chance is 1/8; same-class duplicates cap it near 0.65.
    accuracy = [r["contrastive/sentence_acc"] for r in summaries.read_train_metrics(model_dir)]
    chance = 1.0 / (BATCH // 2)
    final = np.mean(accuracy[-30:])
    assert final > 3 * chance, accuracy
    assert final > accuracy[0] + 0.2, accuracy  # step 1: before D has learnt anything

    # G_ema: one z, the caption of each class; each sample's mean colour should be nearest the
    # colour its caption names.
    loaded = generator_loading.load_generators(model_dir)
    val = next(iter(input_pipeline.make_dataset(
        data_dir, "val", batch_size=16, training=False, max_tokens=T, embedding_dim=D,
        image_size=64, z_dim=Z)))
    index = [int(np.flatnonzero(val["label"].numpy() == c)[0]) for c in range(CLASSES)]
    hits, spreads = [], []
    for seed in range(4):
        z = tf.repeat(tf.random.stateless_normal([1, Z], [seed, 7]), CLASSES, axis=0)
        images = loaded.generator_ema(z, tf.gather(val["sentence"], index),
                                      tf.gather(val["words"], index),
                                      tf.gather(val["word_mask"], index), training=False)
        colours = images.numpy().mean(axis=(1, 2))  # [classes, 3]
        distance = np.linalg.norm(colours[:, None] - tiny_dataset.PALETTE[None, :CLASSES], axis=-1)
        hits.append(np.mean(distance.argmin(axis=1) == np.arange(CLASSES)))
        spreads.append(np.mean(np.linalg.norm(colours[:, None] - colours[None], axis=-1)))
    print(f"sentence_acc step 1 {accuracy[0]:.3f}, steps 271-300 {final:.3f} "
          f"(chance {chance:.3f}); caption-colour hits {np.mean(hits):.2f} (chance "
          f"{1 / CLASSES:.3f}); mean colour spread {np.mean(spreads):.3f}")
    assert np.mean(hits) >= 0.5, hits  # chance: 1/8
    assert np.mean(spreads) > 0.2, spreads  # samples differ with the caption


SCENE_CAPTIONS = ("a large red circle in the center", "a large blue circle in the center",
                  "a large green square in the center", "a large yellow triangle in the center")


@pytest.mark.slow
def test_synthetic_scenes_contrastive_accuracy_rises_and_samples_follow_the_caption(
        tmp_path, synthetic_dataset_dir, offline_text_encoder_dir):
    model_dir = str(tmp_path / "run")
    max_tokens, embedding_dim, z_dim, steps = 24, 384, 128, 300
    train_lib.train(
        model_dir=model_dir,
        data=train_config.DataConfig(data_dir=synthetic_dataset_dir, max_tokens=max_tokens,
                                     shuffle_buffer=256),
        schedule=train_config.ScheduleConfig(num_steps=steps, batch_size=BATCH // 2,
                                             log_every=10, checkpoint_every=steps,
                                             sample_every=steps, num_samples=8),
        generator_fn=functools.partial(generator_lib.Generator, image_size=64, gf_dim=16,
                                       z_dim=z_dim, embedding_dim=embedding_dim),
        discriminator_fn=functools.partial(discriminator_lib.Discriminator, image_size=64,
                                           df_dim=16, embedding_dim=embedding_dim),
        model_fn=functools.partial(xmcgan.XMCGAN, ema_rampup=True))

    accuracy = [r["contrastive/sentence_acc"] for r in summaries.read_train_metrics(model_dir)]
    chance = 1.0 / (BATCH // 2)
    final = np.mean(accuracy[-5:])  # steps 251-300
    assert final > 3 * chance, accuracy
    assert final > accuracy[0] + 0.2, accuracy

    # G_ema on typed captions: the image difference between captions (same z) must be a sizeable
    # fraction of the difference between latents (same caption).
    encoder = text_encoder.TextEncoder(
        f"{offline_text_encoder_dir}/preprocess", f"{offline_text_encoder_dir}/encoder",
        max_tokens=max_tokens)
    encoded = encoder(tf.constant(SCENE_CAPTIONS))
    words, num_tokens = encoded["sequence_output"], encoded["num_tokens"]
    sentence = sentence_embedding.sentence_embedding(words, num_tokens)
    mask = sentence_embedding.word_mask(num_tokens, max_tokens)
    generator = generator_loading.load_generators(model_dir).generator_ema
    images = np.stack([generator(
        tf.repeat(tf.random.stateless_normal([1, z_dim], [seed, 7]), len(SCENE_CAPTIONS), axis=0),
        sentence, words, mask, training=False).numpy() for seed in range(6)])  # [z, caption, ...]
    n_captions, n_latents = images.shape[1], images.shape[0]
    by_caption = np.mean([np.abs(images[:, i] - images[:, j]).mean()
                          for i in range(n_captions) for j in range(i + 1, n_captions)])
    by_latent = np.mean([np.abs(images[i] - images[j]).mean()
                         for i in range(n_latents) for j in range(i + 1, n_latents)])
    print(f"sentence_acc step 1 {accuracy[0]:.3f}, steps 251-300 {final:.3f} (chance "
          f"{chance:.3f}); mean |Δpixel| between captions {by_caption:.4f}, between latents "
          f"{by_latent:.4f}")
    assert by_caption > 0.005 and by_caption > 0.25 * by_latent, (by_caption, by_latent)
