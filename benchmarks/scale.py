"""Scale benchmark: `make bench-scale` (or `python benchmarks/scale.py [--sizes 1x 4x ...]`).

Runs the real workflow at growing corpus sizes, each in its own working folder
``results/bench-scale/<size>/`` (git-ignored; emptied first unless ``--keep``) with a config
derived from config.yaml: sizes ``1x``, ``4x``, ``16x`` are the demo preset's split sizes times
1, 4, 16 (the demo's duration law and label shares); ``meld_scale`` is the ``meld_scale``
preset (MELD's 13,708 utterances, durations and labels); ``hd720`` renders a few clips at
1280x720 (MELD's clips are HD) and ``hd96`` the very same clips at the demo's 96x96, so their
rows are the per-clip cost of the resolution. Each run has one seed, one epoch for every model
(``train.engine``, each model's and fusion's engine overrides), no fusion diagnosis, no
single-task ablation, no extra comparisons.

Two snakemake calls per size (``--cores``, default 2): the data stages (generation, manifest,
frames of every frame set, audio), then one epoch of every per-stream model and every
early-fusion model (and the cross-fitting they need; ``hd720``/``hd96`` run the data stages
only). Per job it reads Snakemake's own benchmark file (``results/benchmarks/*.tsv``: wall
seconds ``s`` and peak resident memory ``max_rss`` of the job's process tree) and groups jobs
into stages; clips per job: the clip files written (generation), the manifests' rows
(manifest), the split's usable rows (frames, audio), the usable rows of all three splits
(training: one epoch on train, dev evaluation, dev/test predictions and embeddings of every
split). Each size's figures are kept in ``results/bench-scale/<size>/scale.json``, so a run of
some sizes rewrites the section with the others' last figures. ``--models-only`` reruns just
the model jobs of sizes already run (after a change to the training or fusion code) on their
existing data stages, keeping the data figures; the size's row then says so.

Scaling, read from the figures: each stage's peak RSS per job at ``meld_scale`` (or the
largest size run) against ``1x`` (flat: within +15 %); the wall time of generation + data
stages at ``meld_scale``; each stage's seconds per clip against ``1x``'s (within +-20 %); and
the marginal time per clip (the extra job seconds per extra clip from one size to the next,
which cancels the jobs' fixed start-up) against the slope through ``1x`` and the largest size:
it tells linear scaling from a stage that gets dearer per clip as the corpus grows.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from avemo import params as P  # noqa: E402
from avemo.labels import SPLITS  # noqa: E402
from avemo.registry import STREAM_KINDS  # noqa: E402

WORK = REPO / "results" / "bench-scale"
SECTION = "Scale: generation, data stages and one epoch per model at 1x-16x the demo and MELD size"
SIZES = ("1x", "4x", "16x", "meld_scale")
HD_SIZES = ("hd720", "hd96")
ALL_SIZES = (*SIZES, *HD_SIZES)
DATA_STAGES = ("synthetic_corpus", "manifest", "frames", "audio")
# The bounds the scaling lines read the figures against (see the docstring).
RSS_GROWTH_MAX = 0.15
DATA_MINUTES_MAX = 30.0
PER_CLIP_TOL = 0.20
MIN_STEP_S = 10.0  # extra job seconds a size step needs before its marginal cost is judged
HD_CLIPS = {"train": 12, "dev": 4, "test": 4}


def preset_for(size: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """The synthetic preset of ``size`` (k x the demo's split sizes, or meld_scale, or HD)."""
    presets = cfg["synthetic"]["presets"]
    if size == "meld_scale":
        return copy.deepcopy(presets["meld_scale"])
    demo = presets["demo"]
    if size in HD_SIZES:
        return {"train": HD_CLIPS["train"], "dev": HD_CLIPS["dev"], "test": HD_CLIPS["test"],
                "max_duration_s": demo.get("max_duration_s")}
    k = int(size.rstrip("x"))
    return {"train": demo["train"] * k, "dev": demo["dev"] * k, "test": demo["test"] * k,
            "max_duration_s": demo.get("max_duration_s")}


def config_for(size: str) -> dict[str, Any]:
    """config.yaml with the size's preset, one seed, one epoch per model, no diagnosis."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg = copy.deepcopy(cfg)
    cfg["results_dir"] = "results"
    cfg["dataset"] = "synthetic"
    name = f"bench_{size}"
    cfg["synthetic"]["presets"][name] = preset_for(size, cfg)
    cfg["synthetic"]["preset"] = name
    if size == "hd720":
        cfg["synthetic"].update(width=1280, height=720)
    cfg["train"]["seeds"] = [0]
    cfg["train"]["engine"]["epochs"] = 1
    for section in (cfg["train"]["models"], cfg["fusion"]["models"]):
        for spec in section.values():
            if isinstance(spec, dict) and "engine" in spec:
                spec["engine"]["epochs"] = 1
    cfg["fusion"].setdefault("engine", {})["epochs"] = 1
    cfg["fusion"].update(diagnosis=False, single_task=None)
    cfg["evaluation"].update(compare=[], primary=None)
    return cfg


def data_targets(cfg: dict[str, Any]) -> list[str]:
    lay = P.layout(cfg)
    out = [lay.manifest(s) for s in SPLITS]
    out += [lay.frames(f, s) for f in P.frame_sets(cfg) for s in SPLITS]
    out += [lay.audio(s) for s in SPLITS]
    return out


def model_targets(cfg: dict[str, Any]) -> list[str]:
    """One run (seed 0) of every per-stream and early-fusion model: its summary.json."""
    lay = P.layout(cfg)
    seed = cfg["train"]["seeds"][0]
    out = [lay.summary(m, seed, "models") for m in P.configured(cfg, "visual", "audio")]
    out += [lay.summary(m, seed, "fusion") for m in P.configured(cfg, "early_fusion")]
    return out


def snakemake(work: Path, targets: list[str], cores: int, extra: tuple[str, ...] = ()) -> float:
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    t0 = time.perf_counter()
    subprocess.run([str(bin_dir / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work),
                    "--profile", str(REPO / "workflow" / "profiles" / "default"),
                    "--cores", str(cores), *extra, *targets], check=True, env=env)
    return time.perf_counter() - t0


# Rules whose jobs --models-only reruns (one epoch of every model and what it needs): the
# per-stream training rules are named after the registry's stream kinds (rules/train.smk).
MODEL_RULES = (*(f"train_{kind}" for kind in STREAM_KINDS), "crossfit", "fusion")


def stage_of(job: str) -> str:
    """Job name (benchmark file stem) -> stage: frames_dense_train -> frames, train_cnn5_seed0
    -> train cnn5, fusion_gated_seed0 -> fusion gated, crossfit_<m>_seed0 -> crossfit <m>."""
    for stage in ("frames", "audio"):
        if job.startswith(stage + "_"):
            return stage
    m = re.fullmatch(r"(train|fusion|crossfit)_(.+)_seed\d+", job)
    if m:
        return f"{m.group(1)} {m.group(2)}"
    return job


def read_jobs(work: Path) -> dict[str, dict[str, float]]:
    """Benchmark file stem -> {s, max_rss (MB)} of every job that ran."""
    jobs = {}
    for tsv in sorted((work / "results" / "benchmarks").glob("*.tsv")):
        lines = tsv.read_text().splitlines()
        if len(lines) >= 2:
            row = dict(zip(lines[0].split("\t"), lines[1].split("\t"), strict=False))
            rss = row.get("max_rss", "NA")
            jobs[tsv.stem] = {"s": float(row["s"]),
                              "max_rss": float(rss) if rss not in ("NA", "-", "") else 0.0}
    return jobs


def clip_counts(work: Path) -> dict[str, Any]:
    """Clips the jobs handled: files written, manifest rows, usable rows per split, audio s."""
    import pandas as pd

    res = work / "results"
    corpus = res / "data" / "synthetic"
    files = sum(1 for _ in corpus.glob("*/*.mp4")) if corpus.is_dir() else 0
    rows, usable, audio_s = {}, {}, 0.0
    for s in SPLITS:
        path = res / "manifest" / f"{s}.parquet"
        if path.is_file():
            df = pd.read_parquet(path, columns=["ok", "duration_s"])
            rows[s], usable[s] = len(df), int(df["ok"].sum())
            audio_s += float(df.loc[df["ok"], "duration_s"].sum())
    return {"files": files, "rows": rows, "usable": usable, "audio_s": audio_s}


def clips_of(job: str, counts: dict[str, Any]) -> int:
    stage = stage_of(job)
    if stage == "synthetic_corpus":
        return counts["files"]
    if stage == "manifest":
        return sum(counts["rows"].values())
    if stage in ("frames", "audio"):
        return counts["usable"].get(job.split("_")[-1], 0)
    return sum(counts["usable"].values())


def rerun_models(size: str, cores: int) -> dict[str, Any]:
    """Rerun every model job of a size on its existing data stages (``--models-only``): the
    data figures stay those of the size's last full run, the model jobs' are new."""
    work = WORK / size
    old_path = work / "scale.json"
    if not old_path.is_file() or not (work / "results").is_dir():
        raise SystemExit(f"--models-only: {work} holds no earlier run of {size}; run it in full")
    old = json.loads(old_path.read_text())
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    load0 = os.getloadavg()[0]
    models_started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"[bench-scale] {size}: one epoch per model (data stages kept)", file=sys.stderr,
          flush=True)
    # Only file times decide about the data stages: a code change since their run leaves them.
    train_wall = snakemake(work, model_targets(cfg), cores,
                           ("--rerun-triggers", "mtime", "--forcerun", *MODEL_RULES, "--"))
    counts = clip_counts(work)
    result = {**old, "train_wall_s": round(train_wall, 1), "models_started": models_started,
              "models_load": [round(load0, 2), round(os.getloadavg()[0], 2)],
              "jobs": {j: {**v, "clips": clips_of(j, counts)}
                       for j, v in read_jobs(work).items()}}
    old_path.write_text(json.dumps(result, indent=1))
    return result


def run_size(size: str, cores: int, keep: bool) -> dict[str, Any]:
    work = WORK / size
    if not keep:
        for sub in ("results", ".snakemake"):
            shutil.rmtree(work / sub, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    cfg = config_for(size)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    load0 = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"[bench-scale] {size}: data stages", file=sys.stderr, flush=True)
    data_wall = snakemake(work, data_targets(cfg), cores)
    train_wall = None
    if size not in HD_SIZES:
        print(f"[bench-scale] {size}: one epoch per model", file=sys.stderr, flush=True)
        train_wall = snakemake(work, model_targets(cfg), cores)
    counts = clip_counts(work)
    jobs = read_jobs(work)
    result = {
        "size": size,
        "started": started,
        "cores": cores,
        "load_start": round(load0, 2),
        "load_end": round(os.getloadavg()[0], 2),
        "width": cfg["synthetic"]["width"],
        "height": cfg["synthetic"]["height"],
        "preset": {k: v for k, v in cfg["synthetic"]["presets"][cfg["synthetic"]["preset"]].items()
                   if k in ("train", "dev", "test", "max_duration_s")},
        "data_wall_s": round(data_wall, 1),
        "train_wall_s": None if train_wall is None else round(train_wall, 1),
        "counts": counts,
        "jobs": {j: {**v, "clips": clips_of(j, counts)} for j, v in jobs.items()},
    }
    (work / "scale.json").write_text(json.dumps(result, indent=1))
    return result


def load_results() -> dict[str, dict[str, Any]]:
    out = {}
    for size in ALL_SIZES:
        path = WORK / size / "scale.json"
        if path.is_file():
            out[size] = json.loads(path.read_text())
    return out


def stages(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Stage -> summed job seconds, clips (summed over its jobs), peak RSS of one job (MB)."""
    out: dict[str, dict[str, float]] = {}
    for job, v in result["jobs"].items():
        st = out.setdefault(stage_of(job), {"s": 0.0, "clips": 0, "jobs": 0, "max_rss": 0.0})
        st["s"] += v["s"]
        st["clips"] += v["clips"]
        st["jobs"] += 1
        st["max_rss"] = max(st["max_rss"], v["max_rss"])
    return out


def stage_order(names: set[str]) -> list[str]:
    first = [s for s in DATA_STAGES if s in names]
    return first + sorted(n for n in names if n not in first)


def marginal_steps(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, tuple[float, int]]]:
    """Stage -> {size: (ms per clip, extra clips) between the previous size run and this one}:
    the cost of one more clip, with the jobs' fixed start-up (the same at every size)
    cancelled out."""
    out: dict[str, dict[str, tuple[float, int]]] = {}
    sized = [z for z in SIZES if z in results]
    for prev, size in itertools.pairwise(sized):
        a, b = stages(results[prev]), stages(results[size])
        for name in set(a) & set(b):
            extra = int(b[name]["clips"] - a[name]["clips"])
            if extra > 0 and a[name]["jobs"] == b[name]["jobs"]:
                ms = 1000 * (b[name]["s"] - a[name]["s"]) / extra
                out.setdefault(name, {})[size] = (ms, extra)
    return out


