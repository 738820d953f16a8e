"""Ending a command-line tool on an error the user can fix: one message, no traceback.

    with cli.exit_on(GinConfigError, schema.DatasetError):
        run()

prints `error: <message>` on stderr and exits with status 2 when one of the listed errors
escapes the block (a bad binding, a missing dataset or checkpoint: the message names the
problem). The traceback is logged at debug level (`--verbosity=1` shows it).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from absl import logging

EXIT_NON_FINITE = 1  # training stopped on a NaN/Inf loss; the last good checkpoint is kept
EXIT_USER_ERROR = 2  # bad configuration, input or path


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
