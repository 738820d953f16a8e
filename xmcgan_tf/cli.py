"""Running a command-line tool, and ending it on an error the user can fix: one message, no
traceback.

    with cli.exit_on(GinConfigError, schema.DatasetError):
        run()

prints `error: <message>` on stderr and exits with status 2 when one of the listed errors
escapes the block (a bad binding, a missing dataset or checkpoint: the message names the
problem). The traceback is logged at debug level (`--verbosity=1` shows it).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator, Sequence

from absl import app
from absl import flags
from absl import logging

EXIT_NON_FINITE = 1  # training stopped on a NaN/Inf loss; the last good checkpoint is kept
EXIT_USER_ERROR = 2  # bad configuration, input or path
# Errors of input, configuration or paths that every entry point reports in one line:
# ValueError (bad values, unparsable JSON, gin and dataset errors derive from it) and OSError
# (missing, unreadable or unwritable files and directories, ports in use).
USER_ERRORS = (ValueError, OSError)


@contextlib.contextmanager
def exit_on(*errors: type[BaseException], code: int = EXIT_USER_ERROR) -> Iterator[None]:
    """Turns `errors` raised in the block into `error: <message>` and `sys.exit(code)`."""
    try:
        yield
    except errors as e:
        logging.debug("traceback of the error below", exc_info=True)
        logging.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(code)


def run(main: Callable[[Sequence[str]], None],
        define_flags: Callable[[], object] | None = None,
        required: Sequence[str] = (), entry_module: str | None = None) -> None:
    """Runs an entry point's `main` under `absl.app.run`, as `python -m MODULE` or as the
    `xmcgan-*` console script of pyproject.toml.

    `--help` lists the flags the entry point defines and the shared ones it uses
    (`--gin_file`, `--gin_param`), under the module's docstring: absl would otherwise show
    only the flags defined in `__main__` (none for a console script) and no usage text.

    Args:
      main: the entry point's main(argv).
      define_flags: defines the entry point's flags (None: they are defined at import).
      required: flags that must be given.
      entry_module: the entry point's module, when `main` is defined elsewhere.
    """
    if define_flags is not None:
        define_flags()
    if required:
        flags.mark_flags_as_required(list(required))
    entry_module = entry_module or main.__module__
    module = sys.modules[entry_module]
    program = sys.argv[0]
    by_module = flags.FLAGS.flags_by_module_dict()
    for owner in (entry_module, "xmcgan_tf.gin_config"):
        for flag in by_module.get(owner, []):
            flags.FLAGS.register_key_flag_for_module(program, flag)
    entry = sys.modules["__main__"]
    if not getattr(entry, "__doc__", None) and module.__doc__:
        entry.__doc__ = module.__doc__
    app.run(main)
