"""Progress bars: plain lines in log files, live bars on a terminal."""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import struct
import sys
import termios
from pathlib import Path

import pytest

from avemo import progress as progress_mod
from avemo.progress import progress

SRC = Path(__file__).resolve().parents[2] / "src" / "avemo"


def _loop_to_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: object) -> str:
    log = tmp_path / "stage.log"
    with log.open("w") as f:
        monkeypatch.setattr(sys, "stderr", f)
        for epoch in range(3):
            for _ in progress(range(200), desc=f"epoch {epoch}", unit="batch", **kwargs):
                pass
        bar = progress(total=50, desc="clips", unit="clip")
        for _ in range(50):
            bar.update()
        bar.close()
    return log.read_text()


@pytest.mark.parametrize("leave", [True, False])
def test_log_file_gets_one_line_per_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leave: bool
) -> None:
    text = _loop_to_file(tmp_path, monkeypatch, leave=leave)
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    # Fast loops: one final line each (no 0/N start frame, no blank lines), even with leave=False.
    assert len(lines) == 4, lines
    assert all(line.strip() for line in lines)
    assert [line.split(":")[0] for line in lines] == ["epoch 0", "epoch 1", "epoch 2", "clips"]
    assert "200/200" in lines[0] and "50/50" in lines[3]


def test_long_loop_lines_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every update is past the interval here: still one line per displayed frame, never a '\r'.
    monkeypatch.setattr(progress_mod, "LOG_INTERVAL_S", 0.0)
    out = io.StringIO()
    for _ in progress(range(200), desc="audio", unit="clip", file=out, miniters=50):
        pass
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert 2 <= len(lines) <= 6, lines  # 50/100/150/200 (+ the final line)
    assert lines[-1].startswith("audio: 100%")


def test_terminal_keeps_live_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    master, slave = os.openpty()
    # A fresh pty is 0x0; tqdm would then draw empty frames. Give it a terminal's size.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    chunks: list[bytes] = []
    try:
        with os.fdopen(slave, "w", closefd=True) as tty:
            monkeypatch.setattr(sys, "stderr", tty)
            # 20 frames: a pty holds only a few kB until read, and this test reads afterwards.
            for _ in progress(range(20), desc="epoch 0", mininterval=0):
                pass
            tty.flush()
            while select.select([master], [], [], 0.2)[0]:  # a pty hands data back in chunks
                chunks.append(os.read(master, 1 << 16))
    finally:
        os.close(master)
    data = b"".join(chunks).decode()
    assert "\r" in data  # redrawn in place
    assert len(re.findall(r"epoch 0", data)) > 2  # several frames, not one line per loop


def test_every_progress_bar_goes_through_progress_py() -> None:
    users = [
        p.relative_to(SRC).as_posix()
        for p in SRC.rglob("*.py")
        if re.search(r"^\s*(from tqdm|import tqdm)", p.read_text(), re.M)
    ]
    assert users == ["progress.py"]
