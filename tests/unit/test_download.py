"""Tests for avemo.download against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from avemo.download import (
    MARKER_NAME,
    download,
    extract_meld,
    fetch_meld,
    layout_missing,
)
from avemo.errors import DownloadError
from avemo.labels import LABEL_FILES, SPLIT_DIRS, SPLITS

# ------------------------------------------------------------------------------------------
# Fake MELD archives
# ------------------------------------------------------------------------------------------

CLIPS = ("dia0_utt0.mp4", "dia0_utt1.mp4")


def _clip_bytes(split: str, clip: str) -> bytes:
    # Incompressible bytes so the archive is big enough (~100 KB) to cut mid-way.
    rng = random.Random(f"{split}/{clip}")
    return rng.randbytes(16_000)


def _csv(split: str) -> bytes:
    return f"Sr No.,Utterance,Emotion\n1,hi {split},neutral\n".encode()


def _tar(entries: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                tar.addfile(info, io.BytesIO(entry[1]))
    return buf.getvalue()


def _inner(split: str, extra: list[tarfile.TarInfo | tuple[str, bytes]] | None = None) -> bytes:
    entries: list[tarfile.TarInfo | tuple[str, bytes]] = [
        (f"{SPLIT_DIRS[split]}/{clip}", _clip_bytes(split, clip)) for clip in CLIPS
    ]
    return _tar(entries + (extra or []))


def meld_archive(
    nested: bool = True,
    extra: list[tarfile.TarInfo | tuple[str, bytes]] | None = None,
    inner_extra: list[tarfile.TarInfo | tuple[str, bytes]] | None = None,
) -> bytes:
    """MELD.Raw.tar.gz look-alike: nested (per-split tar.gz) or flat (no MELD.Raw/ level)."""
    entries: list[tarfile.TarInfo | tuple[str, bytes]] = []
    for split in SPLITS:
        if nested:
            entries.append((f"MELD.Raw/{LABEL_FILES[split]}", _csv(split)))
            entries.append((f"MELD.Raw/{split}.tar.gz", _inner(split, inner_extra)))
        else:
            entries.append((LABEL_FILES[split], _csv(split)))
            entries += [(f"{SPLIT_DIRS[split]}/{clip}", _clip_bytes(split, clip)) for clip in CLIPS]
    return _tar(entries + (extra or []))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def assert_flat_layout(root: Path) -> None:
    assert layout_missing(root) == []
    for split in SPLITS:
        assert (root / LABEL_FILES[split]).read_bytes() == _csv(split)
        clips = sorted(p.name for p in (root / SPLIT_DIRS[split]).iterdir())
        assert clips == sorted(CLIPS)
        for clip in CLIPS:
            assert (root / SPLIT_DIRS[split] / clip).read_bytes() == _clip_bytes(split, clip)
    assert not (root / "MELD.Raw").exists()


# ------------------------------------------------------------------------------------------
# Local HTTP server with Range support and fault switches
# ------------------------------------------------------------------------------------------


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[dict[str, object]] = field(default_factory=list)
    # One fault per request, in order, then normal answers: "500", "drop:<body bytes sent>",
    # "stall:<seconds before answering>".
    script: list[str] = field(default_factory=list)
    ignore_range: bool = False  # always answer 200 with the whole file

    @property
    def bytes_sent(self) -> int:
        return sum(int(r["sent"]) for r in self.requests)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        state = self.server.state
        record: dict[str, object] = {
            "path": self.path,
            "range": self.headers.get("Range"),
            "sent": 0,
        }
        state.requests.append(record)
        fault, _, arg = (state.script.pop(0) if state.script else "").partition(":")
        if fault == "stall":
            time.sleep(float(arg))
        if fault == "500":
            record["status"] = 500
            self.send_error(500)
            return
        data = state.files.get(self.path)
        if data is None:
            record["status"] = 404
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and not state.ignore_range:
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                record["status"] = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        record["status"] = 206 if start else 200
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "drop":
            body = body[: int(arg)]
        self.wfile.write(body)
        self.wfile.flush()
        record["sent"] = len(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client hanging up on a stalled answer is expected here


@pytest.fixture
def server() -> Iterator[tuple[str, ServerState]]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = ServerState()
    # A short poll interval keeps shutdown (and so each test) fast.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def served(server: tuple[str, ServerState]) -> tuple[str, ServerState, bytes]:
    """The server holding one nested MELD archive at /MELD.Raw.tar.gz."""
    base, state = server
    payload = meld_archive()
    state.files["/MELD.Raw.tar.gz"] = payload
    return f"{base}/MELD.Raw.tar.gz", state, payload


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/MELD.Raw.tar.gz"


def leftovers(folder: Path) -> list[str]:
    """Hidden staging folders / part files left beside the outputs."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or ".part" in p.name)


