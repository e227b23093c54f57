"""Rerunnable benchmarks: `make bench` (or `python benchmarks/run.py [section ...]`).

Builds the demo corpus's manifest and frames with the real workflow if needed, runs each
benchmark section in this one process (so every figure is a ratio against a reference measured
in the same run on the same machine), and writes docs/benchmarks.md. Nothing in that file is
typed by hand.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "src"))

# section name -> (module, title, call: (module, manifest, frames_dir, workdir) -> rows)
SECTIONS = {
    "frames": ("bench_frames", "Frame extraction (train split of the demo corpus)",
               lambda m, manifest, frames, work: m.run(manifest, work)),
    "audio": ("bench_audio", "Audio feature extraction (train split of the demo corpus)",
              lambda m, manifest, frames, work: m.run(manifest, frames, work)),
    "training": ("bench_training", "Training throughput per model (CPU)",
                 lambda m, manifest, frames, work: m.run()),
    "fusion": ("bench_fusion", "Fusion: one epoch over a MELD-sized set (CPU)",
               lambda m, manifest, frames, work: m.run(work)),
}


def ensure_demo(results: Path) -> None:
    """Run the workflow up to the train split's frames (no-op when already built)."""
    # Snakemake matches targets against its (relative) rule outputs.
    targets = [os.path.relpath(results / "manifest" / "train.parquet", REPO),
               os.path.relpath(results / "frames" / "dense" / "train", REPO)]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--profile",
                    "workflow/profiles/default", *targets], cwd=REPO, check=True, env=env)


def table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)\n"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for r in rows:
        cells = [f"{r.get(c):.4g}" if isinstance(r.get(c), float) else str(r.get(c, ""))
                 for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def previous_sections(text: str) -> dict[str, str]:
    """``## title`` -> that section's text (title line to the next section) of a benchmarks.md.

    A "Run <date>." line that older versions of this script wrote under a title is dropped: the
    page says what was measured and how to rerun it, not when.
    """
    sections = {}
    for chunk in text.split("\n## ")[1:]:
        title, body = chunk.rstrip("\n").split("\n", 1)
        body = re.sub(r"\A(\s*)Run \d{4}-\d\d-\d\d[^\n]*\n\n?", r"\1", body)
        sections[title] = f"## {title}\n{body}\n"
    return sections


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sections", nargs="*", default=list(SECTIONS))
    ap.add_argument("--results", default=str(REPO / "results"))
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    ap.add_argument("--no-build", action="store_true",
                    help="use the manifest and frames already under --results (no snakemake)")
    args = ap.parse_args(argv)
    results = Path(args.results)
    if not args.no_build:
        ensure_demo(results)
    manifest = results / "manifest" / "train.parquet"
    frames = results / "frames" / "dense" / "train"
    parts = [
        "# Benchmarks\n",
        "Written by scripts; do not edit by hand. Each section says what it measures, on what, "
        "and the command that reruns it:\n",
        "- `make bench` (`benchmarks/run.py`): frame extraction against pure decoding and 2 "
        "workers against 1, audio features as a multiple of real time, training throughput per "
        "model, one fusion epoch on a MELD-sized set. Figures are ratios against a reference "
        "measured in the same run, so they compare across machines; `python benchmarks/run.py "
        "audio` reruns one section.\n"
        "- `make bench-scale` (`benchmarks/scale.py`): generation, data stages and one epoch of "
        "every model at 1×, 4×, 16× the demo and at MELD's size, and the per-clip cost of HD.\n"
        "- `make bench-demo` (`benchmarks/demo.py`): the demo from an empty folder.\n"
        "- `make bench-tests` (`benchmarks/suite.py`): the test suite (`make test`).\n",
        f"Machine of the `make bench` sections: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}.\n",
    ]
    out = Path(args.out)
    # Sections not run this time keep their last figures (`run.py audio` rewrites only audio).
    kept = previous_sections(out.read_text(encoding="utf-8")) if out.is_file() else {}
    for name, (module_name, title, call) in SECTIONS.items():
        if name not in args.sections:
            if title in kept:
                parts.append(kept[title])
            continue
        module = importlib.import_module(module_name)
        with tempfile.TemporaryDirectory() as work:
            t0 = time.perf_counter()
            rows = call(module, str(manifest), str(frames), work)
            print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        parts += [f"## {title}\n", (module.__doc__ or "").strip() + "\n", table(rows)]
    # Sections other scripts write (e.g. benchmarks/scale.py) stay as they are, after these.
    ours = {title for _, title, _ in SECTIONS.values()}
    parts += [text for title, text in kept.items() if title not in ours]
    out.write_text("\n".join(parts), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