def fmt(x: float | None, nd: int = 1) -> str:
    return "" if x is None else f"{x:,.{nd}f}"


def check(results: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The scaling lines for the doc, and the names of the readings outside their bound."""
    lines, outside = [], []
    sized = [s for s in SIZES if s in results]
    base = results.get("1x")
    top = next((s for s in reversed(SIZES) if s in results and s != "1x"), None)

    # 1. Peak RSS per job flat.
    if base and top:
        st0, st1 = stages(base), stages(results[top])
        worst = []
        for name in stage_order(set(st0) & set(st1)):
            a, b = st0[name]["max_rss"], st1[name]["max_rss"]
            if a > 0:
                worst.append((b / a - 1, name, a, b))
        bad = [w for w in worst if w[0] > RSS_GROWTH_MAX]
        if bad:
            outside.append("rss")
        scope = "" if top == "meld_scale" else f" (meld_scale not run: `{top}` instead)"
        detail = "; ".join(f"{n} {a:,.0f} → {b:,.0f} MB ({g:+.0%})" for g, n, a, b in
                           sorted(bad or worst, reverse=True)[:6])
        lines.append(f"- Peak RSS per job from `1x` to `meld_scale`{scope}: "
                     f"{'flat' if not bad else '**grows**'} (bound +{RSS_GROWTH_MAX:.0%}). "
                     f"{'Above it' if bad else 'Largest growth'}: {detail}.")
    else:
        lines.append("- Peak RSS per job across sizes: not read (needs `1x` and a larger size).")

    # 2. Generation + data stages at meld_scale within 30 min.
    if "meld_scale" in results:
        m = results["meld_scale"]["data_wall_s"] / 60
        if m > DATA_MINUTES_MAX:
            outside.append("data_minutes")
        lines.append(f"- Generation + data stages at `meld_scale` on "
                     f"{results['meld_scale']['cores']} cores: {m:.1f} min wall.")
    elif sized:
        big = results[sized[-1]]
        clips = big["counts"]["files"]
        est = big["data_wall_s"] / max(clips, 1) * 13709 / 60
        lines.append(f"- Generation + data stages at `meld_scale`: **not measured** "
                     f"(`meld_scale` not run); linear estimate from "
                     f"`{sized[-1]}` ({clips:,} clips in {big['data_wall_s'] / 60:.1f} min): "
                     f"{est:.0f} min.")

    # 3. Time per clip constant.
    if base and len(sized) > 1:
        st0 = stages(base)
        off = []
        for size in sized[1:]:
            st = stages(results[size])
            for name in stage_order(set(st0) & set(st)):
                a = st0[name]["s"] / max(st0[name]["clips"], 1)
                b = st[name]["s"] / max(st[name]["clips"], 1)
                if a > 0 and abs(b / a - 1) > PER_CLIP_TOL:
                    off.append(f"{name} at `{size}` {b / a - 1:+.0%}")
        if off:
            outside.append("per_clip")
        slower = [o for o in off if "+" in o]
        why = (f" Slower per clip at a larger size: {'; '.join(slower)}." if slower else
               " None is slower per clip at a larger size: each is faster, its jobs' fixed "
               "start-up (interpreter, imports, model build, first batch) spread over more "
               "clips (the linear fit above).") if off else ""
        lines.append(f"- Time per clip against `1x` (bound ±{PER_CLIP_TOL:.0%}) across "
                     f"{', '.join(f'`{s}`' for s in sized)}: "
                     + (f"not constant. Outside: {'; '.join(off)}.{why}" if off else
                        "constant for every stage."))
    else:
        lines.append("- Time per clip across sizes: not read (needs `1x` and another size).")

    # 3b. The same question with the start-ups cancelled out: is one more clip as dear at
    # every size (linear), against the slope through 1x and the largest size? A step whose
    # extra work is under MIN_STEP_S is not judged: a job's start-up varies by about a second.
    steps = marginal_steps(results)
    if base and top and any(len(v) > 1 for v in steps.values()):
        st0, st1 = stages(base), stages(results[top])
        off, judged, small = [], [], set()
        for name in stage_order(set(steps) & set(st0) & set(st1)):
            if st1[name]["clips"] <= st0[name]["clips"]:
                continue
            slope = (1000 * (st1[name]["s"] - st0[name]["s"])
                     / (st1[name]["clips"] - st0[name]["clips"]))
            for size, (ms, extra) in steps[name].items():
                if slope <= 0 or slope * extra / 1000 < MIN_STEP_S:
                    small.add(name)
                    continue
                dev = ms / slope - 1
                judged.append((abs(dev), f"{name} to `{size}` {dev:+.0%}"))
                if abs(dev) > PER_CLIP_TOL:
                    off.append(f"{name} to `{size}` {ms:,.1f} vs {slope:,.1f} ms/clip ({dev:+.0%})")
        shown = "; ".join(off) if off else "; ".join(w for _, w in sorted(judged)[-4:])
        lines.append(f"- Marginal time per clip (the extra "
                     f"job seconds per extra clip from one size to the next, start-ups "
                     f"cancelled out) within ±{PER_CLIP_TOL:.0%} of the slope through `1x` and "
                     f"`{top}`, for the {len(judged)} steps with at least {MIN_STEP_S:.0f} s of "
                     f"extra work: {'holds' if not off else 'does **not** hold'}. "
                     f"{'Outside' if off else 'Largest deviations'}: {shown or 'none'}."
                     + (f" Too little extra work to judge: {', '.join(sorted(small))}."
                        if small else ""))
    return lines, outside


def linear_fit(results: dict[str, dict[str, Any]]) -> str:
    """Per stage, job seconds = fixed + marginal x clips through `1x` and the largest size run
    (start-up vs per-clip work), and what that predicts at MELD's size."""
    sized = [z for z in SIZES if z in results]
    if "1x" not in results or len(sized) < 2:
        return ""
    top = sized[-1]
    a, b = stages(results["1x"]), stages(results[top])
    meld_clips = {"synthetic_corpus": 13709, "manifest": 13708}
    rows = [f"| stage | fixed s (fit) | marginal ms/clip (fit) | predicted job s at 13,708 "
            f"clips{'' if top != 'meld_scale' else ' (fit through meld_scale)'} |",
            "| --- | --- | --- | --- |"]
    data_total = 0.0
    for name in stage_order(set(a) & set(b)):
        c1, c2, s1, s2 = a[name]["clips"], b[name]["clips"], a[name]["s"], b[name]["s"]
        if c2 == c1:
            continue
        marginal = (s2 - s1) / (c2 - c1)
        fixed = s1 - marginal * c1
        n = meld_clips.get(name, 13708 * c1 / max(results["1x"]["counts"]["files"], 1))
        pred = fixed + marginal * n
        if name in DATA_STAGES:
            data_total += pred
        rows.append(f"| {name} | {fixed:,.1f} | {1000 * marginal:,.1f} | {pred:,.0f} |")
    return (f"Linear fit per stage through `1x` and `{top}` (summed job seconds = fixed + "
            "marginal × clips; the prediction scales each stage's clips by 13,708 / the `1x` "
            "corpus, ignoring MELD's longer mean duration): generation + data stages "
            f"predicted {data_total / 60:,.0f} min of job time at MELD size.\n\n"
            + "\n".join(rows) + "\n")


def models_note(r: dict[str, Any]) -> str:
    """For a size whose model jobs were rerun alone (``--models-only``): say so."""
    return " (model jobs rerun on these data stages)" if "models_started" in r else ""


def section(results: dict[str, dict[str, Any]]) -> tuple[str, list[str]]:
    parts = [f"## {SECTION}\n",
             (__doc__ or "").split("\n\n", 1)[1].strip() + "\n",
             "    python benchmarks/scale.py [--sizes 1x 4x 16x meld_scale hd720 hd96] "
             "[--cores 2] [--models-only]\n"]
    head = ["| size | WxH | clips written | usable (train/dev/test)"
            " | audio h | data stages wall min | training wall min |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for size in ALL_SIZES:
        r = results.get(size)
        if not r:
            continue
        u = r["counts"]["usable"]
        head.append(
            f"| `{size}`{models_note(r)} | "
            f"{r['width']}×{r['height']} | {r['counts']['files']:,} | "
            f"{'/'.join(f'{u.get(s, 0):,}' for s in SPLITS)} | "
            f"{r['counts']['audio_s'] / 3600:.3g} | {r['data_wall_s'] / 60:.1f} | "
            f"{'' if r['train_wall_s'] is None else fmt(r['train_wall_s'] / 60)} |")
    parts.append("\n".join(head) + "\n")

    parts.append("Per stage (jobs summed; clips/s = clips handled / summed job seconds; "
                 "marginal ms/clip = the extra job seconds per extra clip since the size above "
                 "it, so the jobs' fixed start-up cancels out; peak RSS = the largest `max_rss` "
                 "of one of its jobs, MB):\n")
    rows = ["| stage | size | jobs | clips | job s | clips/s | ms/clip | ms/clip vs 1x | "
            "marginal ms/clip | peak RSS MB | RSS vs 1x |", "| --- | --- | --- | --- | --- | "
            "--- | --- | --- | --- | --- | --- |"]
    all_stages = {n for r in results.values() for n in stages(r)}
    base = stages(results["1x"]) if "1x" in results else {}
    steps = marginal_steps(results)
    for name in stage_order(all_stages):
        for size in ALL_SIZES:
            if size not in results:
                continue
            st = stages(results[size]).get(name)
            if not st:
                continue
            per = 1000 * st["s"] / max(st["clips"], 1)
            ref = base.get(name) if size in SIZES else None
            ratio = rss = ""
            if ref and size != "1x" and ref["clips"]:
                ratio = f"{per / (1000 * ref['s'] / ref['clips']) - 1:+.0%}"
                rss = f"{st['max_rss'] / ref['max_rss'] - 1:+.0%}" if ref["max_rss"] else ""
            step = steps.get(name, {}).get(size)
            marginal = "" if step is None else f"{step[0]:,.1f}"
            rows.append(f"| {name} | `{size}` | {st['jobs']} | {st['clips']:,} | "
                        f"{st['s']:,.1f} | {st['clips'] / st['s']:,.1f} | {per:,.1f} | {ratio} | "
                        f"{marginal} | {st['max_rss']:,.0f} | {rss} |" if st["s"] > 0 else
                        f"| {name} | `{size}` | {st['jobs']} | {st['clips']:,} | 0 | | | | | "
                        f"{st['max_rss']:,.0f} | |")
    parts.append("\n".join(rows) + "\n")

    sized = [z for z in ALL_SIZES if z in results]
    jobs = sorted({j for z in sized for j in results[z]["jobs"]},
                  key=lambda j: (stage_order({stage_of(x) for z in sized
                                              for x in results[z]["jobs"]}).index(stage_of(j)), j))
    per_job = ["| job | " + " | ".join(f"`{z}` s / MB" for z in sized) + " |",
               "| --- | " + " | ".join("---" for _ in sized) + " |"]
    for j in jobs:
        cells = []
        for z in sized:
            v = results[z]["jobs"].get(j)
            cells.append(f"{v['s']:,.1f} / {v['max_rss']:,.0f}" if v else "")
        per_job.append(f"| {j} | " + " | ".join(cells) + " |")
    parts.append("Per job: wall seconds / peak RSS (MB), from its Snakemake benchmark file:\n")
    parts.append("\n".join(per_job) + "\n")

    if "hd720" in results and "hd96" in results:
        a, b = stages(results["hd720"]), stages(results["hd96"])
        hd = ["| stage | clips | ms/clip at 96×96 | ms/clip at 1280×720 | extra ms/clip at "
              "1280×720 | peak RSS MB 96×96 | peak RSS MB 1280×720 |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
        for name in stage_order(set(a) & set(b)):
            pa = 1000 * a[name]["s"] / max(a[name]["clips"], 1)
            pb = 1000 * b[name]["s"] / max(b[name]["clips"], 1)
            hd.append(f"| {name} | {a[name]['clips']} | {pb:,.0f} | {pa:,.0f} | {pa - pb:+,.0f} | "
                      f"{b[name]['max_rss']:,.0f} | {a[name]['max_rss']:,.0f} |")
        parts.append(f"Per-clip cost of the resolution: the same {sum(HD_CLIPS.values())} "
                     "labelled clips (same plan and seed, the demo's duration law) rendered and "
                     "processed at 1280×720 (`hd720`) and at 96×96 (`hd96`). With this few "
                     "clips a job's start-up (interpreter, imports) weighs on ms/clip; the "
                     "difference between the two columns is the resolution's own cost:\n")
        parts.append("\n".join(hd) + "\n")

    fit = linear_fit(results)
    if fit:
        parts.append(fit)
    lines, outside = check(results)
    parts.append("Scaling:\n")
    parts.append("\n".join(lines) + "\n")
    return "\n".join(parts), outside


def write_section(text: str, out: Path, section: str = SECTION) -> None:
    """Replace (or append) the section titled ``section`` of docs/benchmarks.md; others stay as
    they are."""
    doc = out.read_text(encoding="utf-8") if out.is_file() else "# Benchmarks\n"
    chunks = doc.split("\n## ")
    kept = [chunks[0].rstrip("\n") + "\n"]
    placed = False
    for chunk in chunks[1:]:
        if chunk.split("\n", 1)[0].strip() == section:
            kept.append(text.rstrip("\n") + "\n")
            placed = True
        else:
            kept.append("## " + chunk.rstrip("\n") + "\n")
    if not placed:
        kept.append(text.rstrip("\n") + "\n")
    out.write_text("\n".join(kept), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=[*SIZES, *HD_SIZES], choices=ALL_SIZES)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", action="store_true",
                    help="reuse what the size's folder holds (snakemake reruns only what is "
                         "missing; the figures are then those of the last real runs)")
    ap.add_argument("--models-only", action="store_true",
                    help="rerun only the model jobs (rules " + ", ".join(MODEL_RULES) + ") on "
                         "each size's existing data stages; the data figures stay those of "
                         "its last full run")
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    ap.add_argument("--no-write", action="store_true", help="print the section only")
    ap.add_argument("--render-only", action="store_true",
                    help="run nothing: rewrite the section from the sizes' last scale.json")
    args = ap.parse_args(argv)
    for size in [] if args.render_only else args.sizes:
        r = (rerun_models(size, args.cores) if args.models_only
             else run_size(size, args.cores, args.keep))
        print(f"[bench-scale] {size}: data {r['data_wall_s'] / 60:.1f} min, training "
              f"{(r['train_wall_s'] or 0) / 60:.1f} min", file=sys.stderr, flush=True)
    text, outside = section(load_results())
    print(text)
    if not args.no_write:
        write_section(text, Path(args.out))
        print(f"wrote {args.out} ({platform.machine()}, {os.cpu_count()} CPUs)", file=sys.stderr)
    for m in outside:
        print(f"outside its bound: {m}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
