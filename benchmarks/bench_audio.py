"""Benchmark of the audio stage: speed against its decode floor, eGeMAPS workers, peak RSS.

``x_realtime`` = total decoded audio seconds / processing seconds. Every variant runs in a fresh
subprocess with one torch thread, so its peak RSS is its own; timings are the best of
``repeats`` runs on a warm page cache. The figures to read are ratios within one run:
``x_floor`` = best_s / a_decode's best_s (without eGeMAPS, the stage as the workflow runs it:
``--workers`` = its rule's 2 threads),
``cpu_x_floor`` the same with process CPU seconds (``cpu_s``, which other work on the
machine does not inflate), ``speedup`` = c_stage_egemaps's best_s / this row's (2 workers need
2 idle cores); ``cpu_speedup`` = c_stage_egemaps's CPU seconds / the larger of
those of the busiest process (the main one, or a worker with an even share of
``cpu_workers_s``) and ``cpu_s`` spread over the workers' cores, the speedup idle cores would
give. ``rss_peak_mb`` = peak resident memory of the process (VmHWM)
+ ``rss_workers_mb``, the peak summed PSS of its workers (sampled every 50 ms).

- ``a_decode``: ``load_audio`` only (PyAV decode + channel average + resample to 16 kHz);
- ``b_stage_no_egemaps``: ``extract_audio(egemaps=False)`` (192-D, log-mels, aligned windows),
  1 process: the stage's own CPU cost over the floor;
- ``b_stage_no_egemaps_w2``: the same with ``workers=2`` (clips decoded in 2 torch-free
  processes while this one computes the features), as the workflow's rule runs it;
- ``c_stage_egemaps``: ``extract_audio(egemaps=True)`` (adds openSMILE eGeMAPSv02), 1 process;
- ``d_stage_egemaps_w2``: the same with ``workers=2`` (eGeMAPS in 2 torch-free processes;
  this one decodes);
- ``p_profile``: where the time goes, per step, summed over clips (one run; ``*_s`` columns).

    python benchmarks/bench_audio.py [--manifest M --frames F] [--workdir W] [--clips 60]

Without ``--manifest`` it generates ``--clips`` clips of 2-6 s with 48 kHz AAC audio (half
stereo, half 5.1, harmonic "voice" with moving pitch plus noise) and a frames index with one
frame every 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

VARIANTS: tuple[str, ...] = (
    "a_decode",
    "b_stage_no_egemaps",
    "b_stage_no_egemaps_w2",
    "c_stage_egemaps",
    "d_stage_egemaps_w2",
    "p_profile",
)
WORKERS = {"b_stage_no_egemaps_w2": 2, "d_stage_egemaps_w2": 2}
# formats.md §2 columns, so the manifest's own reader accepts the generated file.
MANIFEST_DEFAULTS: dict[str, Any] = {
    "split": "bench", "dialogue_id": 0, "utterance_id": 0, "season": 1, "episode": 1,
    "speaker": "S", "utterance": "", "emotion": "neutral", "sentiment": "neutral",
    "start_s": 0.0, "end_s": 1.0, "clip_path": "", "exists": True, "size_bytes": 0,
    "duration_s": 0.0, "has_video": True, "has_audio": True, "fps": 5.0, "width": 32,
    "height": 32, "audio_rate": 48000, "audio_channels": 2, "ok": True, "qc_reason": "",
}  # fmt: skip


# --- synthetic corpus -----------------------------------------------------------------------
def _voice(seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Harmonic signal with a wandering pitch (100-300 Hz), syllable-like envelope, noise."""
    n = round(seconds * rate)
    t = np.arange(n) / rate
    f0 = rng.uniform(100, 300) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(1, 4) * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.1 * env * x + 0.01 * rng.standard_normal(n)).astype(np.float32)


