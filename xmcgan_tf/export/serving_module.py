"""The exported text-to-image model: caption strings in, uint8 images out (SPEC §7).

`ServingModule` is a `tf.Module` holding the text encoder (tokenizer + BERT-style encoder) and
the EMA generator, with explicit signatures:

| signature                 | inputs                                                 |
|---------------------------|--------------------------------------------------------|
| `serving_default`         | `captions [B] string`                                  |
| `serve_captions`          | `captions [B] string` (the same function)              |
| `serve_captions_seeded`   | `captions [B] string`, `seed [B] int64`                |
| `serve_embeddings`        | `words [B, T, D] float32`, `word_mask [B, T] float32`  |
| `serve_embeddings_seeded` | `words`, `word_mask`, `seed [B] int64`                 |

Every signature returns `{"images": [B, S, S, 3] uint8}`.

A SavedModel signature cannot have optional inputs (TF Serving requires every input of the
named signature), so each signature comes with and without `seed`; without it every row uses
seed 0. The latent of a row is `z = stateless_normal([z_dim], seed=(seed, 0), alg="philox")`, a
function of that row's seed alone: the same caption and seed give the same image whatever else
is in the batch, different seeds give different images.

Words, mask and sentence are computed as the training pipeline computes them from stored
records: `words` is the encoder's `sequence_output` over all T positions, `word_mask` is 1.0 on
the first `num_tokens` positions, and the sentence embedding follows the run's method
(`official`: sum over all T positions / num_tokens; `masked_mean`; `cls`).

The versioned directory layout `EXPORT_DIR/<version>/` (TF Serving's) is read here too
(`list_versions`, `load`), so servers and in-process callers need nothing but this module.

Legend: B batch, T tokens per caption, D text-encoder dimension, S image size.
"""

from __future__ import annotations

import dataclasses
import os
import types
from typing import Any, Callable, Mapping

import keras
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops the SavedModel uses)

from xmcgan_tf.data import sentence_embedding as sentence_embedding_lib

SERVING_DEFAULT = "serving_default"
SERVE_CAPTIONS = "serve_captions"
SERVE_CAPTIONS_SEEDED = "serve_captions_seeded"
SERVE_EMBEDDINGS = "serve_embeddings"
SERVE_EMBEDDINGS_SEEDED = "serve_embeddings_seeded"
SIGNATURE_NAMES = (SERVING_DEFAULT, SERVE_CAPTIONS, SERVE_CAPTIONS_SEEDED, SERVE_EMBEDDINGS,
                   SERVE_EMBEDDINGS_SEEDED)

CAPTIONS = "captions"
SEED = "seed"
WORDS = "words"
WORD_MASK = "word_mask"
IMAGES = "images"

SENTENCE_EMBEDDINGS = sentence_embedding_lib.METHODS

# Second word of the Philox key of z; fixed so that exported models stay reproducible.
_Z_STREAM = 0


def latents(seed: tf.Tensor, z_dim: int) -> tf.Tensor:
    """Deterministic z per row.

    Args:
      seed: [B] int64.
      z_dim: latent size.

    Returns:
      [B, z_dim] float32, row i = stateless_normal([z_dim], seed=(seed[i], 0), alg="philox").
    """
    stream = tf.constant(_Z_STREAM, tf.int64)
    return tf.map_fn(
        lambda s: tf.random.stateless_normal([z_dim], seed=tf.stack([s, stream]), alg="philox"),
        tf.cast(seed, tf.int64), fn_output_signature=tf.float32)


def to_uint8(images: tf.Tensor) -> tf.Tensor:
    """[B, S, S, 3] float32 in [0, 1] -> [B, S, S, 3] uint8 (clip, scale by 255, round)."""
    return tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.uint8)


