"""Decode the frames nearest to requested timestamps from one clip.

Two interchangeable backends with the same contract: PyAV (default, see ``DECODERS``) and
OpenCV (``cv2.VideoCapture``, kept for the benchmark). Both decode forward once and convert to RGB
only the frames that are kept, since colour conversion, not decoding, dominates for small clips.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import av
import av.logging
import cv2
import numpy as np

from avemo.errors import ClipError

# libav's decoding threads per clip: 0 = one per core (libav's default). A process that is one
# of several decoding side by side sets 1 (`set_decode_threads`): the processes already keep
# the cores busy, and each one's own threads would only compete with the others.
_DECODE_THREADS = 0


def libav_logs_off() -> None:
    """Route libav's log messages nowhere instead of into Python (PyAV's default).

    ``import torchvision`` sets PyAV's log level, which installs a callback that takes the GIL.
    A libav decoding thread that logs while the main thread holds the GIL in
    ``avcodec_free_context`` (closing a stream) then waits on the GIL forever, and so does the
    process (PyAV-Org/PyAV#751, #909). Called before each decode: any import may have set it.
    """
    if av.logging.get_level() is not None:
        av.logging.set_level(None)


def set_decode_threads(n: int) -> None:
    """libav's decoding threads for the clips this process decodes from now on (0: one per
    core)."""
    global _DECODE_THREADS
    _DECODE_THREADS = n

# Re-seek (instead of decoding through) when the next requested time is this far ahead of the
# last decoded frame: below it, decoding through is cheaper than the keyframe run-up of a seek.
SEEK_GAP_S: float = 5.0


class DecodeError(ClipError):
    """A clip that cannot be decoded; ``reason`` is a short machine-readable QC code."""

    def __init__(self, path: str | os.PathLike[str], reason: str, detail: str) -> None:
        super().__init__(
            f"{path}: cannot decode video ({reason}: {detail}); check the file with ffprobe, "
            "re-download or drop the clip"
        )
        self.path = str(path)
        self.reason = reason
        self.detail = detail


@dataclass
class Decoded:
    """Frames picked for the requested times, in the order the times were given."""

    frames: np.ndarray  # uint8 T×H×W×3 RGB
    times: np.ndarray  # float64 [T]: presentation time of each picked frame (s)
    frame_numbers: np.ndarray  # int64 [T]: index of the frame in the stream (from its pts)
    duration_s: float  # video duration: header value, or less if decoding ended before it


def frames_at(
    path: str | os.PathLike[str], times: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frames uint8 T×H×W×3 RGB, actual_times float64[T], frame_numbers int64[T])``.

    For each requested time the nearest decoded frame is taken (ties go to the later frame);
    times past the last decodable frame get the last frame. Raises ``DecodeError`` (a
    ``ClipError``) naming the path when the clip has no decodable video.
    """
    d = decode_pyav(path, times)
    return d.frames, d.times, d.frame_numbers


class _Picker:
    """Streams (time, frame) pairs in and assigns each requested time its nearest frame.

    ``get_rgb`` converts lazily, so frames between requested times are never converted.
    """

    def __init__(self, times: np.ndarray) -> None:
        self.order = np.argsort(times, kind="stable")
        self.sorted = times[self.order]
        self.next = 0  # first requested time (in sorted order) not assigned yet
        self.out: list[tuple[np.ndarray, float, int] | None] = [None] * len(times)
        self.prev: tuple[float, int, Callable[[], np.ndarray]] | None = None
        self._prev_rgb: np.ndarray | None = None

    @property
    def done(self) -> bool:
        return self.next >= len(self.sorted)

    @property
    def pending_time(self) -> float:
        return float(self.sorted[self.next])

    def _assign(self, t: float, number: int, rgb: np.ndarray) -> None:
        self.out[int(self.order[self.next])] = (rgb, t, number)
        self.next += 1

    def _prev_frame(self) -> np.ndarray:
        assert self.prev is not None
        if self._prev_rgb is None:
            self._prev_rgb = self.prev[2]()
        return self._prev_rgb

    def push(self, t: float, number: int, get_rgb: Callable[[], np.ndarray]) -> None:
        cur_rgb: np.ndarray | None = None
        while not self.done and self.pending_time <= t:
            want = self.pending_time
            if self.prev is not None and want - self.prev[0] < t - want:
                self._assign(self.prev[0], self.prev[1], self._prev_frame())
            else:
                if cur_rgb is None:
                    cur_rgb = get_rgb()
                self._assign(t, number, cur_rgb)
        self.prev = (t, number, get_rgb if cur_rgb is None else (lambda r=cur_rgb: r))
        self._prev_rgb = cur_rgb

    def finish(self) -> None:
        """End of stream: remaining times get the last frame."""
        if self.prev is None:
            return
        while not self.done:
            self._assign(self.prev[0], self.prev[1], self._prev_frame())

    def result(self, duration_s: float) -> Decoded:
        picked = [p for p in self.out if p is not None]
        assert len(picked) == len(self.out)
        return Decoded(
            frames=np.stack([p[0] for p in picked]),
            times=np.array([p[1] for p in picked], dtype=np.float64),
            frame_numbers=np.array([p[2] for p in picked], dtype=np.int64),
            duration_s=duration_s,
        )