def make_corpus(workdir: str | Path, n_clips: int = 60, seed: int = 0) -> tuple[Path, Path]:
    """``n_clips`` clips, their manifest and a frames index; returns (manifest, frames_dir)."""
    import av
    import pandas as pd

    rng = np.random.default_rng(seed)
    clip_dir = Path(workdir) / "clips"
    clip_dir.mkdir(parents=True, exist_ok=True)
    rows, index = [], []
    rate = 48000
    for i in range(n_clips):
        seconds = float(rng.uniform(2, 6))
        layout, nch = ("stereo", 2) if i % 2 == 0 else ("5.1", 6)
        path = clip_dir / f"dia{i}_utt0.mp4"
        wave = _voice(seconds, rate, rng)
        planes = np.stack([wave * (1.0 - 0.1 * c) for c in range(nch)])
        with av.open(str(path), "w") as c:
            vs = c.add_stream("mpeg4", rate=5)
            vs.width = vs.height = 32
            vs.pix_fmt = "yuv420p"
            aus = c.add_stream("aac", rate=rate, layout=layout)
            for _ in range(round(seconds * 5)):
                img = np.full((32, 32, 3), 80, np.uint8)
                c.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            c.mux(vs.encode())
            for s in range(0, planes.shape[1], 1024):
                chunk = np.ascontiguousarray(planes[:, s : s + 1024])
                fr = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                fr.sample_rate, fr.pts, fr.time_base = rate, s, Fraction(1, rate)
                c.mux(aus.encode(fr))
            c.mux(aus.encode())
        rows.append({
            **MANIFEST_DEFAULTS, "clip_name": path.stem, "dialogue_id": i,
            "clip_path": str(path), "size_bytes": path.stat().st_size, "duration_s": seconds,
            "audio_channels": nch,
        })  # fmt: skip
        for k, t_s in enumerate(np.arange(0.25, seconds, 0.5)):
            index.append({"clip_name": path.stem, "shard": 0, "row": k, "t_s": float(t_s),
                          "frame_number": k, "face": False})  # fmt: skip
    manifest = Path(workdir) / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(manifest, index=False)
    frames = Path(workdir) / "frames"
    frames.mkdir(exist_ok=True)
    pd.DataFrame(index).to_parquet(frames / "index.parquet", index=False)
    return manifest, frames


# --- one variant (runs in its own process) --------------------------------------------------
def _profile(paths: list[str]) -> dict[str, float]:
    """Seconds per step, summed over clips (mirrors decode.load_audio and extract._analyse)."""
    import av
    import torch

    from avemo.audio import aligned, decode, egemaps, features, mono

    acc = dict.fromkeys(
        ("decode_s", "resample_s", "utterance_logmel_s", "pitch_part_s", "aligned_s",
         "opensmile_s"), 0.0)  # fmt: skip
    audio_s = 0.0
    for p in paths:
        t = time.perf_counter()
        with av.open(p) as c:
            chunks = [mono._frame_mono(f) for f in c.decode(audio=0)]
            rate = c.streams.audio[0].rate
        x = torch.from_numpy(np.concatenate(chunks))
        acc["decode_s"] += time.perf_counter() - t
        t = time.perf_counter()
        wave = decode.resample(x, rate, 16000)
        acc["resample_s"] += time.perf_counter() - t
        audio_s += wave.numel() / 16000
        t = time.perf_counter()
        _, seq = features.utterance_and_logmel(wave, 16000, 64, 0.01)
        acc["utterance_logmel_s"] += time.perf_counter() - t
        t = time.perf_counter()
        with torch.inference_mode():
            features._pitch(wave, 16000)
        acc["pitch_part_s"] += time.perf_counter() - t
        t = time.perf_counter()
        aligned.windows_from_logmel(seq, np.arange(0.25, wave.numel() / 16000, 0.5))
        acc["aligned_s"] += time.perf_counter() - t
        t = time.perf_counter()
        egemaps.egemaps_vector(wave, 16000)
        acc["opensmile_s"] += time.perf_counter() - t
    out = {k: round(v, 4) for k, v in acc.items()}
    out["audio_s"] = round(audio_s, 2)
    return out


def _proc_mb(path: str, field: str) -> float:
    """A ``field: N kB`` line of a /proc file, in MB (0 when the process is gone)."""
    try:
        with open(path) as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024
    except (OSError, StopIteration):
        return 0.0


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


class _PeakRSS:
    """Peak memory of this process (VmHWM) plus the peak summed PSS of its workers.

    Workers are sampled every 50 ms. PSS, not RSS: shared libraries and copy-on-write pages
    would otherwise count once per process. ru_maxrss cannot serve: a spawned worker inherits
    its parent's high-water mark across exec (Linux), and RUSAGE_CHILDREN sees only the dead.
    A child still running this program (forked, not yet exec'd) is not a worker yet: skipped.
    """

    def __init__(self) -> None:
        self.workers = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pid = os.getpid()
        me = Path(f"/proc/{pid}/cmdline").read_bytes()
        while not self._stop.wait(0.05):
            total = 0.0
            for k in _children(pid):
                try:
                    if Path(f"/proc/{k}/cmdline").read_bytes() == me:
                        continue
                except OSError:
                    continue
                total += _proc_mb(f"/proc/{k}/smaps_rollup", "Pss:")
            self.workers = max(self.workers, total)

    def stop(self) -> tuple[float, float]:
        """(peak MB of this process + workers' peak, workers' peak)."""
        self._stop.set()
        self._thread.join()
        own = _proc_mb(f"/proc/{os.getpid()}/status", "VmHWM:")
        return round(own + self.workers, 1), round(self.workers, 1)