# ------------------------------------------------------------------------------------------
# download()
# ------------------------------------------------------------------------------------------


def test_fetch_meld_downloads_and_extracts_flat_layout(served, tmp_path: Path) -> None:
    url, state, payload = served
    archive, root = tmp_path / "MELD.Raw.tar.gz", tmp_path / "meld"
    out = fetch_meld(url, archive, root, sha256(payload), retries=1, download=True, backoff_s=0)
    assert out == root
    assert_flat_layout(root)
    assert archive.read_bytes() == payload
    marker = json.loads((root / MARKER_NAME).read_text())
    assert marker["archive_bytes"] == len(payload)
    assert marker["archive_sha256"] == hashlib.sha256(payload).hexdigest()
    assert marker["checksum"] == sha256(payload)
    assert [r["range"] for r in state.requests] == [None]
    assert leftovers(tmp_path) == []

    # Idempotent: the second call finds the data and makes no request.
    fetch_meld(url, archive, root, sha256(payload), retries=1, download=True, backoff_s=0)
    assert len(state.requests) == 1


def test_cut_download_resumes_with_range_on_rerun(served, tmp_path: Path) -> None:
    url, state, payload = served
    dest = tmp_path / "a.tar.gz"
    cut = len(payload) // 2
    state.script = [f"drop:{cut}", "500"]  # progress, then a failure with no progress
    with pytest.raises(DownloadError, match="rerun to resume"):
        download(url, dest, sha256(payload), retries=0, backoff_s=0, chunk_bytes=4096)
    part = tmp_path / "a.tar.gz.part"
    assert not dest.exists()
    assert part.read_bytes() == payload[:cut]

    download(url, dest, sha256(payload), retries=0, backoff_s=0, chunk_bytes=4096)
    assert dest.read_bytes() == payload
    assert not part.exists()
    assert [r["range"] for r in state.requests] == [None, f"bytes={cut}-", f"bytes={cut}-"]
    assert [r["status"] for r in state.requests] == [200, 500, 206]
    assert state.bytes_sent == len(payload) < 2 * len(payload)


def test_dropped_connection_is_retried_within_one_call(served, tmp_path: Path) -> None:
    url, state, payload = served
    state.script = ["drop:1000"]
    dest = download(
        url,
        tmp_path / "a.tar.gz",
        sha256(payload),
        retries=2,
        backoff_s=0,
        expected_bytes=len(payload),
    )
    assert dest.read_bytes() == payload
    assert [r["range"] for r in state.requests] == [None, "bytes=1000-"]
    assert state.bytes_sent == len(payload)


def test_server_ignoring_range_restarts_from_zero(served, tmp_path: Path) -> None:
    url, state, payload = served
    state.ignore_range = True
    dest = tmp_path / "a.tar.gz"
    (tmp_path / "a.tar.gz.part").write_bytes(b"stale bytes that must not survive")
    download(url, dest, sha256(payload), retries=0, backoff_s=0)
    assert dest.read_bytes() == payload
    assert state.requests[0]["range"] == "bytes=33-"
    assert state.requests[0]["status"] == 200


def test_http_500_once_is_retried(served, tmp_path: Path) -> None:
    url, state, payload = served
    state.script = ["500"]
    dest = download(url, tmp_path / "a.tar.gz", sha256(payload), retries=1, backoff_s=0)
    assert dest.read_bytes() == payload
    assert [r["status"] for r in state.requests] == [500, 200]


def test_http_500_beyond_retries_gives_up(served, tmp_path: Path) -> None:
    url, state, payload = served
    state.script = ["500"] * 3
    with pytest.raises(DownloadError, match="gave up after 3 failed attempts"):
        download(url, tmp_path / "a.tar.gz", sha256(payload), retries=2, backoff_s=0)
    assert len(state.requests) == 3


def test_timeout_is_retried(served, tmp_path: Path) -> None:
    url, state, payload = served
    state.script = ["stall:0.6"]
    dest = download(
        url, tmp_path / "a.tar.gz", sha256(payload), retries=1, timeout_s=0.2, backoff_s=0
    )
    assert dest.read_bytes() == payload
    assert len(state.requests) == 2


