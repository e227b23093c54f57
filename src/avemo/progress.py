"""Progress bars that suit their stream: live bars on a terminal, plain lines in a log file.

tqdm redraws a bar in place with '\\r', so a log file (Snakemake/SLURM redirect stderr to
results/logs/) gets one huge line of frames. Off a terminal, :func:`progress` keeps tqdm's own
throttling (``mininterval``) but writes each frame as its own line, skips the empty 0/N frame,
and always ends with a final line (``leave=True``): one line per short loop (an epoch, a stage),
one per ``LOG_INTERVAL_S`` for long ones.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import IO, Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

Bar = tqdm  # the type progress() returns, for annotations

LOG_INTERVAL_S = 30.0  # off a terminal: at most one line per bar this often (plus the final one)
LOG_NCOLS = 100  # fixed width: tqdm cannot ask a file for its width

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # cursor moves tqdm emits for nested bars


class _Lines:
    """File for tqdm off a terminal: every frame becomes one line, no '\\r', no cursor moves.

    tqdm writes a whole frame per ``write`` ('\\r' + text + padding), so splitting each write
    on '\\r'/'\\n' and keeping the non-blank parts yields exactly one line per displayed frame.
    """

    def __init__(self, fp: IO[str]) -> None:
        self._fp = fp

    def write(self, s: str) -> int:
        for part in re.split(r"[\r\n]", _ANSI.sub("", s)):
            if part.strip():
                self._fp.write(part.rstrip() + "\n")
        return len(s)

    def flush(self) -> None:
        self._fp.flush()


class _LogBar(tqdm):  # type: ignore[type-arg]  # tqdm is generic only in its stubs
    """tqdm whose frame at n == 0 (written at construction) is dropped: it says nothing in a log."""

    def refresh(self, nolock: bool = False, lock_args: Any = None) -> bool:
        if self.n == 0:
            return False
        return bool(super().refresh(nolock=nolock, lock_args=lock_args))


def _is_terminal(fp: IO[str]) -> bool:
    try:
        return bool(fp.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress(
    iterable: Iterable[T] | None = None,
    total: float | None = None,
    *,
    desc: str = "",
    unit: str = "it",
    file: IO[str] | None = None,
    **kwargs: Any,
) -> tqdm:  # type: ignore[type-arg]
    """A tqdm over ``iterable`` (or a manual bar of ``total``) configured for ``file`` (stderr).

    Extra keyword arguments go to tqdm (``leave``, ``unit_scale``, ``disable``...). Off a
    terminal ``mininterval`` (and ``maxinterval``, whose monitor thread would refresh anyway) is
    ``LOG_INTERVAL_S`` and ``leave`` is forced on, so each bar ends with one line saying how
    much was done and how fast.
    """
    fp = sys.stderr if file is None else file
    if _is_terminal(fp):
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=fp, **kwargs)
    # A caller's mininterval is a terminal redraw rate; a log wants the log interval.
    kwargs["mininterval"] = kwargs["maxinterval"] = LOG_INTERVAL_S
    kwargs["leave"] = True
    kwargs.setdefault("ncols", LOG_NCOLS)
    kwargs.setdefault("ascii", True)  # '#' bars: no multi-byte blocks in logs
    return _LogBar(iterable, total=total, desc=desc, unit=unit, file=_Lines(fp), **kwargs)
