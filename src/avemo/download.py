"""Fetch, verify and unpack the real MELD raw corpus (``MELD.Raw.tar.gz``, ~10.9 GB).

Standard library only (urllib, hashlib, tarfile) plus tqdm, so the stage works wherever Python
does. Three public functions:

- :func:`download`: resumable, retrying, checksum-verified download of one file.
- :func:`extract_meld`: safe extraction of MELD's nested archive into MELD's flat layout.
- :func:`fetch_meld`: the stage function (skip when the data is already on disk, else both).

Files on disk while working:

- ``<dest>.part``: bytes received so far; a rerun resumes it with an HTTP ``Range`` request.
- ``<dest>.bad``: a complete download whose checksum did not match. It is moved out of the way
  (not left as ``.part``) because a complete ``.part`` would be "resumed" into the same bad bytes
  forever; the next run starts from zero, and the file stays for inspection until then.
- ``<root>/.extracted.json``: written last inside the extracted tree; says which archive (size,
  SHA-256) the tree came from.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import socket
import ssl
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from avemo.atomic import write_json
from avemo.errors import DownloadError
from avemo.labels import LABEL_FILES, SPLIT_DIRS, SPLITS
from avemo.progress import Bar, progress

log = logging.getLogger(__name__)

MELD_URL = "https://huggingface.co/datasets/declare-lab/MELD/resolve/main/MELD.Raw.tar.gz"
MELD_ARCHIVE_BYTES = 10_878_146_150
MARKER_NAME = ".extracted.json"

_HASHES = ("sha256", "md5")
_CHECKSUM_RE = re.compile(r"^(sha256|md5):([0-9a-fA-F]+)$")
_HEX_LEN = {"sha256": 64, "md5": 32}
_USER_AGENT = "avemo-download/0.1 (+urllib)"
# HTTP statuses worth retrying: the server may answer differently a moment later.
_TRANSIENT_HTTP = {408, 425, 429}
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")


# --------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------


def parse_checksum(checksum: str) -> tuple[str, str]:
    """Split ``"sha256:<hex>"`` / ``"md5:<hex>"`` into ``(algorithm, lower-case hex)``."""
    match = _CHECKSUM_RE.match(checksum.strip())
    if not match or len(match.group(2)) != _HEX_LEN[match.group(1).lower()]:
        raise DownloadError(
            f"Invalid checksum {checksum!r}: expected 'sha256:<64 hex digits>' or "
            "'md5:<32 hex digits>'. Fix `meld.checksum` in config.yaml (or set it to null)."
        )
    return match.group(1).lower(), match.group(2).lower()


def file_digest(path: Path | str, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks with a progress bar (archives are ~11 GB)."""
    path = Path(path)
    digest = hashlib.new(algorithm)
    with (
        path.open("rb") as f,
        progress(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"{algorithm} {path.name}",
            mininterval=0.5,
            leave=False,
        ) as bar,
    ):
        while block := f.read(1 << 20):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def _verify(path: Path, checksum: str) -> tuple[bool, str]:
    """(matches, actual ``"algo:hex"``) for ``path`` against ``checksum``."""
    algorithm, expected = parse_checksum(checksum)
    actual = file_digest(path, algorithm)
    return actual == expected, f"{algorithm}:{actual}"


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------


def manual_help(url: str, dest: Path | str) -> str:
    """How to provide the corpus by hand; appended to every 'cannot download' message."""
    return (
        f"To provide MELD by hand: download {url} on a machine with internet access and place "
        f"it at {Path(dest).resolve()} (a rerun verifies and extracts it without the network), "
        "or extract it yourself and set `meld.root` in config.yaml to the folder holding "
        "train_sent_emo.csv and train_splits/ (with `meld.download: false`)."
    )


class _Transient(Exception):
    """A failure worth retrying (timeout, reset, 5xx, short read)."""


class _Permanent(Exception):
    """A failure retrying cannot fix (404, DNS failure, nothing listening)."""


