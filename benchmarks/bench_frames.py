"""Benchmark of the frames stage on one manifest's usable clips.

Variants (each in a fresh subprocess so peak RSS is per variant; timings are the best of
``repeats`` runs on warm page cache):

- ``a_decode_pyav``: PyAV decode of every frame, no conversion (the reference floor);
- ``a2_decode_cv2``: the same with ``cv2.VideoCapture.grab()``;
- ``b_extract_w1``: ``extract_frames(workers=1)`` (PyAV decoder);
- ``c_extract_w2``: ``extract_frames(workers=2)``;
- ``d_extract_cv2``: ``extract_frames(workers=1, decoder="cv2")``.

Ratios: b/a (the stage's cost over pure decoding), b/c (the speed-up from a second worker;
it needs 2 idle cores), d/b (OpenCV's decoder against PyAV's), a2/a.

    python benchmarks/bench_frames.py [--manifest M] [--workdir W] [--clips 60] [--repeats 3]

Without ``--manifest`` it generates ``--clips`` H.264 clips of 2-6 s at 96×96
(``--size``), 25 fps.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

VARIANTS: tuple[str, ...] = (
    "a_decode_pyav",
    "a2_decode_cv2",
    "b_extract_w1",
    "c_extract_w2",
    "d_extract_cv2",
)
# formats.md §2 columns, so the manifest's own reader accepts the generated file.
MANIFEST_DEFAULTS: dict[str, Any] = {
    "split": "bench", "dialogue_id": 0, "utterance_id": 0, "season": 1, "episode": 1,
    "speaker": "S", "utterance": "", "emotion": "neutral", "sentiment": "neutral",
    "start_s": 0.0, "end_s": 1.0, "clip_path": "", "exists": True, "size_bytes": 0,
    "duration_s": 0.0, "has_video": True, "has_audio": False, "fps": 25.0, "width": 0,
    "height": 0, "audio_rate": 0, "audio_channels": 0, "ok": True, "qc_reason": "",
}  # fmt: skip
EXTRACT_KW: dict[str, Any] = {"policy": "every_s", "every_s": 3.0, "size": 224, "shard_clips": 8}


# --- synthetic corpus -----------------------------------------------------------------------
def make_corpus(workdir: str | Path, n_clips: int = 60, size: int = 96, seed: int = 0) -> Path:
    """``n_clips`` moving-noise H.264 clips (2-6 s, 25 fps) and a manifest; returns its path."""
    import av
    import cv2
    import pandas as pd

    rng = np.random.default_rng(seed)
    clip_dir = Path(workdir) / "clips"
    clip_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    # Blurred noise: texture closer to camera footage than white noise (which inflates bitrate).
    base = cv2.GaussianBlur(rng.integers(0, 256, (size * 2, size * 2, 3), np.uint8), (0, 0), 2)
    for i in range(n_clips):
        n = int(rng.integers(50, 151))
        path = clip_dir / f"dia{i}_utt0.mp4"
        with av.open(str(path), "w") as c:
            s = c.add_stream("libx264", rate=25)
            s.width = s.height = size
            s.pix_fmt = "yuv420p"
            s.options = {"preset": "veryfast", "crf": "23"}
            for k in range(n):  # a panning texture: realistic inter-frame prediction work
                off = (k * 2) % size
                img = np.ascontiguousarray(base[off : off + size, off : off + size])
                for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        rows.append(
            {
                **MANIFEST_DEFAULTS,
                "clip_name": path.stem,
                "dialogue_id": i,
                "clip_path": str(path),
                "size_bytes": path.stat().st_size,
                "duration_s": n / 25.0,
                "width": size,
                "height": size,
            }
        )
    manifest = Path(workdir) / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(manifest, index=False)
    return manifest


# --- one variant (runs in its own process) --------------------------------------------------
def _tree_rss_sampler(stop: threading.Event, peak: dict[str, float]) -> None:
    """Poll /proc for this process's descendants (pool workers sit under a forkserver, so
    getrusage(RUSAGE_CHILDREN) never sees them); track the largest single worker RSS and the
    largest total over the tree."""
    me = os.getpid()
    while not stop.is_set():
        parents: dict[int, int] = {}
        rss: dict[int, float] = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/status") as f:
                    txt = f.read()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in txt.splitlines() if ":" in line)
            parents[int(d)] = int(fields.get("PPid", "0"))
            rss[int(d)] = int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
        tree = {me}
        changed = True
        while changed:
            new = {p for p, pp in parents.items() if pp in tree} - tree
            changed = bool(new)
            tree |= new
        kids = [rss.get(p, 0.0) for p in tree if p != me]
        peak["worker_mb"] = max(peak.get("worker_mb", 0.0), max(kids, default=0.0))
        peak["tree_mb"] = max(peak.get("tree_mb", 0.0), sum(kids) + rss.get(me, 0.0))
        stop.wait(0.05)


def _vm_hwm_mb() -> float:
    """This process's peak RSS. Not getrusage(RUSAGE_SELF): Linux carries ru_maxrss across
    exec, so it would report the (larger) parent benchmark process."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_variant(variant: str, manifest: str, workdir: str, repeats: int) -> dict[str, Any]:
    import av
    import cv2

    from avemo.video.extract import extract_frames, read_usable_clips

    clips = read_usable_clips(manifest)
    paths = clips["clip_path"].tolist()

    def once() -> int:
        if variant == "a_decode_pyav":
            n = 0
            for p in paths:
                with av.open(p) as c:
                    s = c.streams.video[0]
                    s.thread_type = "AUTO"
                    for _ in c.decode(s):
                        n += 1
            return n
        if variant == "a2_decode_cv2":
            n = 0
            for p in paths:
                cap = cv2.VideoCapture(p, cv2.CAP_FFMPEG)
                while cap.grab():
                    n += 1
                cap.release()
            return n
        out = Path(workdir) / f"out_{variant}"
        kw = dict(EXTRACT_KW)
        kw["workers"] = 2 if variant == "c_extract_w2" else 1
        kw["decoder"] = "cv2" if variant == "d_extract_cv2" else "pyav"
        summary = extract_frames(manifest, out, **kw)
        return int(summary["n_frames"])

    stop, peak = threading.Event(), {}
    sampler = threading.Thread(target=_tree_rss_sampler, args=(stop, peak), daemon=True)
    sampler.start()
    times = []
    n = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = once()
        times.append(time.perf_counter() - t0)
    stop.set()
    sampler.join()
    return {
        "variant": variant,
        "clips": len(paths),
        "frames": n,
        "best_s": round(min(times), 4),
        "median_s": round(float(np.median(times)), 4),
        "runs_s": [round(t, 4) for t in times],
        "rss_self_mb": round(_vm_hwm_mb(), 1),
        "rss_children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "rss_worker_peak_mb": round(peak.get("worker_mb", 0.0), 1),
        "rss_tree_peak_mb": round(peak.get("tree_mb", 0.0), 1),
    }


