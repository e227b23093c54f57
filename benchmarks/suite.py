"""Test-suite wall time: `make bench-tests` (or `python benchmarks/suite.py`).

Runs the README's test command (``python -m pytest -q``, what ``make test`` and CI run) once,
with pytest's JUnit XML report, and writes its section of docs/benchmarks.md: wall time,
the CPU time it takes (what bounds the wall time from below
on the machine's cores), peak RSS of the largest process, the time per test file and the
slowest tests. Per-test times include setup and teardown; the fixtures that build the shared
projects (the tiny workflow run, the DVC repository) start at collection and run beside other
tests (tests/conftest.py ``start_early``), so the per-file times add up to more than the wall
time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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


def machine_busy_s() -> float | None:
    """Seconds of CPU every process on the machine has used since boot (/proc/stat: user,
    nice, system, irq, softirq; not idle, iowait or a VM's steal), None where there is no
    /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(fields[i] for i in (0, 1, 2, 5, 6) if i < len(fields))
    return busy / os.sysconf("SC_CLK_TCK")


def run_suite(junit: Path, builds_log: Path) -> dict:
    """Run pytest as ``make test`` does; wall seconds, exit status, peak RSS, CPU time (its
    own and the machine's), load, and the shared builds' spans (tests/conftest.py)."""
    junit.parent.mkdir(parents=True, exist_ok=True)
    builds_log.unlink(missing_ok=True)
    load0 = os.getloadavg()[0]
    busy0 = machine_busy_s()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", f"--junitxml={junit}"],
                          cwd=REPO, check=False,
                          env={**os.environ, "AVEMO_BUILDS_LOG": str(builds_log)})
    wall = time.perf_counter() - t0
    busy1 = machine_busy_s()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    spans = json.loads(builds_log.read_text()) if builds_log.exists() else {}
    return {"wall_s": wall, "rc": proc.returncode, "peak_rss_mb": kids.ru_maxrss / 1024,
            "cpu_s": kids.ru_utime + kids.ru_stime,
            "machine_cpu_s": None if busy0 is None or busy1 is None else busy1 - busy0,
            "builds": spans,
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
    cores = r["cores"]
    own = (f"{r['cpu_s'] / 60:.1f} min (user + system of pytest and every process it waited "
           "for")
    machine = r.get("machine_cpu_s")
    if machine is None:  # an older run's figures
        return [f"- CPU time: {own}; jobs run by SLURM's daemons are not counted): no schedule "
                f"on {cores} cores finishes in less than **{r['cpu_s'] / 60 / cores:.1f} min**"]
    return [f"- CPU time: {own}); the machine's CPU time during the run: {machine / 60:.1f} "
            "CPU-min, which also counts what pytest does not wait for (the DVC queue's "
            "detached workers, the jobs SLURM's daemons run): no schedule "
            f"of that work on {cores} cores finishes in less than "
            f"**{machine / 60 / cores:.1f} min**"]


def builds_lines(r: dict) -> list[str]:
    """The shared builds (tests/conftest.py ``start_early``): when each started and ended."""
    spans = {k: v for k, v in r.get("builds", {}).items() if len(v) == 2}
    if not spans:
        return []
    lines = ["", "The shared builds (tests/conftest.py `start_early`: each starts at collection, "
             "or once the build it starts from is ready, and runs beside the tests; minutes "
             "after the session started):", "", "| build | started | ended |",
             "| --- | --- | --- |"]
    for name, (start, end) in sorted(spans.items(), key=lambda kv: kv[1][1]):
        lines.append(f"| `{name}` | {start / 60:.1f} | {end / 60:.1f} |")
    return lines


def section(r: dict, tests: list[dict], top: int = 12) -> str:
    counts: dict[str, int] = defaultdict(int)
    per_file: dict[str, list[float]] = defaultdict(list)
    for t in tests:
        counts[t["outcome"]] += 1
        per_file[t["file"]].append(t["s"])
    lines = [f"## {SECTION}\n",
             "Written by `make bench-tests` (`benchmarks/suite.py`): the README's test command "
             f"(`python -m pytest -q`, what CI runs) on {r['cores']} cores. Rerun: "
             "`make bench-tests`.\n",
             f"- wall time: **{r['wall_s'] / 60:.1f} min**; pytest exit status {r['rc']}",
             *cpu_line(r),
             "- tests: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
             f"- largest process' peak RSS: {r['peak_rss_mb'] / 1024:.2f} GB",
             *builds_lines(r),
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
    r = run_suite(junit, WORK / "builds.json")
    text = section(r, read_junit(junit))
    write_section(text, a.out, SECTION)
    print(text)
    return 0 if r["rc"] == 0 else r["rc"]


if __name__ == "__main__":
    raise SystemExit(main())
