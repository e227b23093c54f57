"""Faults of the machine, not of the data or the config, told in plain words.

A full disk shows up in many shapes: ``OSError(ENOSPC)`` from Python's own writes, pyarrow's
``OSError`` with the text only, and torch.save's ``RuntimeError: PytorchStreamWriter failed
writing file data/234: file write failed`` (no errno at all). ``disk_full_error`` recognises
each and turns it into one DiskFullError that names the disk holding the results folder.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from avemo.errors import DiskFullError
from avemo.run_guard import LOCK_NAME  # the results-folder lock: marks results_dir

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# Texts of a failed write whose exception carries no errno (pyarrow, torch's zip writer).
_FULL_TEXTS = ("No space left on device", "Disk quota exceeded")
# torch.save's zip writer reports a failed fwrite without the reason ("file write failed", or
# "unexpected pos N vs M" from inline_container.cc): on a results disk that is all but full,
# that reason is the disk.
_TORCH_WRITE = ("PytorchStreamWriter failed writing file", "inline_container.cc",
                "file write failed")
NEARLY_FULL_BYTES = 1 << 30  # less free than this after a failed torch write: the disk was full


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _certain(exc: BaseException) -> bool:
    return any((isinstance(e, OSError) and e.errno in _FULL_ERRNOS)
               or any(t in str(e) for t in _FULL_TEXTS) for e in _chain(exc))


def _torch_write(exc: BaseException) -> str | None:
    for e in _chain(exc):
        text = str(e)
        if any(t in text for t in _TORCH_WRITE):
            return (text.strip().splitlines() or [""])[0][:200]
    return None


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) is a write that found no space,
    or torch's write failure, which does not say why (``disk_full_error`` tells them apart)."""
    return _certain(exc) or _torch_write(exc) is not None


def results_root(path: str | os.PathLike[str]) -> Path:
    """The results folder above ``path`` (the one holding ``.avemo.lock``), else the nearest
    existing folder on the way up: the disk to name is the one that folder lives on."""
    p = Path(os.path.abspath(path))
    for folder in (p, *p.parents):
        if (folder / LOCK_NAME).exists():
            return folder
    while not p.is_dir() and p != p.parent:
        p = p.parent
    return p


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def disk_full_error(exc: BaseException, output: str | os.PathLike[str],
                    needed_bytes: int | None = None) -> DiskFullError:
    """The one-line DiskFullError for ``exc``, a write under ``output`` that failed.

    Free space is read now: the step's partial file is already gone (atomic writes remove it),
    so it may show a little more room than the write found.
    """
    root = results_root(output)
    try:
        free: int | None = shutil.disk_usage(root).free
        room = f"{_size(free)} free of {_size(shutil.disk_usage(root).total)} now"
    except OSError:
        free, room = None, "free space unknown"
    need = f"; this step needed {_size(needed_bytes)} more" if needed_bytes else ""
    torch_text = None if _certain(exc) else _torch_write(exc)
    if torch_text is not None and free is not None and free >= NEARLY_FULL_BYTES:
        return DiskFullError(
            f"a file under {root} could not be written (torch: {torch_text}); the disk holding "
            f"it has {room}: it most likely filled up while this step wrote (its partial file "
            f"is removed), or a disk quota was reached. Free space and run the same command "
            f"again (finished steps are kept)."
        )
    return DiskFullError(
        f"no space left on device: the disk holding {root} is full ({room}{need}). "
        f"Free space and run the same command again (finished steps are kept)."
    )


def disk_full_notice(results_dir: str | os.PathLike[str],
                     below: int = NEARLY_FULL_BYTES) -> str | None:
    """The one-line notice for a run that failed on an all but full results disk, or None.

    A job's own message goes to its log under results_dir: on a full disk that write can fail
    too, and the user would see a failed job with an empty log. The main process (its output is
    the terminal) says it instead.
    """
    root = results_root(results_dir)
    try:
        usage = shutil.disk_usage(root)
    except OSError:
        return None
    if usage.free >= below:
        return None
    return (f"no space left on device: the disk holding {root} is full ({_size(usage.free)} "
            f"free of {_size(usage.total)}). Free space and run the same command again "
            f"(finished steps are kept).")
