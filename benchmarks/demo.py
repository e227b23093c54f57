"""Demo wall time: `make bench-demo` (or `python benchmarks/demo.py [--cores N]`).

Runs the default demo exactly as the README's command does (config.yaml as it is: every seed,
model and diagnosis variant it enables) from an empty working folder ``results/bench-demo/``
(git-ignored, emptied first), one ``snakemake --profile workflow/profiles/default`` call, and
writes its section of docs/benchmarks.md: wall time, number of jobs, job time per stage (sum of
Snakemake's benchmark files, ``s``), the largest peak RSS of a job per stage (``max_rss``), the
size of ``report.html``, and the shortest wall time the jobs allow on the cores: job time /
cores, and the same without process start-ups (the training stages' own ``seconds`` in their
summary.json files). ``--render-only`` rewrites the section from the last run's demo.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import read_jobs, snakemake, stage_of, write_section  # noqa: E402

WORK = REPO / "results" / "bench-demo"
SECTION = "Demo: the whole workflow from an empty results/"


def stage_key(job: str) -> str:
    """train_cnn5_seed0 -> train, evaluate_cnn5 -> evaluate, frames_dense_train -> frames."""
    name = stage_of(job)
    return name.split()[0] if " " in name else name.split("_")[0]


# Stages whose jobs train (or fit) a model: their summary.json's ``seconds`` is the time
# inside the stage function, i.e. the job's time less its process start-up.
MODEL_STAGES = {"train": "models", "crossfit": "crossfit", "fusion": "fusion"}


def own_seconds(results: Path) -> dict[str, float]:
    """Stage -> summed ``seconds`` of its jobs' summary.json files (MODEL_STAGES)."""
    out = {}
    for stage, folder in MODEL_STAGES.items():
        total = 0.0
        for f in (results / folder).glob("*/seed*/summary.json"):
            if stage != "fusion" or not f.parts[-3].startswith("late"):  # late: its own stage
                total += float(json.loads(f.read_text()).get("seconds", 0.0))
        out[stage] = total
    return out


def floor_lines(r: dict, total: float) -> list[str]:
    """The shortest wall time the jobs allow on the cores, with and without start-ups."""
    lines = [f"- no schedule of these jobs on {r['cores']} cores finishes in less than "
             f"{total / 60 / r['cores']:.1f} min (job time / cores)"]
    own = r.get("own_s")
    if own:
        modelled = sum(r["stages"].get(s, {"s": 0.0})["s"] for s in own)
        rest = total - modelled
        floor = (sum(own.values()) + rest) / 60 / r["cores"]
        lines.append(
            f"- the {', '.join(own)} jobs spend {sum(own.values()) / 60:.1f} of their "
            f"{modelled / 60:.1f} min inside the stage function (summary.json `seconds`; the "
            f"rest is process start-up: Python, torch, data loading); even with those jobs' "
            f"start-ups free (the other stages' jobs counted as they ran), the same "
            f"computation needs at least **{floor:.1f} min** on {r['cores']} cores")
    return lines


def run(cores: int) -> dict:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["results_dir"] = "results"
    (WORK / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    load0 = os.getloadavg()[0]
    wall = snakemake(WORK, [], cores)
    jobs = read_jobs(WORK)
    per_stage: dict[str, dict[str, float]] = {}
    for job, row in jobs.items():
        st = per_stage.setdefault(stage_key(job), {"jobs": 0, "s": 0.0, "max_rss": 0.0})
        st["jobs"] += 1
        st["s"] += row["s"]
        st["max_rss"] = max(st["max_rss"], row["max_rss"])
    report = WORK / "results" / "report" / "report.html"
    return {"wall_s": wall, "cores": cores, "jobs": len(jobs), "stages": per_stage,
            "own_s": own_seconds(WORK / "results"),
            "report_mb": report.stat().st_size / 1e6 if report.is_file() else None,
            "load": (load0, os.getloadavg()[0]),
            "seeds": cfg["train"]["seeds"], "when": dt.date.today().isoformat()}


def section(r: dict) -> str:
    total = sum(s["s"] for s in r["stages"].values())
    lines = [f"## {SECTION}\n",
             "Written by `make bench-demo` (`benchmarks/demo.py`): the README's demo command "
             f"(config.yaml as it is, seeds {r['seeds']}) on --cores {r['cores']} from an empty "
             "working folder. Rerun: `make bench-demo` (`--render-only` rewrites this section "
             "from the last run's `results/bench-demo/demo.json`).\n",
             f"- wall time: **{r['wall_s'] / 60:.1f} min** for {r['jobs']} jobs",
             f"- job time: {total / 60:.1f} min (the sum over jobs; more than the wall time "
             "when jobs run side by side)",
             *floor_lines(r, total),
             "- report.html: " + (f"{r['report_mb']:.1f} MB" if r["report_mb"] else "missing"),
             "", "| stage | jobs | job time (min) | share | largest job peak RSS (GB) |",
             "| --- | --- | --- | --- | --- |"]
    for name, s in sorted(r["stages"].items(), key=lambda kv: -kv[1]["s"]):
        lines.append(f"| {name} | {s['jobs']} | {s['s'] / 60:.1f} | {s['s'] / total:.0%} | "
                     f"{s['max_rss'] / 1024:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--render-only", action="store_true",
                    help="run nothing: rewrite the section from the last run's demo.json")
    a = ap.parse_args(argv)
    if a.render_only:
        if not (WORK / "demo.json").is_file():
            raise SystemExit(f"--render-only: no {WORK / 'demo.json'}; run the benchmark")
        r = json.loads((WORK / "demo.json").read_text())
    else:
        r = run(a.cores)
        (WORK / "demo.json").write_text(json.dumps(r, indent=1))
    text = section(r)
    write_section(text, a.out, SECTION)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
