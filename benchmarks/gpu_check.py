"""GPU check: VGG-16 at 224 px for one epoch on a generated MELD-sized frame set, through the
project's own engine (uint8 frames normalised on the device, pinned loaders, the AMP dtype the
engine picks, strict deterministic kernels). Reports images/s, peak GPU memory, the AMP dtype
and whether two runs from the same seed end with bit-identical weights; writes its section of
docs/benchmarks.md.

    python benchmarks/gpu_check.py                  # on a CUDA machine (a few minutes)
    python benchmarks/gpu_check.py --device cpu --images 8 --size 32 --width 0.0625 --out X.md

The frame set has as many frames as MELD's train split has utterances (one frame each, the
study's sparsest sampling; the count comes from avemo/data/reference_numbers.yaml), random
uint8 pixels from a fixed seed: the timing and the determinism do not depend on the content.
Without CUDA (and ``--device cuda``) it prints one line and exits with status 1;
``--note-absence`` then also records in the section that no GPU was available.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))  # the section writer is scale.py's

import torch  # noqa: E402
from scale import write_section  # noqa: E402

from avemo.labels import EMOTIONS, SENTIMENTS  # noqa: E402
from avemo.models import build_model  # noqa: E402
from avemo.report.reference import load_reference, meld_split_sizes  # noqa: E402
from avemo.training import engine  # noqa: E402
from avemo.training.data import FrameDataset  # noqa: E402
from avemo.training.predict import amp_dtype, resolve_device  # noqa: E402
from avemo.training.provenance import run_facts  # noqa: E402
from avemo.training.seed import deterministic_mode  # noqa: E402
from avemo.training.settings import EngineSettings  # noqa: E402

SECTION = "GPU check: VGG-16 at 224 px, one epoch (CUDA)"
COMMAND = "python benchmarks/gpu_check.py"


def frame_set(n: int, size: int, seed: int = 0) -> FrameDataset:
    """``n`` random uint8 frames of ``size``² with labels spread over the classes."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    emo = np.arange(n) % len(EMOTIONS)
    return FrameDataset(frames, [f"dia{i}_utt0" for i in range(n)], emo,
                        emo % len(SENTIMENTS), augment=True, split="train")


def weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def one_run(ds: FrameDataset, device: torch.device, s: EngineSettings, width: float,
            workers: int, seed: int = 0) -> dict[str, Any]:
    """One epoch of the engine's training step (train_one_epoch over the engine's loader),
    timed between CUDA synchronisations; returns images/s, peak memory, loss and digest."""
    dtype = amp_dtype(device, s.amp)
    with deterministic_mode(seed):
        model = build_model("vgg16", weights=None, width_mult=width, pool=7, frozen_blocks=0)
        model.to(device)
        if device.type == "cuda":
            model.to(memory_format=torch.channels_last)
            torch.cuda.reset_peak_memory_stats(device)
        loss_fn = engine._make_loss(ds, s, device)
        optim = engine.Optimization.create(model, s, device, dtype)
        loader = engine._train_loader(ds, s.batch_size, workers, seed, 1, sampler=False,
                                      device=device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        result = engine.train_one_epoch(model, loader, loss_fn, optim, device, amp=dtype,
                                        grad_clip=s.grad_clip,
                                        max_skipped=s.max_nonfinite_batches, desc="gpu check")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"images_per_s": len(ds) / seconds, "seconds": seconds, "peak_gib": peak,
            "loss": result.loss, "skipped": result.skipped, "digest": weights_digest(model),
            "facts": run_facts(device, dtype, model, None)}


def _gib(x: float | None) -> str:
    return "n/a (CPU)" if x is None else f"{x:.2f}"


def section(runs: list[dict[str, Any]], n: int, size: int, s: EngineSettings, width: float,
            workers: int, meld_sized: bool) -> str:
    facts = runs[0]["facts"]
    what = "MELD's train utterances, one frame each" if meld_sized else "a reduced set"
    same = len({r["digest"] for r in runs}) == 1 and len({r["loss"] for r in runs}) == 1
    rows = "\n".join(
        f"| {i + 1} | {r['seconds']:.1f} | {r['images_per_s']:.0f} | {_gib(r['peak_gib'])} | "
        f"{r['loss']:.6f} | {r['skipped']} |"
        for i, r in enumerate(runs))
    return f"""## {SECTION}

VGG-16 (width {width}, 7×7 pooling, the study's FC head) trained from scratch for one epoch on
{n} generated {size}×{size} frames ({what}), batch size
{s.batch_size}, {workers} loader workers, through the engine's own training step.

Device: {facts['device_name']}; torch {facts['torch_version']}, CUDA {facts['cuda_version']},
cuDNN {facts['cudnn_version']}; AMP dtype: {facts['amp_dtype'] or 'none (fp32)'}; strict
deterministic algorithms; Python {platform.python_version()}.

| run | epoch s | images/s | peak GPU memory GiB | mean train loss | skipped batches |
|---|---|---|---|---|---|
{rows}

Two runs from the same seed bit-identical (weights and loss): {'yes' if same else 'NO'}.

    {COMMAND} --images {n} --size {size} --batch-size {s.batch_size} --workers {workers} \\
        --width {width} --runs {len(runs)}
"""


def absence_section() -> str:
    return f"""## {SECTION}

Not measured: no CUDA device was available on the machines that ran this script so far.
On a GPU node, this writes the section (images/s, peak GPU memory, the AMP dtype and whether
two runs are bit-identical):

    {COMMAND}    # or: make gpu-check
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--images", type=int, default=None,
                    help="frames in the set (default: MELD's train utterances)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=EngineSettings().batch_size)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--width", type=float, default=1.0, help="VGG-16 width multiplier")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None,
                    help="file to write the section into (default on CUDA: docs/benchmarks.md; "
                         "on CPU nothing is written unless given)")
    ap.add_argument("--note-absence", action="store_true",
                    help="without CUDA, record that in the section instead of only exiting")
    a = ap.parse_args(argv)
    out = a.out or (REPO / "docs" / "benchmarks.md" if a.device == "cuda" else None)
    if a.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine (torch.cuda.is_available() is False); "
              "run it on a GPU node (--device cpu runs a tiny check of the script itself)")
        if a.note_absence and out is not None:
            write_section(absence_section(), out, SECTION)
        return 1
    device = resolve_device(a.device)
    n = a.images or meld_split_sizes(load_reference())["train"]
    s = EngineSettings(epochs=1, batch_size=a.batch_size, lr=1e-4, device=a.device, amp=True,
                       scheduler="none")
    ds = frame_set(n, a.size)
    runs = [one_run(ds, device, s, a.width, a.workers) for _ in range(a.runs)]
    text = section(runs, n, a.size, s, a.width, a.workers, meld_sized=a.images is None)
    print(text)
    if out is not None:
        write_section(text, out, SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
