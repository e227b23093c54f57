"""Atomic writes: write to a temporary sibling, then rename over the target.

A killed process leaves either the old file or no file, never a half-written one that a rerun
would trust. It may leave its temporary sibling behind (``kill -9`` runs no cleanup): those are
named ``.avemo-tmp.<host>.<pid>.<target>.<random>`` so that ``avemo.run_guard`` can recognise
them, tell whether their writer is gone, and remove them without touching anything else.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMP_MARKER = ".avemo-tmp."
# host and pid of the writer: a stale entry is one whose process is gone (see temp_owner).
_TEMP_NAME = re.compile(r"^\.avemo-tmp\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>[0-9]+)\.")


def host_tag() -> str:
    """This machine's name as it appears in temporary names (no dots: they separate fields)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "localhost"


def _temp_prefix(target: Path) -> str:
    return f"{TEMP_MARKER}{host_tag()}.{os.getpid()}.{target.name}."


def temp_owner(name: str) -> tuple[str, int] | None:
    """(host, pid) of the process that made temporary entry ``name``; None if not one of ours."""
    m = _TEMP_NAME.match(name)
    return (m["host"], int(m["pid"])) if m else None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    ``suffix`` defaults to the target's own suffix so writers that infer the format from the
    extension (numpy, pandas, PyAV) still work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=_temp_prefix(target), suffix=target.suffix if suffix is None else suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; results are shared artefacts, so give them normal modes.
        if tmp_path.exists():
            tmp_path.chmod(0o644)
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; it replaces ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), dir=target.parent))
    try:
        yield tmp
        tmp.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(target: str | os.PathLike[str], text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