def test_complete_part_gets_416_and_is_accepted(served, tmp_path: Path) -> None:
    url, state, payload = served
    (tmp_path / "a.tar.gz.part").write_bytes(payload)
    dest = download(
        url,
        tmp_path / "a.tar.gz",
        "md5:" + hashlib.md5(payload).hexdigest(),
        retries=0,
        backoff_s=0,
    )
    assert dest.read_bytes() == payload
    assert [(r["range"], r["status"]) for r in state.requests] == [(f"bytes={len(payload)}-", 416)]


def test_complete_part_of_expected_size_needs_no_request(served, tmp_path: Path) -> None:
    url, state, payload = served
    (tmp_path / "a.tar.gz.part").write_bytes(payload)
    download(url, tmp_path / "a.tar.gz", sha256(payload), expected_bytes=len(payload))
    assert state.requests == []


def test_checksum_mismatch_raises_and_leaves_no_dest(served, tmp_path: Path) -> None:
    url, state, payload = served
    dest = tmp_path / "a.tar.gz"
    wrong = "sha256:" + "0" * 64
    with pytest.raises(DownloadError) as info:
        download(url, dest, wrong, retries=0, backoff_s=0)
    msg = str(info.value)
    assert wrong in msg and sha256(payload) in msg and "meld.checksum" in msg
    assert not dest.exists()
    assert not (tmp_path / "a.tar.gz.part").exists()
    assert (tmp_path / "a.tar.gz.bad").read_bytes() == payload

    # A rerun with the right checksum starts from zero (no Range) and clears the bad file.
    download(url, dest, sha256(payload), retries=0, backoff_s=0)
    assert dest.read_bytes() == payload
    assert state.requests[-1]["range"] is None
    assert not (tmp_path / "a.tar.gz.bad").exists()


def test_existing_dest_is_verified_without_request(served, tmp_path: Path) -> None:
    url, state, payload = served
    dest = tmp_path / "a.tar.gz"
    dest.write_bytes(payload)
    assert download(url, dest, sha256(payload)) == dest
    with pytest.raises(DownloadError, match="exists but its checksum"):
        download(url, dest, "sha256:" + "1" * 64)
    assert state.requests == []


