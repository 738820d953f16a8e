"""Frozen pretrained image encoder for XMC-GAN's L_img^enc (SPEC §3).

The paper uses VGG features, the released code ResNet-50 logits. The weights are read from a
local path only, never downloaded: either a Keras model file (`.keras` / `.h5`) or a SavedModel
directory (a callable root, e.g. `tf.saved_model.save(keras_model, dir)` or
`model.export(dir)`, or a `serving_default` signature). Without a path the term is off.

The encoder receives the generator's [0, 1] images, resized to the encoder's input size
(default 224) and either mapped linearly to its input range (default: left in [0, 1]) or given
the ImageNet preprocessing of `keras.applications` ("caffe" for ResNet-50/VGG, "tf", "torch")
on 0–255 values; feature maps are averaged over space. The default, [0, 1] images at 224 px
with no ImageNet normalisation, is the released code's input to its ResNet-50, whose 1000-d
pre-softmax logits are the features. A model whose output is a softmax (probabilities) is
refused: save it with `classifier_activation=None`. Gradients flow to the input images
(L_img^enc trains G) but never into the encoder's weights.

Legend: B batch, S image size, K encoder feature dimension.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

_KERAS_SUFFIXES = (".keras", ".h5")
_REMOTE_PREFIXES = ("http://", "https://")
PREPROCESSING_MODES = ("caffe", "tf", "torch")
DEFAULT_INPUT_SIZE = 224  # the released code's ResNet-50 input side
_PROBE_BATCH = 2
_SOFTMAX_ATOL = 1e-4


class ImageEncoderError(ValueError):
    """An image-encoder path that cannot be used; the message names the problem."""


def _load_callable(path: str, output_key: str | None) -> tuple[Callable, Any]:
    """Loads the model at `path`; returns (images -> output, object to keep alive)."""
    if path.startswith(_REMOTE_PREFIXES):
        raise ImageEncoderError(
            f"image encoder {path!r} is a URL; weights are read from a local path only. Save the "
            "model (e.g. keras.applications.ResNet50 with ImageNet weights) to a local .keras "
            "file or SavedModel directory on a connected machine and pass that path.")
    if not tf.io.gfile.exists(path):
        raise ImageEncoderError(f"image encoder path {path!r} does not exist")
    if path.endswith(_KERAS_SUFFIXES):
        model = keras.saving.load_model(path, compile=False)
        model.trainable = False
        return (lambda images: model(images, training=False)), model
    if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        raise ImageEncoderError(f"image encoder path {path!r} is neither a .keras/.h5 file nor a "
                                "SavedModel directory (no saved_model.pb)")
    loaded = tf.saved_model.load(path)
    if callable(loaded):
        return loaded, loaded
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise ImageEncoderError(f"SavedModel {path!r} is not callable and has no "
                                "serving_default signature")
    input_names = list(signature.structured_input_signature[1])
    if len(input_names) != 1:
        raise ImageEncoderError(f"serving_default of {path!r} takes {input_names}; an image "
                                "encoder takes exactly one input (the images)")
    outputs = list(signature.structured_outputs)
    key = output_key or (outputs[0] if len(outputs) == 1 else None)
    if key not in outputs:
        raise ImageEncoderError(f"serving_default of {path!r} returns {sorted(outputs)}; set "
                                "output_key to the feature output")
    return (lambda images: signature(**{input_names[0]: images})[key]), loaded


def _is_softmax(operation: Any) -> bool:
    """Whether a Keras layer/op is a softmax or has a softmax activation."""
    if type(operation).__name__ == "Softmax":  # keras.layers.Softmax or keras.ops.softmax
        return True
    activation = getattr(operation, "activation", None)
    return activation is not None and (activation is keras.activations.softmax or
                                       getattr(activation, "__name__", "") == "softmax")


def _softmax_output_layer(model: Any) -> str | None:
    """Name of a softmax layer producing an output of the Keras `model`, or None."""
    candidates = []
    for output in keras.tree.flatten(getattr(model, "outputs", None) or []):
        history = getattr(output, "_keras_history", None)
        if history is not None:
            candidates.append(history[0])
    layers = getattr(model, "layers", None)
    if layers:
        candidates.append(layers[-1])
    for layer in candidates:
        if _is_softmax(layer):
            return layer.name
        if isinstance(layer, keras.Model) and layer is not model:
            inner = _softmax_output_layer(layer)
            if inner is not None:
                return f"{layer.name}/{inner}"
    return None


def _softmax_error(path: str, why: str) -> ImageEncoderError:
    return ImageEncoderError(
        f"image encoder {path!r} outputs softmax probabilities ({why}); L_img^enc uses the "
        "logits (pre-softmax output, as the released code's ResNet-50). Save the model with "
        "classifier_activation=None, e.g. keras.applications.ResNet50(weights='imagenet', "
        "classifier_activation=None).save('resnet50_imagenet.keras'), or export its logits.")


def _static_input_size(model: Any) -> int | None:
    """Square spatial input side of a Keras model with a fixed input shape, else None."""
    try:
        shape = tuple(keras.tree.flatten(model.inputs)[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    if len(shape) == 4 and isinstance(shape[1], int) and shape[1] == shape[2]:
        return shape[1]
    return None


class PretrainedImageEncoder(keras.layers.Layer):
    """Frozen image encoder: [0, 1] images -> [B, K] float32 features.

    Args:
      path: local `.keras`/`.h5` file or SavedModel directory.
      input_size: side the images are resized to (bilinear) before the encoder (default 224,
        the released code's), or None to pass them at their own size.
      input_range: (low, high) the [0, 1] images are mapped to linearly, e.g. (-1, 1), or
        (0, 255) for models that include their own normalisation; the default (0, 1) passes
        them unchanged. Ignored with `preprocessing`.
      preprocessing: None (default: no ImageNet normalisation, the released code's input), or
        a `keras.applications.imagenet_utils.preprocess_input` mode (PREPROCESSING_MODES)
        applied to the images scaled to 0–255.
      output_key: output to use when the model returns a dict.
      **kwargs: `keras.layers.Layer` arguments (name).

    Raises:
      ImageEncoderError: a URL, a missing path, an unusable model, or a model whose output is
        a softmax (its last layer's activation, or rows of a probe batch's output that are
        non-negative and sum to 1); the features must be logits.
    """

    def __init__(self, path: str, *, input_size: int | None = DEFAULT_INPUT_SIZE,
                 input_range: Sequence[float] = (0.0, 1.0), preprocessing: str | None = None,
                 output_key: str | None = None, **kwargs):
        kwargs.setdefault("name", "pretrained_image_encoder")
        super().__init__(trainable=False, **kwargs)
        if len(input_range) != 2 or input_range[0] >= input_range[1]:
            raise ImageEncoderError(f"input_range must be (low, high) with low < high, got "
                                    f"{tuple(input_range)}")
        if preprocessing is not None and preprocessing not in PREPROCESSING_MODES:
            raise ImageEncoderError(f"preprocessing must be None or one of "
                                    f"{PREPROCESSING_MODES}, got {preprocessing!r}")
        self.model_path = path
        self.preprocessing = preprocessing
        self.input_size = input_size
        self.input_range = (float(input_range[0]), float(input_range[1]))
        self.output_key = output_key
        self._encode, self._model = _load_callable(path, output_key)
        self._check_not_softmax()

    def _check_not_softmax(self):
        """Raises ImageEncoderError when the model's output is a softmax, not logits."""
        is_keras = isinstance(self._model, keras.Model)
        layer_name = _softmax_output_layer(self._model) if is_keras else None
        if layer_name is not None:
            raise _softmax_error(self.model_path,
                                 f"its output layer {layer_name!r} has a softmax activation")
        size = self.input_size or (_static_input_size(self._model) if is_keras else None)
        if size is None:
            return  # no known input size to probe at
        rng = np.random.default_rng(0)  # own generator: leaves TF's random state alone
        probe = tf.constant(rng.uniform(size=[_PROBE_BATCH, size, size, 3]), tf.float32)
        try:
            features = self.call(probe).numpy()
        except ImageEncoderError:
            raise
        except Exception as error:  # pylint: disable=broad-except
            raise ImageEncoderError(
                f"image encoder {self.model_path!r} failed on a probe batch of shape "
                f"{list(probe.shape)} (check input_size): {error}") from error
        if (features.ndim == 2 and features.shape[-1] > 1 and np.all(features >= 0.0) and
                np.allclose(features.sum(axis=-1), 1.0, rtol=0.0, atol=_SOFTMAX_ATOL)):
            raise _softmax_error(self.model_path, "the rows of its output on a probe batch are "
                                 "non-negative and sum to 1")

    def call(self, images: tf.Tensor) -> tf.Tensor:
        """Encodes images.

        Args:
          images: [B, S, S, 3] float in [0, 1].

        Returns:
          [B, K] float32 features (spatial outputs are averaged over space).
        """
        x = tf.cast(images, tf.float32)
        if self.input_size is not None:
            x = tf.image.resize(x, [self.input_size, self.input_size], method="bilinear")
        if self.preprocessing is not None:
            x = keras.applications.imagenet_utils.preprocess_input(
                255.0 * x, data_format="channels_last", mode=self.preprocessing)
        else:
            low, high = self.input_range
            x = low + (high - low) * x
        features = self._encode(x)
        if isinstance(features, dict):
            if self.output_key not in features:
                raise ImageEncoderError(f"image encoder {self.model_path!r} returns "
                                        f"{sorted(features)}; set output_key")
            features = features[self.output_key]
        features = tf.cast(features, tf.float32)
        if features.shape.rank is not None and features.shape.rank > 2:
            features = tf.reduce_mean(features, axis=list(range(1, features.shape.rank - 1)))
        return features


def load_image_encoder(path: str | None, *, input_size: int | None = DEFAULT_INPUT_SIZE,
                       input_range: Sequence[float] = (0.0, 1.0),
                       preprocessing: str | None = None,
                       output_key: str | None = None) -> PretrainedImageEncoder | None:
    """The frozen encoder of L_img^enc, or None (term off) when `path` is None or empty.

    Args:
      path: local `.keras`/`.h5` file or SavedModel directory; None or "" turns the term off.
      input_size: see PretrainedImageEncoder.
      input_range: see PretrainedImageEncoder.
      preprocessing: see PretrainedImageEncoder.
      output_key: see PretrainedImageEncoder.

    Returns:
      PretrainedImageEncoder or None.
    """
    if not path:
        return None
    return PretrainedImageEncoder(path, input_size=input_size, input_range=input_range,
                                  preprocessing=preprocessing, output_key=output_key)
