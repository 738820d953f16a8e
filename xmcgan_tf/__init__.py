"""xmcgan_tf: text-to-image GANs with cross-modal contrastive learning (TensorFlow 2 / Keras 3)."""

from xmcgan_tf import console as _console

_console.quiet_tensorflow()

__version__ = "0.1.0"
