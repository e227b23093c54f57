"""Test-suite wall time: `make bench-tests` (or `python benchmarks/suite.py`).

Runs the README's test command (``python -m pytest -q``, what ``make test`` and CI run) once,
with pytest's JUnit XML report, and writes its section of docs/benchmarks.md: wall time against
the 8-minute target (issue 14), the CPU time it takes (what bounds the wall time from below
on the machine's cores), peak RSS of the largest process, the time per test file and the
slowest tests. Per-test times include setup and teardown; the fixtures that build the shared
projects (the tiny workflow run, the DVC repository) start at collection and run beside other
tests (tests/conftest.py ``start_early``), so the per-file times add up to more than the wall
time. The machine may be shared: the load average at the start and the end is recorded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import write_section  # noqa: E402

WORK = REPO / "results" / "bench-tests"
SECTION = "Test suite: make test"
TARGET_MIN = 8.0


def run_suite(junit: Path) -> dict:
    """Run pytest as ``make test`` does; wall seconds, exit status, peak RSS and load."""
    junit.parent.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", f"--junitxml={junit}"],
                          cwd=REPO, check=False)
    wall = time.perf_counter() - t0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": wall, "rc": proc.returncode, "peak_rss_mb": kids.ru_maxrss / 1024,
            "cpu_s": kids.ru_utime + kids.ru_stime,
            "load": (load0, os.getloadavg()[0]), "when": dt.datetime.now(dt.UTC)
            .strftime("%Y-%m-%d %H:%M UTC"), "cores": os.cpu_count()}


def read_junit(junit: Path) -> list[dict]:
    """One row per test: file, name, seconds (setup + call + teardown), outcome."""
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "")
        outcome = ("failed" if case.find("failure") is not None or case.find("error") is not None
                   else "skipped" if case.find("skipped") is not None else "passed")
        rows.append({"file": module.replace(".", "/") + ".py" if module else "?",
                     "name": case.get("name", ""), "s": float(case.get("time", 0.0)),
                     "outcome": outcome})
    return rows


def cpu_line(r: dict) -> list[str]:
    """The CPU time the suite needs, and the shortest wall time it allows on these cores."""
    if "cpu_s" not in r:
        return []
    floor = r["cpu_s"] / 60 / r["cores"]
    return [f"- CPU time: {r['cpu_s'] / 60:.1f} min (user + system of pytest and every process "
            f"it waited for; jobs run by SLURM's daemons are not counted): no schedule on "
            f"{r['cores']} cores finishes in less than **{floor:.1f} min**"]


def section(r: dict, tests: list[dict], top: int = 12) -> str:
    ok = r["wall_s"] / 60 <= TARGET_MIN and r["rc"] == 0
    counts: dict[str, int] = defaultdict(int)
    per_file: dict[str, list[float]] = defaultdict(list)
    for t in tests:
        counts[t["outcome"]] += 1
        per_file[t["file"]].append(t["s"])
    lines = [f"## {SECTION}\n",
             "Written by `make bench-tests` (`benchmarks/suite.py`): the README's test command "
             f"(`python -m pytest -q`, what CI runs), run {r['when']} on {r['cores']} cores; "
             f"load average {r['load'][0]:.1f} at the start, {r['load'][1]:.1f} at the end (a "
             "shared machine: wall time includes waiting).\n",
             f"- wall time: **{r['wall_s'] / 60:.1f} min** (target {TARGET_MIN:.0f} min: "
             f"{'met' if ok else 'MISSED'}); pytest exit status {r['rc']}",
             *cpu_line(r),
             "- tests: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
             f"- largest process' peak RSS: {r['peak_rss_mb'] / 1024:.2f} GB",
             "",
             "Time per test file (setup, call and teardown of its tests; the shared projects "
             "are built beside other tests, so the column adds up to more than the wall "
             "time):", "", "| file | tests | seconds |", "| --- | --- | --- |"]
    for f, times in sorted(per_file.items(), key=lambda kv: -sum(kv[1])):
        lines.append(f"| `{f}` | {len(times)} | {sum(times):.0f} |")
    lines += ["", f"The {top} slowest tests:", "", "| test | seconds |", "| --- | --- |"]
    for t in sorted(tests, key=lambda t: -t["s"])[:top]:
        lines.append(f"| `{t['file']}::{t['name']}` | {t['s']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    a = ap.parse_args(argv)
    junit = WORK / "junit.xml"
    r = run_suite(junit)
    text = section(r, read_junit(junit))
    write_section(text, a.out, SECTION)
    print(text)
    return 0 if r["rc"] == 0 else r["rc"]


if __name__ == "__main__":
    raise SystemExit(main())