def _run_variant(
    variant: str, manifest: str, frames: str, workdir: str, repeats: int
) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from avemo.audio.decode import load_audio
    from avemo.audio.extract import extract_audio
    from avemo.manifest import read_manifest, usable

    clips = usable(read_manifest(manifest))
    # Clips without an audio stream (QC-flagged) have nothing to decode or time.
    paths = clips.loc[clips["has_audio"], "clip_path"].tolist()
    row: dict[str, Any] = {"variant": variant, "clips": len(paths)}
    if variant == "p_profile":
        _profile(paths[:2])  # warm-up: caches (resampler kernels, openSMILE config)
        row.update(_profile(paths))
        return row

    def once() -> float:
        if variant == "a_decode":
            return float(sum(load_audio(p)[0].numel() for p in paths)) / 16000
        summary = extract_audio(
            manifest,
            frames,
            Path(workdir) / f"out_{variant}",
            egemaps=not variant.startswith("b_"),
            workers=WORKERS.get(variant, 1),
        )
        return float(summary["audio_seconds"])

    load_audio(paths[0])  # warm-up outside the timing
    rss = _PeakRSS()
    times, audio_s = [], 0.0
    cpu: list[tuple[float, float]] = []  # (this process, its workers)
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), _cpu_s()
        audio_s = once()
        times.append(time.perf_counter() - t0)
        cpu.append((_cpu_s()[0] - c0[0], _cpu_s()[1] - c0[1]))
    best = min(times)
    own, workers = min(cpu, key=sum)
    rss_total, rss_workers = rss.stop()
    row.update({
        "audio_s": round(audio_s, 2), "best_s": round(best, 4),
        "median_s": round(float(np.median(times)), 4), "cpu_s": round(own + workers, 4),
        "cpu_workers_s": round(workers, 4),
        "x_realtime": round(audio_s / best, 1), "rss_peak_mb": rss_total,
        "rss_workers_mb": rss_workers,
    })  # fmt: skip
    return row


def _cpu_s() -> tuple[float, float]:
    """CPU seconds of this process, and of its finished workers."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add x_floor / cpu_x_floor (vs a_decode) and speedup (vs c_stage_egemaps) in place."""
    by = {r["variant"]: r for r in rows}
    floor, one = by.get("a_decode"), by.get("c_stage_egemaps")
    for r in rows:
        if "best_s" not in r:
            continue
        if floor:
            r["x_floor"] = round(r["best_s"] / floor["best_s"], 2)
            r["cpu_x_floor"] = round(r["cpu_s"] / floor["cpu_s"], 2)
        if one and r["variant"].startswith(("c_", "d_")):
            r["speedup"] = round(one["best_s"] / r["best_s"], 2)
            # What idle cores would give: the busiest process (this one, or a worker if the
            # workers share evenly) bounds the wall time, and so does the total CPU time
            # spread over the cores (this process and its workers can outnumber them). On a
            # shared machine the wall-time speedup also depends on what other users leave.
            n = WORKERS.get(r["variant"], 1)
            busiest = max(r["cpu_s"] - r["cpu_workers_s"], r["cpu_workers_s"] / n,
                          r["cpu_s"] / min(n, os.cpu_count() or 1))
            r["cpu_speedup"] = round(one["cpu_s"] / busiest, 2)
    return rows


# --- driver ---------------------------------------------------------------------------------
def run(
    manifest_path: str, frames_dir: str, workdir: str, repeats: int = 3
) -> list[dict[str, Any]]:
    """Run every variant on ``manifest_path``'s usable clips; one row per variant."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
    }
    rows = []
    for v in VARIANTS:
        cmd = [
            sys.executable,
            __file__,
            "--variant",
            v,
            "--manifest",
            str(manifest_path),
            "--frames",
            str(frames_dir),
            "--workdir",
            str(workdir),
            "--repeats",
            str(repeats),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark variant {v} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return ratios(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest")
    ap.add_argument("--frames")
    ap.add_argument("--workdir", default="bench_audio_work")
    ap.add_argument("--clips", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.variant:  # child process: print one JSON row
        row = _run_variant(args.variant, args.manifest, args.frames, args.workdir, args.repeats)
        print(json.dumps(row))
        return 0
    if args.manifest:
        if not args.frames:
            ap.error("--frames is required with --manifest")
        manifest, frames = args.manifest, args.frames
    else:
        manifest, frames = make_corpus(args.workdir, args.clips)
    for row in run(str(manifest), str(frames), args.workdir, args.repeats):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
