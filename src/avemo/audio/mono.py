"""Decode a clip's audio stream to one mono float32 array at the stream's own rate.

PyAV and numpy only: the audio stage's worker processes import this module without torch
(~130 MB each instead of ~600 MB), decode there, and the stage resamples what they return
(``avemo.audio.decode.at_rate``). Channels are averaged whatever the layout (MELD is 48 kHz,
often 5.1), frame by frame, so 5.1 never sits in memory at full width.
"""

from __future__ import annotations

import os

import av
import numpy as np

from avemo.errors import ClipError


class AudioDecodeError(ClipError):
    """A clip's audio cannot be used; ``reason`` is the machine-readable QC reason.

    Reasons: ``no_audio`` (no audio stream), ``unreadable`` (container or stream cannot be
    decoded), ``empty_audio`` (the stream decodes to zero samples).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Raised in a worker process, it reaches the stage through pickle with its reason.
        return type(self), (str(self), self.reason)


def _frame_mono(frame: av.AudioFrame) -> np.ndarray:
    """One decoded frame averaged over its channels: float32 samples in [-1, 1]."""
    n, nch = frame.samples, len(frame.layout.channels)
    if frame.format.name == "fltp":
        # AAC's native output: sum the planes straight from the frame buffers (no copy per
        # channel, ~1.5x faster than to_ndarray().mean() on 5.1).
        planes = frame.planes
        acc = np.frombuffer(planes[0], np.float32, n).copy()
        for plane in planes[1:nch]:
            acc += np.frombuffer(plane, np.float32, n)
        return acc / nch if nch > 1 else acc
    arr = frame.to_ndarray()
    if not frame.format.is_planar:
        # Packed formats come back as (1, samples * channels), interleaved.
        arr = arr.reshape(-1, nch).T
    if arr.dtype.kind == "i":
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max + 1)
    elif arr.dtype.kind == "u":  # u8 is offset binary
        arr = (arr.astype(np.float32) - 128.0) / 128.0
    return arr.astype(np.float32, copy=False).mean(axis=0)


def decode_mono(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """``(samples, rate)``: the first audio stream of ``path``, mono float32 at its own rate.

    Raises :class:`AudioDecodeError` (a :class:`ClipError`) when the file has no audio stream
    or its audio cannot be decoded.
    """
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise AudioDecodeError(
            f"{path}: cannot open the media file ({exc}); re-extract or replace the clip",
            "unreadable",
        ) from exc
    with container:
        if not container.streams.audio:
            raise AudioDecodeError(
                f"{path}: the file has no audio stream; its audio features will be masked",
                "no_audio",
            )
        stream = container.streams.audio[0]
        # Only this stream's packets are decoded: video packets are demuxed but skipped.
        chunks: list[np.ndarray] = []
        rate = 0
        try:
            for frame in container.decode(stream):
                rate = frame.sample_rate
                chunks.append(_frame_mono(frame))
        except (av.FFmpegError, ValueError) as exc:
            raise AudioDecodeError(
                f"{path}: the audio stream cannot be decoded ({exc}); re-extract the clip",
                "unreadable",
            ) from exc
    if not chunks or rate <= 0 or sum(len(c) for c in chunks) == 0:
        raise AudioDecodeError(f"{path}: the audio stream holds no samples", "empty_audio")
    return np.concatenate(chunks), rate