class ServingModule(tf.Module):
    """Text encoder + EMA generator with TF-Serving signatures (see the module docstring).

    Args:
      generator: the EMA generator, a Keras model called as
        `generator(z [B, z_dim], sentence [B, D], words [B, T, D], word_mask [B, T],
        training=False)` -> [B, S, S, 3] float32 in [0, 1]; its `get_config()` holds `z_dim`
        and `image_size`.
      text_encoder: callable `captions [B] string -> dict` with `sequence_output [B, T, D]
        float32` and `num_tokens [B] int32` (an `xmcgan_tf.text.encoder.TextEncoder`).
      max_tokens: T of the run.
      embedding_dim: D of the run.
      sentence_embedding: the run's method, one of SENTENCE_EMBEDDINGS.
    """

    def __init__(self, generator: keras.Model,
                 text_encoder: Callable[[tf.Tensor], Mapping[str, tf.Tensor]], *,
                 max_tokens: int, embedding_dim: int, sentence_embedding: str = "official",
                 name: str | None = None):
        super().__init__(name=name)
        sentence_embedding_lib.check_method(sentence_embedding)
        config = generator.get_config()
        missing = [k for k in ("z_dim", "image_size") if k not in config]
        if missing:
            raise ValueError(f"generator.get_config() lacks {missing}; cannot size the export")
        self.max_tokens = int(max_tokens)
        self.embedding_dim = int(embedding_dim)
        self.z_dim = int(config["z_dim"])
        self.image_size = int(config["image_size"])
        self.sentence_method = sentence_embedding
        if not generator.built:
            generator(tf.zeros([1, self.z_dim]), tf.zeros([1, self.embedding_dim]),
                      tf.zeros([1, self.max_tokens, self.embedding_dim]),
                      tf.ones([1, self.max_tokens]), training=False)
        self._generator_call = generator.__call__
        self._text_encoder = text_encoder

        captions = tf.TensorSpec([None], tf.string, name=CAPTIONS)
        seed = tf.TensorSpec([None], tf.int64, name=SEED)
        words = tf.TensorSpec([None, self.max_tokens, self.embedding_dim], tf.float32, name=WORDS)
        word_mask = tf.TensorSpec([None, self.max_tokens], tf.float32, name=WORD_MASK)
        # The signature functions call one encoder and one generator function, so each of those
        # is traced once.
        encode = tf.function(self.encode, input_signature=[captions])
        generate = tf.function(self.generate, input_signature=[words, word_mask, seed])

        def captions_seeded(captions, seed):
            with tf.control_dependencies(self._check_batch(tf.size(captions), (SEED, seed))):
                return {IMAGES: generate(*encode(captions), seed)}

        def captions_default(captions):
            return captions_seeded(captions, tf.zeros_like(captions, dtype=tf.int64))

        def embeddings_seeded(words, word_mask, seed):
            checks = self._check_batch(tf.shape(words)[0], (WORD_MASK, word_mask), (SEED, seed))
            checks.append(tf.debugging.assert_positive(
                tf.reduce_sum(word_mask, axis=1),
                message="every word_mask row needs at least one real token"))
            with tf.control_dependencies(checks):
                return {IMAGES: generate(words, word_mask, seed)}

        def embeddings_default(words, word_mask):
            return embeddings_seeded(words, word_mask, tf.zeros(tf.shape(words)[:1], tf.int64))

        captions_fn = tf.function(
            captions_default, input_signature=[captions]).get_concrete_function()
        # A plain namespace is not tracked: the SavedModel holds these as signatures only.
        self._signatures = types.SimpleNamespace(**{
            SERVING_DEFAULT: captions_fn,
            SERVE_CAPTIONS: captions_fn,
            SERVE_CAPTIONS_SEEDED: tf.function(
                captions_seeded, input_signature=[captions, seed]).get_concrete_function(),
            SERVE_EMBEDDINGS: tf.function(
                embeddings_default, input_signature=[words, word_mask]).get_concrete_function(),
            SERVE_EMBEDDINGS_SEEDED: tf.function(
                embeddings_seeded,
                input_signature=[words, word_mask, seed]).get_concrete_function(),
        })
        # What the SavedModel tracks: the tf.Variables the signatures read and the text encoder's
        # lookup tables and vocabulary assets, not the Keras objects. Keras 3 variables tracked
        # through their layers restore under `tf.saved_model.load` but not in the session-based
        # loader of TF Serving and saved_model_cli ("Could not find variable ..."), and
        # re-serialising the hub modules' own functions would only slow export and load.
        seen = set()
        self.exported_variables = []
        for fn in vars(self._signatures).values():
            for variable in fn.variables:
                if id(variable) not in seen:
                    seen.add(id(variable))
                    self.exported_variables.append(variable)
        resource_types = (tf.saved_model.experimental.TrackableResource, tf.saved_model.Asset)
        self.exported_resources = [
            obj for root in (text_encoder, generator)
            if isinstance(root, tf.__internal__.tracking.Trackable)
            for obj in tf.train.TrackableView(root).descendants()
            if isinstance(obj, resource_types)]

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """Signature name -> concrete function, for `tf.saved_model.save(..., signatures=...)`.

        Each returns `{"images": [B, S, S, 3] uint8}`; see the module docstring for the inputs.
        """
        return dict(vars(self._signatures))

    def encode(self, captions: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Caption strings [B] -> (words [B, T, D] float32, word_mask [B, T] float32)."""
        out = self._text_encoder(captions)
        words = tf.ensure_shape(out["sequence_output"], [None, self.max_tokens, self.embedding_dim])
        return words, sentence_embedding_lib.word_mask(out["num_tokens"], self.max_tokens)

    def generate(self, words: tf.Tensor, word_mask: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Images from word embeddings.

        The sentence embedding is derived as the input pipeline derives it, with
        num_tokens = the number of ones in each word_mask row.

        Args:
          words: [B, T, D] float32.
          word_mask: [B, T] float32.
          seed: [B] int64, the z seed of each row.

        Returns:
          [B, S, S, 3] uint8.
        """
        num_tokens = tf.cast(tf.reduce_sum(word_mask, axis=1), tf.int32)  # [B]
        sentence = sentence_embedding_lib.sentence_embedding(words, num_tokens,
                                                             self.sentence_method)  # [B, D]
        z = latents(seed, self.z_dim)
        images = self._generator_call(z, sentence, words, word_mask, training=False)
        return to_uint8(images)

    @staticmethod
    def _check_batch(batch: tf.Tensor, *others: tuple[str, tf.Tensor]) -> list[tf.Operation]:
        checks = [tf.debugging.assert_positive(
            batch, message="the request holds no rows (batch size 0)")]
        for name, tensor in others:
            checks.append(tf.debugging.assert_equal(
                tf.shape(tensor)[0], batch, message=f"{name} must have one row per input row"))
        return checks

def list_versions(export_dir: str) -> list[int]:
    """Sorted integer versions present in `export_dir` (TF Serving layout); [] if none.

    Directories whose name is not a plain integer (e.g. the hidden temp dir of an export in
    progress) are not versions.
    """
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(n) for n in os.listdir(export_dir)
                  if n.isdigit() and os.path.isdir(os.path.join(export_dir, n)))


def resolve_version(export_dir: str, version: int | None = None) -> tuple[int, str]:
    """(version, path) of `version`, or of the newest version when None.

    Raises:
      FileNotFoundError: no such version, or no version at all, in `export_dir`.
    """
    versions = list_versions(export_dir)
    if not versions:
        raise FileNotFoundError(f"no model versions (integer subdirectories) in {export_dir!r}; "
                                "export one with `python -m xmcgan_tf.export`")
    if version is None:
        version = versions[-1]
    elif version not in versions:
        raise FileNotFoundError(f"version {version} not in {export_dir!r} (versions: {versions})")
    return version, os.path.join(export_dir, str(version))


@dataclasses.dataclass
class LoadedExport:
    """A loaded version: `model.signatures[name](**inputs)["images"]`."""

    version: int
    path: str
    model: Any


def load(export_dir: str, version: int | None = None) -> LoadedExport:
    """Loads `EXPORT_DIR/<version>` (the newest when None) with the tokenizer ops registered."""
    version, path = resolve_version(export_dir, version)
    return LoadedExport(version=version, path=path, model=tf.saved_model.load(path))