# --- driver ---------------------------------------------------------------------------------
def run(manifest_path: str, workdir: str, repeats: int = 3) -> list[dict[str, Any]]:
    """Run every variant on ``manifest_path``'s usable clips; the last row holds the ratios."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    import pandas as pd

    for p in pd.read_parquet(manifest_path)["clip_path"]:  # warm the page cache
        if p and os.path.isfile(p):
            Path(p).read_bytes()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(
                None,
                [
                    str(Path(__file__).resolve().parents[1] / "src"),
                    os.environ.get("PYTHONPATH", ""),
                ],
            )
        ),
    }
    rows: list[dict[str, Any]] = []
    for variant in VARIANTS:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            variant,
            "--manifest",
            manifest_path,
            "--workdir",
            workdir,
            "--repeats",
            str(repeats),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"variant {variant} failed:\n{res.stderr[-3000:]}")
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    by = {r["variant"]: r["best_s"] for r in rows}
    rows.append(
        {
            "variant": "ratios",
            "b_over_a": round(by["b_extract_w1"] / by["a_decode_pyav"], 3),
            "speedup_b_over_c": round(by["b_extract_w1"] / by["c_extract_w2"], 3),
            "d_over_b": round(by["d_extract_cv2"] / by["b_extract_w1"], 3),
            "a2_over_a": round(by["a2_decode_cv2"] / by["a_decode_pyav"], 3),
            "cpu_count": os.cpu_count(),
        }
    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", default=None)
    ap.add_argument("--workdir", default="results/bench_frames")
    ap.add_argument("--clips", type=int, default=60)
    ap.add_argument("--size", type=int, default=96, help="side of generated clips (pixels)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_run_variant(args.one, args.manifest, args.workdir, args.repeats)))
        return
    manifest = args.manifest or str(make_corpus(args.workdir, args.clips, args.size))
    rows = run(manifest, args.workdir, args.repeats)
    for r in rows:
        print(json.dumps(r))
    for variant in VARIANTS:
        shutil.rmtree(Path(args.workdir) / f"out_{variant}", ignore_errors=True)


if __name__ == "__main__":
    main()