def test_no_checksum_warns(served, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url, _, payload = served
    with caplog.at_level(logging.WARNING, logger="avemo.download"):
        dest = download(url, tmp_path / "a.tar.gz", None, retries=0, backoff_s=0)
    assert dest.read_bytes() == payload
    assert any("unverified" in r.getMessage() for r in caplog.records)


def test_malformed_checksum_fails_before_any_request(served, tmp_path: Path) -> None:
    url, state, _ = served
    with pytest.raises(DownloadError, match="Invalid checksum"):
        download(url, tmp_path / "a.tar.gz", "sha1:abc")
    assert state.requests == []


def test_unreachable_host_gives_manual_help_quickly(tmp_path: Path) -> None:
    dest = tmp_path / "MELD.Raw.tar.gz"
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download(closed_port_url(), dest, None, retries=5, backoff_s=5.0)
    assert time.monotonic() - start < 3.0  # refused = permanent: no backoff loop
    msg = str(info.value)
    assert "connection refused" in msg
    assert f"place it at {dest.resolve()}" in msg
    assert "meld.root" in msg and "train_sent_emo.csv" in msg and "train_splits/" in msg
    assert not dest.exists()


def test_http_404_is_not_retried(server, tmp_path: Path) -> None:
    base, state = server
    with pytest.raises(DownloadError, match="HTTP 404.*place it at"):
        download(f"{base}/missing.tar.gz", tmp_path / "a.tar.gz", retries=5, backoff_s=0)
    assert len(state.requests) == 1


# ------------------------------------------------------------------------------------------
# fetch_meld() decisions
# ------------------------------------------------------------------------------------------


def test_fetch_meld_uses_existing_data_without_network(tmp_path: Path) -> None:
    root = tmp_path / "meld"
    for split in SPLITS:
        (root / SPLIT_DIRS[split]).mkdir(parents=True)
        (root / LABEL_FILES[split]).write_bytes(_csv(split))
    out = fetch_meld(closed_port_url(), tmp_path / "x.tar.gz", root, None, 5, download=True)
    assert out == root
    assert not (root / MARKER_NAME).exists()  # the user's folder is left untouched


def test_fetch_meld_incomplete_foreign_root_fails_before_download(served, tmp_path: Path) -> None:
    url, state, _ = served
    root = tmp_path / "meld"
    root.mkdir()
    (root / LABEL_FILES["train"]).write_bytes(_csv("train"))
    with pytest.raises(DownloadError, match="incomplete MELD.*dev_sent_emo.csv"):
        fetch_meld(url, tmp_path / "x.tar.gz", root, None, 5, download=True)
    assert state.requests == []


def test_fetch_meld_download_false_without_data(tmp_path: Path) -> None:
    root = tmp_path / "meld"
    with pytest.raises(DownloadError) as info:
        fetch_meld(closed_port_url(), tmp_path / "x.tar.gz", root, None, 5, download=False)
    msg = str(info.value)
    assert str(root.resolve()) in msg and "meld.download" in msg and "train_sent_emo.csv" in msg
    assert not root.exists()


def test_fetch_meld_download_false_extracts_placed_archive(tmp_path: Path) -> None:
    archive, root = tmp_path / "MELD.Raw.tar.gz", tmp_path / "meld"
    archive.write_bytes(meld_archive())
    fetch_meld(closed_port_url(), archive, root, None, 5, download=False)
    assert_flat_layout(root)


def test_fetch_meld_uses_placed_archive_without_request(served, tmp_path: Path) -> None:
    url, state, payload = served
    archive, root = tmp_path / "MELD.Raw.tar.gz", tmp_path / "meld"
    archive.write_bytes(payload)
    fetch_meld(url, archive, root, sha256(payload), 5, download=True)
    assert_flat_layout(root)
    assert state.requests == []


# ------------------------------------------------------------------------------------------
# extract_meld()
# ------------------------------------------------------------------------------------------


def test_extract_flat_archive(tmp_path: Path) -> None:
    archive = tmp_path / "flat.tar"
    archive.write_bytes(meld_archive(nested=False))
    extract_meld(archive, tmp_path / "meld")
    assert_flat_layout(tmp_path / "meld")


def test_extract_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, root = tmp_path / "a.tar.gz", tmp_path / "meld"
    archive.write_bytes(meld_archive())
    extract_meld(archive, root)

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("re-extracted")

    monkeypatch.setattr(tarfile, "open", boom)
    assert extract_meld(archive, root) == root


def test_extract_refuses_foreign_nonempty_root(tmp_path: Path) -> None:
    archive, root = tmp_path / "a.tar.gz", tmp_path / "meld"
    archive.write_bytes(meld_archive())
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    with pytest.raises(DownloadError, match="not made by this stage"):
        extract_meld(archive, root)
    assert (root / "notes.txt").read_text() == "mine"


def test_extract_archive_without_meld_layout(tmp_path: Path) -> None:
    archive = tmp_path / "other.tar.gz"
    archive.write_bytes(_tar([("README.txt", b"hello")]))
    with pytest.raises(DownloadError, match="missing train_sent_emo.csv"):
        extract_meld(archive, tmp_path / "meld")
    assert not (tmp_path / "meld").exists()
    assert leftovers(tmp_path) == []


def test_truncated_archive_leaves_nothing(tmp_path: Path) -> None:
    archive, root = tmp_path / "a.tar.gz", tmp_path / "meld"
    archive.write_bytes(meld_archive()[:30_000])
    with pytest.raises(DownloadError, match="Cannot extract"):
        extract_meld(archive, root)
    assert not root.exists()
    assert leftovers(tmp_path) == []


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info


@pytest.mark.parametrize(
    ("where", "member"),
    [
        ("outer", "../evil.txt"),
        ("outer", "ABSOLUTE"),
        ("outer", "symlink"),
        ("outer", "device"),
        ("inner", "../../evil_inner.txt"),
        ("inner", "symlink"),
    ],
)
def test_hostile_archive_is_refused(tmp_path: Path, where: str, member: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    archive, root = work / "MELD.Raw.tar.gz", work / "meld"
    absolute = tmp_path / "abs_evil.txt"
    entry: tarfile.TarInfo | tuple[str, bytes]
    if member == "ABSOLUTE":
        member = str(absolute)
        entry = (member, b"pwned")
    elif member == "symlink":
        member = f"{SPLIT_DIRS['train']}/passwd"
        entry = _symlink(member, "/etc/passwd")
    elif member == "device":
        member = "MELD.Raw/null"
        entry = _device(member)
    else:
        entry = (member, b"pwned")
    # The hostile member comes last, after good ones, so cleanup of partial output is tested.
    if where == "outer":
        data = meld_archive(extra=[entry])
    else:
        data = meld_archive(inner_extra=[entry])
    archive.write_bytes(data)

    with pytest.raises(DownloadError) as info:
        extract_meld(archive, root)
    msg = str(info.value)
    assert "Refusing to extract" in msg and "MELD.Raw.tar.gz" in msg and member in msg
    assert not root.exists()
    assert leftovers(work) == []
    assert not absolute.exists()
    assert not any(p.name.startswith("evil") for p in tmp_path.rglob("*"))
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))
