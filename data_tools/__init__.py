"""Converters of captioned image sets to the TFRecords xmcgan_tf trains on."""

import xmcgan_tf  # noqa: F401  (loads TensorFlow quietly first: see xmcgan_tf.console)
