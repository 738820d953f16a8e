"""Progress of the tools' long work: bars with an ETA for loops (evaluation, real
statistics), numbered, timed stages for the rest (export, building the text encoder).

On a terminal the bar redraws in place; in a log file (stderr not a TTY) it writes a line at
most every `LOG_INTERVAL_SECONDS`, so that logs stay short.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterable, Iterator, TypeVar

import tqdm
from absl import logging

LOG_INTERVAL_SECONDS = 30.0
T = TypeVar("T")


def bar(iterable: Iterable[T], *, desc: str, total: int | None = None,
        unit: str = "batch") -> Iterator[T]:
    """`iterable` with a tqdm bar on stderr (count, rate and ETA when `total` is known)."""
    interactive = sys.stderr.isatty()
    return iter(tqdm.tqdm(iterable, desc=desc, total=total, unit=unit, leave=True,
                          mininterval=0.5 if interactive else LOG_INTERVAL_SECONDS,
                          dynamic_ncols=True, file=sys.stderr))


class Stages:
    """Numbered stages of a tool that has no loop to count (export, building the encoder):

        stages = progress.Stages(3)
        with stages("loading the generator"):
            ...

    logs `[1/3] loading the generator ...` when a stage starts and its time when it ends.
    """

    def __init__(self, total: int):
        self.total = total
        self._index = 0

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self._index += 1
        prefix = f"[{self._index}/{self.total}] {name}"
        logging.info("%s ...", prefix)
        start = time.perf_counter()
        yield
        logging.info("%s: done in %.1f s", prefix, time.perf_counter() - start)
