r"""`saved_model_cli` with the tensorflow_text ops registered (STACK_NOTES §0 i).

The stock tool cannot load our exports (`Op type not registered 'CaseFoldUTF8'`): the tokenizer
uses tensorflow_text ops. Same arguments as `saved_model_cli`:

    python -m xmcgan_tf.export.saved_model_cli run --dir EXPORT_DIR/1 --tag_set serve \
        --signature_def serving_default --input_exprs 'captions=["a red circle"]'

(`--input_exprs` takes plain Python literals, not `np.array(...)`: STACK_NOTES §0 j.)
"""

import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
from tensorflow.python.tools import saved_model_cli


def entry_point() -> None:
    """The `xmcgan-saved-model-cli` console script (and `python -m
    xmcgan_tf.export.saved_model_cli`)."""
    saved_model_cli.main()


if __name__ == "__main__":
    entry_point()