def _describe_url_error(exc: urllib.error.URLError) -> tuple[bool, str]:
    """(transient, description) for a failure before any response arrived."""
    reason = exc.reason
    if isinstance(reason, socket.gaierror):
        return False, f"cannot resolve the host name ({reason}); are you offline?"
    if isinstance(reason, ConnectionRefusedError):
        return False, f"connection refused ({reason}): nothing is listening at that address"
    if isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return False, f"network unreachable ({reason}); are you offline?"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return False, f"TLS certificate check failed ({reason})"
    return True, f"cannot connect ({reason})"


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) from ``Content-Range: bytes a-b/total`` or ``bytes */total``."""
    match = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", header or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _attempt(
    url: str, part: Path, timeout_s: float, chunk_bytes: int, bar: Bar
) -> tuple[int, int | None]:
    """One HTTP request: append to (or restart) ``part``.

    Returns (bytes received, total size or None). Raises _Transient/_Permanent; a request whose
    ``.part`` already holds the whole file (416) returns (0, size).
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            # Nothing left after `offset`: the part is complete, unless the server's file is
            # smaller than our part (a stale part of another file): then start over.
            _, total = _content_range(exc.headers.get("Content-Range"))
            if total is not None and total != offset:
                part.unlink()
                msg = f"stale partial file ({offset} bytes, server has {total})"
                raise _Transient(msg) from exc
            return 0, offset
        if exc.code >= 500 or exc.code in _TRANSIENT_HTTP:
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from exc
        raise _Permanent(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        transient, what = _describe_url_error(exc)
        raise (_Transient if transient else _Permanent)(what) from exc
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _Transient(f"{type(exc).__name__}: {exc}") from exc

    with response:
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Transient(f"server resumed at byte {start}, not {offset}; restarting")
            mode = "ab"
        else:
            if offset:
                log.warning("%s: server ignored the Range request; restarting from 0", url)
                offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None and length.isdigit() else None
            mode = "wb"
        bar.reset(total=total)
        bar.update(offset)
        received = 0
        with part.open(mode) as f:
            while True:
                try:
                    block = response.read(chunk_bytes)
                except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                    raise _Transient(f"{type(exc).__name__} after {received} bytes") from exc
                except OSError as exc:  # e.g. ssl errors mid-stream
                    raise _Transient(f"{exc} after {received} bytes") from exc
                if not block:
                    break
                try:
                    f.write(block)
                except OSError as exc:  # disk full: retrying will not help
                    raise DownloadError(
                        f"Cannot write {part}: {exc}. Free disk space (MELD needs ~11 GB for "
                        "the archive plus ~11 GB extracted) and rerun to resume."
                    ) from exc
                received += len(block)
                bar.update(len(block))
            f.flush()
            os.fsync(f.fileno())
    # http.client returns b"" (no error) when the peer closes early: check the length ourselves.
    if total is not None and offset + received < total:
        raise _Transient(f"connection closed after {offset + received} of {total} bytes")
    return received, total


def download(
    url: str,
    dest: Path | str,
    checksum: str | None = None,
    retries: int = 5,
    timeout_s: float = 60,
    chunk_bytes: int = 1 << 20,
    expected_bytes: int | None = None,
    *,
    backoff_s: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part``; verify; rename into place.

    - Idempotent: an existing ``dest`` that verifies (or any ``dest`` when ``checksum`` is None)
      is returned without touching the network; one that fails verification raises.
    - ``retries``: how many consecutive failed attempts (no byte received) are retried, with
      exponential backoff starting at ``backoff_s`` (capped at 60 s). An attempt that made
      progress resets the count, so a long download over a flaky link still finishes.
    - ``checksum``: ``"sha256:<hex>"`` or ``"md5:<hex>"``; None skips verification (warns).
    - Checksum mismatch: the bytes move to ``dest.bad`` and DownloadError is raised.
    - Unreachable host, DNS failure, 4xx: DownloadError with :func:`manual_help`.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    bad = dest.with_name(dest.name + ".bad")
    if checksum is not None:
        parse_checksum(checksum)  # fail on a malformed checksum before downloading 11 GB

    if dest.exists():
        if checksum is None:
            log.warning("%s exists; no checksum configured, using it unverified", dest)
            return dest
        ok, actual = _verify(dest, checksum)
        if ok:
            log.info("%s exists and matches %s", dest, checksum)
            return dest
        raise DownloadError(
            f"{dest} exists but its checksum is {actual}, expected {checksum}. Delete it to "
            "download again, or fix `meld.checksum` in config.yaml if the file is known good."
        )

    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    last_error = ""
    with progress(
        total=expected_bytes,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=dest.name,
        mininterval=0.5,
    ) as bar:
        while True:
            have = part.stat().st_size if part.exists() else 0
            if expected_bytes is not None and have == expected_bytes:
                break  # complete part from an earlier run: no request needed
            if expected_bytes is not None and have > expected_bytes:
                log.warning(
                    "%s is larger than expected (%d > %d); restarting", part, have, expected_bytes
                )
                part.unlink()
            try:
                _, total = _attempt(url, part, timeout_s, chunk_bytes, bar)
            except _Permanent as exc:
                raise DownloadError(
                    f"Cannot download {url}: {exc}. {manual_help(url, dest)}"
                ) from exc
            except _Transient as exc:
                now = part.stat().st_size if part.exists() else 0
                failures = 0 if now > have else failures + 1
                last_error = str(exc)
                if failures > retries:
                    raise DownloadError(
                        f"Cannot download {url}: gave up after {retries + 1} failed attempts "
                        f"in a row (last: {last_error}). {now} bytes are kept in {part}; "
                        f"rerun to resume. {manual_help(url, dest)}"
                    ) from exc
                delay = min(backoff_s * 2 ** max(failures - 1, 0), 60.0)
                log.warning("download of %s: %s; retrying in %.1f s", url, exc, delay)
                time.sleep(delay)
                continue
            if expected_bytes is not None and total is not None and total != expected_bytes:
                log.warning(
                    "%s: server size %d differs from expected %d", url, total, expected_bytes
                )
            break

    size = part.stat().st_size
    if checksum is None:
        log.warning("no checksum configured for %s: %s is used unverified", url, dest)
    else:
        ok, actual = _verify(part, checksum)
        if not ok:
            os.replace(part, bad)
            raise DownloadError(
                f"Checksum mismatch for {url}: expected {checksum}, got {actual} ({size} bytes). "
                f"The bytes were moved to {bad} (not kept as {dest}); the next run downloads "
                "again from scratch. If the file is known good (the upstream file changed), "
                "fix `meld.checksum` in config.yaml."
            )
    os.replace(part, dest)  # atomic: `dest` only ever names a complete, verified file
    bad.unlink(missing_ok=True)
    return dest


_download = download  # fetch_meld's `download` flag shadows the function's name


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------


def layout_missing(root: Path | str) -> list[str]:
    """Names of MELD's label CSVs and split folders absent from ``root`` ([] = complete)."""
    root = Path(root)
    missing = [LABEL_FILES[s] for s in SPLITS if not (root / LABEL_FILES[s]).is_file()]
    missing += [SPLIT_DIRS[s] + "/" for s in SPLITS if not (root / SPLIT_DIRS[s]).is_dir()]
    return missing


class _HashingReader:
    """File wrapper that hashes what tarfile streams through it (one pass over 11 GB, not two)."""

    def __init__(self, f: IO[bytes], bar: Bar) -> None:
        self._f = f
        self._bar = bar
        self.digest = hashlib.sha256()
        self.nbytes = 0

    def read(self, n: int = -1) -> bytes:
        block = self._f.read(n)
        self.digest.update(block)
        self.nbytes += len(block)
        self._bar.update(len(block))
        return block

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _is_archive(member: tarfile.TarInfo) -> bool:
    return member.isfile() and member.name.lower().endswith(_ARCHIVE_SUFFIXES)


def _strict_filter(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo | None:
    """tarfile's ``data`` filter, plus: refuse absolute names instead of silently stripping '/'.

    MELD has no absolute member names, so one means a broken or hostile archive.
    """
    if member.name.startswith(("/", os.sep)):
        raise tarfile.AbsolutePathError(member)
    return tarfile.data_filter(member, dest_path)


def _extract_stream(
    tar: tarfile.TarFile, dest: Path, label: str, on_archive: Callable[[tarfile.TarInfo], None]
) -> None:
    """Extract a streamed tar into ``dest`` through :func:`_strict_filter`.

    Nested archives are handed to ``on_archive`` instead of being written to disk, so MELD
    needs disk space for the clips once, not twice.
    """
    member: tarfile.TarInfo | None = None
    try:
        for member in tar:
            if _is_archive(member):
                on_archive(member)
            else:
                tar.extract(member, dest, filter=_strict_filter)
    except tarfile.FilterError as exc:
        bad = getattr(exc, "tarinfo", member)
        name = bad.name if bad is not None else "?"
        raise DownloadError(
            f"Refusing to extract {label}: member {name!r} is unsafe ({exc}). The archive is "
            "corrupt or hostile; delete it and download it again from the official source."
        ) from exc
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        where = f" at member {member.name!r}" if member is not None else ""
        raise DownloadError(
            f"Cannot extract {label}{where}: {type(exc).__name__}: {exc}. If the archive is "
            "truncated or corrupt, delete it and rerun to download it again; if the disk is "
            "full, free space (MELD needs ~11 GB extracted)."
        ) from exc


def _find(raw: Path, name: str, want_dir: bool) -> Path | None:
    """Shallowest path named ``name`` under ``raw`` (MELD.Raw/ or flat, any wrapper depth)."""
    hits = [p for p in raw.rglob(name) if (p.is_dir() if want_dir else p.is_file())]
    hits = [p for p in hits if not p.is_symlink()]
    return min(hits, key=lambda p: (len(p.parts), str(p))) if hits else None


def _read_marker(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def extract_meld(archive: Path | str, root: Path | str, checksum: str | None = None) -> Path:
    """Unpack MELD.Raw.tar.gz into ``root``: three label CSVs + three split folders, flat.

    Handles the nested layout (``MELD.Raw/{train,dev,test}.tar.gz`` holding ``train_splits/``,
    ``dev_splits_complete/``, ``output_repeated_splits_test/``) and already-flat archives (with or
    without the ``MELD.Raw/`` level). Every member goes through tarfile's ``data`` filter (no
    ``..``, absolute paths, links leaving the tree or device files); a refusal raises
    DownloadError naming the archive and member. Work happens in a temporary folder beside
    ``root`` that is renamed onto it at the end, so a killed run leaves no complete-looking
    ``root``. ``root/.extracted.json`` records the archive's size and SHA-256 (and ``checksum``
    if given). Idempotent: a ``root`` whose marker matches the archive's size is left alone.
    """
    archive, root = Path(archive), Path(root)
    marker = _read_marker(root) if root.is_dir() else None
    if marker is not None and not layout_missing(root):
        if not archive.exists() or marker.get("archive_bytes") == archive.stat().st_size:
            log.info("%s already extracted from %s", root, marker.get("archive"))
            return root
    if not archive.is_file():
        raise DownloadError(
            f"Cannot extract {archive}: no such file. {manual_help(MELD_URL, archive)}"
        )
    if root.exists() and (not root.is_dir() or (any(root.iterdir()) and marker is None)):
        raise DownloadError(
            f"Cannot extract {archive} into {root}: it exists and was not made by this stage "
            f"(no {MARKER_NAME}). Remove it, or point `meld.root` in config.yaml at an empty or "
            "absent folder."
        )

    root.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{root.name}.extract.", dir=root.parent))
    try:
        raw, out = stage / "raw", stage / "out"
        raw.mkdir()
        out.mkdir()
        size = archive.stat().st_size
        with (
            archive.open("rb") as f,
            progress(
                total=size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"extract {archive.name}",
                mininterval=0.5,
            ) as bar,
        ):
            reader = _HashingReader(f, bar)

            def inner(member: tarfile.TarInfo) -> None:
                label = f"{archive}:{member.name}"
                fileobj = outer.extractfile(member)
                assert fileobj is not None  # _is_archive checked isfile()
                try:
                    with tarfile.open(fileobj=fileobj, mode="r|*") as nested:
                        _extract_stream(nested, raw, label, _no_nesting(label))
                except (tarfile.TarError, EOFError, zlib.error) as exc:
                    raise DownloadError(
                        f"Cannot read nested archive {label}: {exc}. Delete {archive} and "
                        "rerun to download it again."
                    ) from exc

            try:
                outer = tarfile.open(fileobj=reader, mode="r|*")
            except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
                raise DownloadError(
                    f"Cannot open {archive} as a tar archive: {exc}. Delete it and rerun to "
                    "download it again."
                ) from exc
            with outer:
                _extract_stream(outer, raw, str(archive), inner)
            reader.drain()  # hash the trailer tarfile did not need

        missing = []
        for name, is_dir in [(LABEL_FILES[s], False) for s in SPLITS] + [
            (SPLIT_DIRS[s], True) for s in SPLITS
        ]:
            found = _find(raw, name, is_dir)
            if found is None:
                missing.append(name + ("/" if is_dir else ""))
            else:
                os.rename(found, out / name)
        if missing:
            raise DownloadError(
                f"{archive} does not contain MELD's layout: missing {', '.join(missing)}. Is it "
                "MELD.Raw.tar.gz? Delete it and rerun to download it again."
            )
        write_json(
            out / MARKER_NAME,
            {
                "archive": str(archive.resolve()),
                "archive_bytes": size,
                "archive_sha256": reader.digest.hexdigest(),
                "checksum": checksum,
            },
        )
        if root.exists():
            shutil.rmtree(root)  # empty, or our own earlier extraction (marker checked above)
        os.replace(out, root)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return root


def _no_nesting(label: str) -> Callable[[tarfile.TarInfo], None]:
    """MELD nests one level only; an archive inside an inner archive is extracted as a file."""

    def refuse(member: tarfile.TarInfo) -> None:
        raise DownloadError(
            f"Unexpected archive {member.name!r} nested inside {label}; MELD nests one level only."
        )

    return refuse


# --------------------------------------------------------------------------------------------
# Stage
# --------------------------------------------------------------------------------------------


def fetch_meld(
    url: str,
    archive_path: Path | str,
    root: Path | str,
    checksum: str | None = None,
    retries: int = 5,
    download: bool = True,
    expected_bytes: int | None = None,
    *,
    timeout_s: float = 60,
    backoff_s: float = 1.0,
) -> Path:
    """Stage: make ``root`` hold MELD's label CSVs and split folders; return ``root``.

    - ``root`` already complete (the user has MELD on disk): nothing happens, no network.
    - ``download`` False: extract ``archive_path`` if it exists, else DownloadError saying
      where to put the data.
    - otherwise: :func:`download` (resumable, verified) then :func:`extract_meld`.
    ``expected_bytes`` defaults to MELD's known size when ``url`` is the official one.
    """
    root, archive_path = Path(root), Path(archive_path)
    missing = layout_missing(root)
    if not missing:
        log.info("MELD found at %s; nothing to fetch", root)
        return root
    if root.is_dir() and any(root.iterdir()) and _read_marker(root) is None:
        # Checked before downloading 11 GB that extract_meld would then refuse to write.
        raise DownloadError(
            f"{root.resolve()} holds an incomplete MELD (missing: {', '.join(missing)}) that this "
            "stage did not make. Add the missing items, or point `meld.root` in config.yaml at "
            "an empty or absent folder to download MELD there."
        )
    if not download and not archive_path.is_file():
        raise DownloadError(
            f"MELD not found at {root} (missing: {', '.join(missing)}) and `meld.download` is "
            f"false. Put MELD's label CSVs and split folders in {root.resolve()}, or place "
            f"MELD.Raw.tar.gz at {archive_path.resolve()}, or set `meld.download: true` in "
            "config.yaml."
        )
    if download:
        if expected_bytes is None and url == MELD_URL:
            expected_bytes = MELD_ARCHIVE_BYTES
        _download(
            url,
            archive_path,
            checksum=checksum,
            retries=retries,
            timeout_s=timeout_s,
            expected_bytes=expected_bytes,
            backoff_s=backoff_s,
        )
    return extract_meld(archive_path, root, checksum=checksum)
