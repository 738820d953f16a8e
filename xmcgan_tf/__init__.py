"""xmcgan_tf: text-to-image GANs with cross-modal contrastive learning (TensorFlow 2 / Keras 3)."""

__version__ = "0.1.0"
