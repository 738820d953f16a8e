r"""Exports a training run as a versioned SavedModel for TF Serving (SPEC §7).

    python -m xmcgan_tf.export --model_dir=MODEL_DIR --export_dir=EXPORT_DIR \
        [--version=N] [--checkpoint=PATH] [--text_preprocessor=H --text_encoder=H] \
        [--skip_if_exported]

Writes EXPORT_DIR/<version>/ (the next integer unless --version), never overwriting a version;
with --skip_if_exported, writes nothing when a version already holds the checkpoint.
The text-encoder handles default to those recorded in the run's dataset info.
"""

from __future__ import annotations

from typing import Sequence

from absl import app
from absl import flags

from xmcgan_tf import run_dir
from xmcgan_tf import cli
from xmcgan_tf.export import export_lib

FLAGS = flags.FLAGS


def _define_flags() -> None:
    """Command-line flags; defined only when the module runs as a program."""
    flags.DEFINE_string("model_dir", None, "Training run directory MODEL_DIR.")
    flags.DEFINE_string("export_dir", None,
                        "Export base directory; versions go in <export_dir>/<N>/.")
    flags.DEFINE_integer("version", None, "Version number to write (default: next integer).")
    flags.DEFINE_string("checkpoint", None, "Checkpoint path (default: the run's latest).")
    flags.DEFINE_string("text_preprocessor", None, "Text preprocessor handle (default: the run's).")
    flags.DEFINE_string("text_encoder", None, "Text encoder handle (default: the run's).")
    flags.DEFINE_enum("sentence_embedding", None, ["official", "masked_mean", "cls"],
                      "Sentence-embedding method (default: the run's).")
    flags.DEFINE_bool("skip_if_exported", False, "Export nothing when a version in "
                      "--export_dir was already exported from the checkpoint (re-runnable "
                      "scripts export only new checkpoints).")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    with cli.exit_on(export_lib.ExportError, run_dir.CheckpointError,
                     *cli.USER_ERRORS):
        if FLAGS.skip_if_exported:
            checkpoint = run_dir.resolve_checkpoint(FLAGS.model_dir,
                                                              FLAGS.checkpoint)
            existing = export_lib.version_holding(FLAGS.export_dir, checkpoint)
            if existing is not None:
                print(f"version {existing} already holds {checkpoint}; nothing exported")
                return
        result = export_lib.export(
            FLAGS.model_dir, FLAGS.export_dir, version=FLAGS.version,
            checkpoint=FLAGS.checkpoint, text_preprocessor=FLAGS.text_preprocessor,
            text_encoder=FLAGS.text_encoder, sentence_embedding=FLAGS.sentence_embedding)
    print(f"exported step {result.step} ({result.checkpoint_path}) as version {result.version}: "
          f"{result.path}")


def entry_point() -> None:
    """The `xmcgan-export` console script (and `python -m xmcgan_tf.export`)."""
    cli.run(main, _define_flags, required=("model_dir", "export_dir"))


if __name__ == "__main__":
    entry_point()