def _check_times(path: str | os.PathLike[str], times: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(times, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{path}: need at least one finite timestamp, got {arr!r}")
    return arr


def decode_pyav(path: str | os.PathLike[str], times: Sequence[float] | np.ndarray) -> Decoded:
    """PyAV backend of ``frames_at`` (also reports the decoded duration)."""
    req = _check_times(path, times)
    picker = _Picker(req)
    libav_logs_off()
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise DecodeError(path, "unreadable", str(e)) from e
    with container:
        if not container.streams.video:
            raise DecodeError(path, "no_video", "the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame+slice threads: ~2x on multi-core machines
        stream.codec_context.thread_count = _DECODE_THREADS
        tb = float(stream.time_base) if stream.time_base else 1e-6
        start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        if stream.duration:
            header_dur = float(stream.duration * tb)
        elif container.duration:
            header_dur = container.duration / 1e6
        else:
            header_dur = math.nan
        last_end = math.nan  # end of the last decoded frame, known once decoding stops early
        last_t = -math.inf
        n_decoded = 0

        can_seek = True
        just_sought = False

        def seek(t: float) -> None:
            # Seeks land on the keyframe at or before t; later frames are decoded forward.
            nonlocal just_sought
            container.seek(int((t + start) / tb), stream=stream, backward=True, any_frame=False)
            just_sought = True

        first = picker.pending_time
        if first > SEEK_GAP_S:
            seek(first)
        try:
            restart = True
            while restart and not picker.done:
                restart = False
                for frame in container.decode(stream):
                    if frame.pts is None:
                        continue
                    t = float(frame.pts * tb) - start
                    if just_sought:
                        just_sought = False
                        # Keyframes sparser than SEEK_GAP_S: the seek went back over frames
                        # already decoded, so decode straight through from now on.
                        can_seek = t > last_t
                    if t <= last_t:
                        continue
                    n_decoded += 1
                    last_t = t
                    number = int(round(t * rate))
                    picker.push(t, number, lambda f=frame: f.to_ndarray(format="rgb24"))
                    if picker.done:
                        break
                    if can_seek and picker.pending_time - t > SEEK_GAP_S:
                        seek(picker.pending_time)
                        restart = True
                        break
            if not picker.done:
                last_end = last_t + 1.0 / rate
        except av.error.FFmpegError as e:
            # Corrupt tail: keep what decoded (like the ffmpeg CLI); the short decoded duration
            # is the QC signal. Nothing decoded at all means the clip is unusable.
            if n_decoded == 0:
                raise DecodeError(path, "decode_error", str(e)) from e
            last_end = last_t + 1.0 / rate
        if n_decoded == 0:
            raise DecodeError(path, "no_frames", "the video stream yields no frames")
        picker.finish()
    if math.isnan(last_end):  # stopped early on purpose: nothing contradicts the header
        duration = header_dur
    elif math.isnan(header_dur):
        duration = last_end
    else:
        duration = min(header_dur, last_end)
    return picker.result(float(duration))


def decode_cv2(path: str | os.PathLike[str], times: Sequence[float] | np.ndarray) -> Decoded:
    """OpenCV backend: sequential ``grab()``, ``retrieve()`` only for kept frames.

    Timestamps are ``frame_index / fps`` (VideoCapture does not expose pts reliably), so it is
    exact only for constant-frame-rate clips, which MELD's are. Because of that the wanted frame
    indices are known before decoding (nearest frame, ties to the later one).
    """
    req = _check_times(path, times)
    if not os.path.isfile(path):
        raise DecodeError(path, "unreadable", "no such file")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise DecodeError(path, "unreadable", "OpenCV cannot open the file")
        rate = cap.get(cv2.CAP_PROP_FPS) or 25.0
        n_hdr = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        want = np.floor(req * rate + 0.5).astype(np.int64).clip(min=0)
        if n_hdr > 0:
            want = want.clip(max=n_hdr - 1)
        wanted = set(want.tolist())
        got: dict[int, np.ndarray] = {}
        last = -1
        i = 0
        while i <= want.max() and cap.grab():
            if i in wanted:
                ok, bgr = cap.retrieve()
                if ok:
                    got[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    last = i
            i += 1
    finally:
        cap.release()
    if last < 0:
        raise DecodeError(path, "no_frames", "OpenCV decodes no wanted frame")
    # Frames missing (stream shorter than its header) fall back to the last frame obtained.
    numbers = np.array([n if n in got else last for n in want.tolist()], dtype=np.int64)
    ended_early = i <= want.max()
    duration = i / rate if ended_early else (n_hdr / rate if n_hdr > 0 else i / rate)
    return Decoded(
        frames=np.stack([got[n] for n in numbers.tolist()]),
        times=numbers / rate,
        frame_numbers=numbers,
        duration_s=float(duration),
    )


DECODERS: dict[str, Callable[[str | os.PathLike[str], Sequence[float] | np.ndarray], Decoded]] = {
    "pyav": decode_pyav,
    "cv2": decode_cv2,
}
