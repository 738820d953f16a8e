"""Evidence that the XMC-GAN update learns (slow, CPU, tiny 64 px networks).

On a dataset where each of 8 classes has its own colour and its own caption embeddings, a short
run must make D's real image–sentence contrastive accuracy rise well above chance and make
G_ema's samples take the colour their caption names (same z, different captions).
"""

import functools

import numpy as np
import pytest
import tensorflow as tf

from tests.training import tiny_dataset
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.models import generator_loading
from xmcgan_tf.models import xmcgan
from xmcgan_tf.networks import discriminator as discriminator_lib
from xmcgan_tf.networks import generator as generator_lib
from xmcgan_tf.training import summaries
from xmcgan_tf.training import train_lib

CLASSES, T, D, Z, BATCH = 8, 6, 16, 16, 16


@pytest.mark.slow
def test_contrastive_accuracy_rises_and_samples_follow_the_caption(tmp_path):
    data_dir, model_dir = str(tmp_path / "data"), str(tmp_path / "run")
    tiny_dataset.write_dataset(data_dir, max_tokens=T, embedding_dim=D, num_classes=CLASSES,
                               num_train=128, num_val=16)
    train_lib.train(
        model_dir=model_dir, data_dir=data_dir, max_tokens=T, batch_size=BATCH, num_steps=300,
        generator_fn=functools.partial(generator_lib.Generator, image_size=64, gf_dim=8,
                                       z_dim=Z, embedding_dim=D),
        discriminator_fn=functools.partial(discriminator_lib.Discriminator, image_size=64,
                                           df_dim=8, embedding_dim=D),
        model_fn=functools.partial(xmcgan.XMCGAN, ema_decay=0.95), shuffle_buffer=128,
        log_every=1, checkpoint_every=300, sample_every=300, num_samples=8)

    # D's accuracy of matching real images to their sentences, among the 8 of a half-batch:
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
