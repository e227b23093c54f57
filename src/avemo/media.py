"""Probing one media clip with PyAV: what streams it has, how long it is, whether it decodes."""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

# Packets read while looking for the first decodable video/audio frame. MELD clips interleave
# audio and video within a few packets; the cap keeps a file with a dead stream cheap to probe.
_MAX_PROBE_PACKETS = 400
_MAX_ERROR_CHARS = 200


def empty_probe() -> dict[str, Any]:
    """The probe of a clip that is not there (every flag False, numbers 0/NaN)."""
    return {
        "exists": False,
        "size_bytes": 0,
        "duration_s": math.nan,
        "has_video": False,
        "has_audio": False,
        "fps": math.nan,
        "width": 0,
        "height": 0,
        "audio_rate": 0,
        "audio_channels": 0,
        "error": "",
    }


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


def _seconds(value: int | None, time_base: Fraction | None) -> float:
    if value is None or time_base is None:
        return math.nan
    return float(value * time_base)


def _duration(container: av.container.InputContainer) -> float:
    """Container duration, else the longest stream duration, else NaN."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    stream_durations = [
        _seconds(s.duration, s.time_base) for s in container.streams if s.duration is not None
    ]
    finite = [d for d in stream_durations if math.isfinite(d)]
    return max(finite) if finite else math.nan


def _first_frames(
    container: av.container.InputContainer,
    video: av.video.stream.VideoStream | None,
    audio: av.audio.stream.AudioStream | None,
) -> tuple[bool, bool, str]:
    """Decode until one frame of each present stream comes out; report which did."""
    streams = [s for s in (video, audio) if s is not None]
    got = {s.index: False for s in streams}
    error = ""
    try:
        for n, packet in enumerate(container.demux(streams)):
            if n >= _MAX_PROBE_PACKETS or all(got.values()):
                break
            try:
                if packet.decode():
                    got[packet.stream.index] = True
            except av.error.FFmpegError as exc:  # one bad packet: keep looking
                error = _short(exc)
    except av.error.FFmpegError as exc:  # demuxing itself failed (e.g. truncated data)
        error = _short(exc)
    has_video = video is not None and got[video.index]
    has_audio = audio is not None and got[audio.index]
    return has_video, has_audio, error


def probe_clip(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Describe one clip; never raises for a bad file.

    Returns ``exists, size_bytes, duration_s, has_video, has_audio, fps, width, height,
    audio_rate, audio_channels, error``. ``has_video``/``has_audio`` mean the stream is present
    *and* its first frame decodes. ``error`` is "" when the file opened and every stream it
    has decoded; otherwise a short reason (missing, empty, unreadable, a stream that does not
    decode, or no video/audio stream at all).
    """
    info = empty_probe()
    p = Path(path)
    try:
        info["size_bytes"] = p.stat().st_size
        info["exists"] = p.is_file()
    except OSError:
        info["error"] = "file not found"
        return info
    if not info["exists"]:
        info["error"] = "not a regular file"
        return info
    if info["size_bytes"] == 0:
        info["error"] = "empty file"
        return info

    try:
        with av.open(str(p), mode="r") as container:
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
            for stream in (video, audio):
                if stream is not None:
                    # One frame is decoded: libav's own decoding threads (one per core by
                    # default, started for every clip) only cost start-up and per-thread heap.
                    stream.codec_context.thread_count = 1
            info["duration_s"] = _duration(container)
            if video is not None:
                rate = video.average_rate or video.guessed_rate
                info["fps"] = float(rate) if rate else math.nan
                info["width"] = int(video.codec_context.width or 0)
                info["height"] = int(video.codec_context.height or 0)
            if audio is not None:
                info["audio_rate"] = int(audio.codec_context.sample_rate or 0)
                info["audio_channels"] = int(audio.codec_context.channels or 0)
            has_video, has_audio, decode_error = _first_frames(container, video, audio)
    except Exception as exc:  # noqa: BLE001 - any failure to open is "unreadable", not a crash
        info["error"] = f"unreadable: {_short(exc)}"
        return info

    info["has_video"], info["has_audio"] = has_video, has_audio
    problems = []
    if video is None:
        problems.append("no video stream")
    elif not has_video:
        problems.append("video stream does not decode")
    if audio is None:
        problems.append("no audio stream")
    elif not has_audio:
        problems.append("audio stream does not decode")
    if decode_error and (not has_video or not has_audio):
        problems.append(decode_error)
    info["error"] = "; ".join(problems)
    return info
