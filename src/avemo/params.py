"""From the validated config to each job: its parameters, and its input and output paths.

The rules pass ``job_params(rule, ...)`` to the CLI (as JSON ``--params``), so Snakemake's params
rerun-trigger sees a change only in the jobs whose arguments really changed, and the dvc.yaml
generator records which config keys each job's parameters read (``avemo.dvcgen``). Which models
run, and what each reads, comes from the registry; every path comes from the layout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import registry
from .config import config_hash
from .labels import SPLITS
from .layout import BASELINE_SEED, PREDICTION_SPLITS, Layout
from .registry import ABLATIONS, SINGLE_TASK

STUDY_SET = "study"  # the study's sampling (1 frame / 3 s): the QC table reports this set


def as_json(params: Mapping[str, Any]) -> str:
    """A job's params as the canonical JSON string passed to `avemo <stage> --params`."""
    return json.dumps(params, sort_keys=True)


def layout(cfg: Mapping[str, Any]) -> Layout:
    return Layout(cfg["results_dir"])


def corpus_root(cfg: Mapping[str, Any]) -> str:
    """Where the raw corpus (label CSVs + split folders) lives."""
    if cfg["dataset"] == "synthetic":
        return layout(cfg).synthetic_corpus()
    return str(cfg["meld"]["root"])


# -- which models run ----------------------------------------------------------------------------

def configured(cfg: Mapping[str, Any], *kinds: str) -> list[str]:
    """Configured models of ``kinds`` in config order (baselines: always, registry order; the
    diagnosis variants, when ``fusion.diagnosis`` is on, after the configured fusion models)."""
    names = [*cfg["train"]["models"], *cfg["fusion"]["models"], *diagnostic(cfg)]
    out = registry.of_kind(names, *kinds)
    if "baseline" in kinds:
        out += registry.names(["baseline"])
    return out


def diagnostic(cfg: Mapping[str, Any]) -> list[str]:
    """The diagnosis variants (avemo.diagnosis) when ``fusion.diagnosis`` is on."""
    return registry.diagnostic_names() if cfg["fusion"].get("diagnosis") else []


def factors(run: str) -> dict[str, str]:
    """A fusion run's factor levels (its registry entry's)."""
    return dict(registry.get(run).factors)


def cross_fitted(cfg: Mapping[str, Any]) -> list[str]:
    """Video models whose out-of-fold train embeddings some early-fusion run reads."""
    runs = configured(cfg, "early_fusion")
    need = any(factors(r)["embeddings"] == "cross_fitted" for r in runs)
    return [cfg["fusion"]["video_model"]] if need else []


def single_task(cfg: Mapping[str, Any]) -> list[str]:
    """Early-fusion models also retrained without the sentiment loss (``fusion.single_task``;
    the report's spec owns the rule, which also checks the names)."""
    from .report.spec import single_task_models

    return single_task_models(dict(cfg))


def fusion_runs(cfg: Mapping[str, Any]) -> list[str]:
    """Every trained early-fusion run: the models and their ``@single_task`` variants."""
    return [*configured(cfg, "early_fusion"),
            *(registry.variant(m, SINGLE_TASK) for m in single_task(cfg))]


def seeds(cfg: Mapping[str, Any], name: str) -> list[int]:
    return [BASELINE_SEED] if registry.get(name).kind == "baseline" else list(cfg["train"]["seeds"])


def scored(cfg: Mapping[str, Any]) -> list[str]:
    """Every name with a ``metrics/{name}.json`` scored by the evaluate rule."""
    from .report.spec import all_models

    return all_models(dict(cfg))


def ablated(cfg: Mapping[str, Any]) -> list[str]:
    """Names scored on the modality ablations (the trained early-fusion models)."""
    from .report.spec import ablation_models

    return ablation_models(dict(cfg))


def model_config(cfg: Mapping[str, Any], model: str) -> dict[str, Any]:
    """A model's config block over its registry defaults."""
    entry = registry.get(model)
    section = cfg["train"] if entry.config_section == "train.models" else cfg["fusion"]
    return {**entry.defaults, **(section["models"].get(entry.name) or {})}


# -- each job's parameters ----------------------------------------------------------------------

def synthetic(cfg: Mapping[str, Any]) -> dict[str, Any]:
    s = cfg["synthetic"]
    sizes = s["presets"][s["preset"]]
    dense = cfg["frames"]["sets"][cfg["audio"]["aligned_frame_set"]]
    out = {
        "n_train": sizes["train"],
        "n_dev": sizes["dev"],
        "n_test": sizes["test"],
        "max_duration_s": sizes.get("max_duration_s"),
        "seed": s["seed"],
        "width": s["width"],
        "height": s["height"],
        "fps": s["fps"],
        "audio_rate": s["audio_rate"],
        "audio_channels": s["audio_channels"],
        "inject_defects": s["inject_defects"],
        "cue": s["cue"],
        "face_strength": s["face_strength"],
        "voice_strength": s["voice_strength"],
        "label_noise": s["label_noise"],
        "nuisance": s["nuisance"],
        "mouth_motion": s["mouth_motion"],
        # The event length is tied to the frame count the aligned audio windows centre on (read
        # here, not assumed), unless event_length_s draws it independently.
        "align_k": dense.get("uniform_k") if dense["policy"] == "uniform_k" else None,
        "event_length_s": s.get("event_length_s"),
    }
    # A preset's own duration law and label counts (meld_scale); demo and tiny have neither, so
    # their job parameters (and corpus) are what they were before presets could set them.
    for key in ("duration", "label_counts"):
        if key in sizes:
            out[key] = sizes[key]
    return out


def download(cfg: Mapping[str, Any]) -> dict[str, Any]:
    m = cfg["meld"]
    return {"url": m["url"], "archive_path": m["archive"], "root": m["root"],
            "checksum": m["checksum"], "retries": m["retries"], "download": m["download"]}


def manifest(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return dict(cfg["manifest"])


def frames(cfg: Mapping[str, Any], frame_set: str) -> dict[str, Any]:
    f = cfg["frames"]
    return {"size": f["size"], "face_crop": f["face_crop"], "shard_clips": f["shard_clips"],
            "activity_grid": f["activity_grid"], **f["sets"][frame_set]}


def audio(cfg: Mapping[str, Any]) -> dict[str, Any]:
    a = cfg["audio"]
    return {
        "sample_rate": a["sample_rate"],
        "n_mels": a["n_mels"],
        "window_s": a["window_s"],
        "hop_s": a["hop_s"],
        "egemaps": a["egemaps"],
        "ssl": "on" if a["ssl"]["enabled"] else "off",
        "ssl_model": a["ssl"]["model"],
        "ssl_on_missing": a["ssl"]["on_missing"],
    }


def speech(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return dict(cfg["speech"])


def train(cfg: Mapping[str, Any], model: str) -> dict[str, Any]:
    """Everything that changes one model's training (its checkpoint's config hash)."""
    m = model_config(cfg, model)
    out: dict[str, Any] = {
        "engine": {**cfg["train"]["engine"], **m.get("engine", {})},
        "model_params": m.get("params", {}),
        "max_len": m.get("max_len"),
    }
    if registry.get(model).kind == "audio":
        out["features"] = m["features"]
    else:  # named, never inferred from the order of the job's input map
        out["frame_set"] = m["frame_set"]
    return out


def fusion(cfg: Mapping[str, Any], run: str) -> dict[str, Any]:
    """Everything that changes one early-fusion run's training."""
    base, _, variant = run.partition("@")
    spec = model_config(cfg, base)
    if factors(base)["budget"] == "stream":  # the video model's own budget (the diagnosis)
        budget = train(cfg, cfg["fusion"]["video_model"])["engine"]
        engine = {**budget, **spec.get("engine", {})}
    else:
        engine = {**cfg["train"]["engine"], **cfg["fusion"]["engine"], **spec.get("engine", {})}
    if variant == SINGLE_TASK:
        engine["w_sentiment"] = 0.0
    return {"engine": engine, "model_params": spec.get("params", {}),
            "window_pool": cfg["fusion"]["window_pool"]}


def crossfit(cfg: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The fold models train exactly as the full model, on K-1 of K folds."""
    out = train(cfg, model)
    return {"engine": out["engine"], "model_params": out["model_params"],
            "max_len": out["max_len"], "frame_set": out["frame_set"],
            "folds": cfg["fusion"]["cross_fit_folds"]}


def late(cfg: Mapping[str, Any], model: str) -> dict[str, Any]:
    return {"method": registry.get(model).method,
            "folds": cfg["fusion"]["cross_fit_folds"]}


def evaluation(cfg: Mapping[str, Any]) -> dict[str, Any]:
    # evaluation.compare and .primary feed the compare stage only (report.spec.compare_params);
    # the protocol is a file, an input of the compare and report jobs (protocol_file).
    ev = cfg["evaluation"]
    return {k: ev[k] for k in ev if k not in ("compare", "primary", "protocol")}


def _rule_input(path: Path) -> str:
    """A repository file as a rule input: relative to the working directory when it lies
    inside it (so dvc.yaml names ``workflow/protocol/...``), else absolute (a run in another
    directory)."""
    if path.is_absolute():
        try:
            return str(path.resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(path)
    return str(path)


def protocol_file(cfg: Mapping[str, Any]) -> str:
    """The diagnosis protocol file (``evaluation.protocol``; null: the repository's), as a
    rule input (``_rule_input``)."""
    from .evaluation.protocol import default_path

    given = (cfg.get("evaluation") or {}).get("protocol")
    return _rule_input(Path(given) if given else default_path())


def planted_file() -> str | None:
    """The planted check's record (``workflow/protocol/planted.json``, written by
    ``make planted``) as a rule input, or None where there is none."""
    from .evaluation.sensitivity import default_path

    path = default_path()
    return _rule_input(path) if path.is_file() else None


def dataset_description(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What the report says, at the top, about where its numbers come from."""
    if cfg["dataset"] == "synthetic":
        s = cfg["synthetic"]
        return {"dataset": "synthetic", "preset": s["preset"], "seed": s["seed"]}
    return {"dataset": "meld", "root": cfg["meld"]["root"]}


def report(cfg: Mapping[str, Any]) -> dict[str, Any]:
    from .report.spec import report_params

    # The report records the hash of the whole config (provenance).
    return {**report_params(cfg), "config_hash": config_hash(cfg)}


def compare(cfg: Mapping[str, Any]) -> dict[str, Any]:
    from .report.spec import compare_params

    return compare_params(cfg)


_JOB_PARAMS: dict[str, Callable[[Mapping[str, Any], Mapping[str, str]], dict[str, Any]]] = {
    "synthetic_corpus": lambda c, w: synthetic(c),
    "download_meld": lambda c, w: download(c),
    "manifest": lambda c, w: manifest(c),
    "frames": lambda c, w: frames(c, w["fset"]),
    "audio": lambda c, w: audio(c),
    "speech_share": lambda c, w: speech(c),
    "qc": lambda c, w: {},
    "train_visual": lambda c, w: train(c, w["model"]),
    "train_audio": lambda c, w: train(c, w["model"]),
    "baseline": lambda c, w: {},
    "crossfit": lambda c, w: crossfit(c, w["model"]),
    "fusion": lambda c, w: fusion(c, w["model"]),
    "late_fusion": lambda c, w: late(c, w["model"]),
    "evaluate": lambda c, w: evaluation(c),
    "evaluate_ablation": lambda c, w: evaluation(c),
    "compare": lambda c, w: compare(c),
    "report": lambda c, w: report(c),
}


def job_params(rule: str, cfg: Mapping[str, Any], wildcards: Mapping[str, str]) -> dict[str, Any]:
    """The parameters one job of ``rule`` passes to its stage (``--params``)."""
    return _JOB_PARAMS[rule](cfg, dict(wildcards.items()))


def job_param_rules() -> list[str]:
    return list(_JOB_PARAMS)


# -- which jobs run ----------------------------------------------------------------------------

def job_wildcards(cfg: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
    """Every job of the workflow: rule -> the wildcards of each of its jobs.

    The default target asks for every output of every job (``workflow_glue.all_outputs``):
    Snakemake rebuilds a deleted file only when it is a target (snakemake#1978), so this is
    what makes deleting any intermediate file rerun exactly the job that makes it and what
    follows. The generated dvc.yaml has one stage per job of this list (a test checks)."""
    seeds = [str(s) for s in cfg["train"]["seeds"]]
    runs = {"train_visual": configured(cfg, "visual"), "train_audio": configured(cfg, "audio"),
            "fusion": fusion_runs(cfg), "late_fusion": configured(cfg, "late_fusion")}
    corpus = "synthetic_corpus" if cfg["dataset"] == "synthetic" else "download_meld"
    from .report.spec import comparison_pairs

    return {
        corpus: [{}],
        "manifest": [{}],
        "frames": [{"fset": f, "split": s} for f in frame_sets(cfg) for s in SPLITS],
        "audio": [{"split": s} for s in SPLITS],
        "speech_share": [{"split": s} for s in SPLITS],
        **{rule: [{"model": m, "seed": s} for m in models for s in seeds]
           for rule, models in runs.items()},
        "crossfit": [{"model": m, "seed": s} for m in cross_fitted(cfg) for s in seeds],
        "baseline": [{"model": m} for m in configured(cfg, "baseline")],
        "evaluate": [{"model": n} for n in scored(cfg)],
        "evaluate_ablation": [{"name": registry.variant(m, a)}
                              for m in ablated(cfg) for a in ABLATIONS],
        "qc": [{}],
        "compare": [{}] if comparison_pairs(cfg) else [],
        "report": [{}],
    }


# -- each job's files (declared inputs, and the path maps its CLI call receives) -----------------

def flat(files: Any) -> list[str]:
    """Every path in a nested dict/list of paths, in order (a rule's declared inputs)."""
    if isinstance(files, str):
        return [files]
    values = files.values() if isinstance(files, Mapping) else files
    return [p for v in values for p in flat(v)]


def frame_sets(cfg: Mapping[str, Any]) -> list[str]:
    return list(cfg["frames"]["sets"])


def train_inputs(cfg: Mapping[str, Any], model: str) -> dict[str, Any]:
    """What a stream model's job reads: manifests, and its frame sets (visual: its own, named
    by the job's ``frame_set`` param, and every other set, whose embeddings fusion may read) or
    the audio stage's outputs."""
    lay = layout(cfg)
    files: dict[str, Any] = {"manifests": lay.manifests()}
    if registry.get(model).kind == "visual":
        own = model_config(cfg, model)["frame_set"]
        order = [own, *(s for s in frame_sets(cfg) if s != own)]
        files["frames"] = {f: {s: lay.frames(f, s) for s in SPLITS} for f in order}
    else:
        files["audio"] = {s: lay.audio(s) for s in SPLITS}
    return files


def train_outputs(cfg: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """A stream job's outputs as wildcard patterns (``{model}``, ``{seed}``)."""
    lay, m, s, g = layout(cfg), "{model}", "{seed}", "models"
    out: dict[str, Any] = {f"predictions_{sp}": lay.predictions(m, s, sp, g)
                           for sp in PREDICTION_SPLITS}
    out["live_summary"] = lay.training_summary(m, s, g)
    out |= {f"live_{k}": v for k, v in lay.training_curves(m, s, g).items()}
    if kind == "visual":
        out |= {f"embeddings_{sp}@{f}": lay.embeddings(m, s, sp, f, g)
                for f in frame_sets(cfg) for sp in SPLITS}
    else:
        out |= {f"embeddings_{sp}": lay.embeddings(m, s, sp, None, g) for sp in SPLITS}
    out["summary"] = lay.summary(m, s, g)  # written last
    return out


def baseline_inputs(cfg: Mapping[str, Any]) -> dict[str, str]:
    return layout(cfg).manifests()


def fusion_inputs(cfg: Mapping[str, Any], run: str, seed: int | str) -> dict[str, Any]:
    """Files (per split) an early-fusion run reads: labels, the video model's embeddings on
    the study frame set (utterance) and on the aligned set (per frame), and the audio stage's
    outputs (utterance vectors and frame-aligned windows); with ``activity=on`` also the
    dense frames outputs (frame activity). A cross-fitted run reads the
    out-of-fold train embeddings (``crossfit``); dev and test are the full model's."""
    lay, video = layout(cfg), cfg["fusion"]["video_model"]
    study, dense = model_config(cfg, video)["frame_set"], cfg["audio"]["aligned_frame_set"]
    oof = factors(run.partition("@")[0])["embeddings"] == "cross_fitted"

    def emb(split: str, fset: str) -> str:
        if oof and split == "train":
            return lay.crossfit_embeddings(video, seed, fset)
        return lay.embeddings(video, seed, split, fset)

    out = {
        "manifests": lay.manifests(),
        "video_utt": {s: emb(s, study) for s in SPLITS},
        "video_dense": {s: emb(s, dense) for s in SPLITS},
        "audio_dirs": {s: lay.audio(s) for s in SPLITS},
        "aligned_dirs": {s: lay.audio(s) for s in SPLITS},
    }
    if factors(run.partition("@")[0])["activity"] == "on":  # the dense frames' activity
        out["frames_dense"] = {s: lay.frames(dense, s) for s in SPLITS}
    return out


def crossfit_inputs(cfg: Mapping[str, Any], model: str, seed: int | str) -> dict[str, Any]:
    """What a cross-fitting job reads: train/dev labels, the model's own frame set (the job's
    ``frame_set`` param) on train and dev (fit, select), every frame set on train (export) and
    the full model's train embeddings of the same seed (the coordinates the fold models'
    exports are mapped into)."""
    lay, own = layout(cfg), model_config(cfg, model)["frame_set"]
    order = [own, *(f for f in frame_sets(cfg) if f != own)]
    return {"manifests": {s: lay.manifest(s) for s in ("train", "dev")},
            "dev_frames": lay.frames(own, "dev"),
            "train_frames": {f: lay.frames(f, "train") for f in order},
            "full_embeddings": {f: lay.embeddings(model, seed, "train", f) for f in order}}


def crossfit_outputs(cfg: Mapping[str, Any]) -> dict[str, str]:
    lay, m, s = layout(cfg), "{model}", "{seed}"
    out = {f"embeddings_train@{f}": lay.crossfit_embeddings(m, s, f) for f in frame_sets(cfg)}
    out["summary"] = lay.crossfit_summary(m, s)  # written last
    return out


def fusion_outputs(cfg: Mapping[str, Any]) -> dict[str, str]:
    lay, m, s, g = layout(cfg), "{model}", "{seed}", "fusion"
    out = {f"predictions_{sp}": lay.predictions(m, s, sp, g) for sp in PREDICTION_SPLITS}
    out |= {f"predictions_test_{a}": lay.predictions(m, s, f"test_{a}", g) for a in ABLATIONS}
    out["live_summary"] = lay.training_summary(m, s, g)
    out |= {f"live_{k}": v for k, v in lay.training_curves(m, s, g).items()}
    out["summary"] = lay.summary(m, s, g)
    return out


def late_inputs(cfg: Mapping[str, Any], model: str, seed: int | str) -> dict[str, Any]:
    spec, lay = model_config(cfg, model), layout(cfg)
    return {stream: {s: lay.predictions(spec[stream], seed, s) for s in PREDICTION_SPLITS}
            for stream in ("visual", "audio")}


def late_outputs(cfg: Mapping[str, Any]) -> dict[str, str]:
    lay, m, s, g = layout(cfg), "{model}", "{seed}", "fusion"
    out = {f"predictions_{sp}": lay.predictions(m, s, sp, g) for sp in PREDICTION_SPLITS}
    out["late"] = lay.late_json(m, s, g)
    return out


def _run_of(name: str) -> tuple[str, str]:
    """``x@single_task`` is a run of its own; ``x@no_audio`` scores run ``x`` on an ablation."""
    base, _, variant = name.partition("@")
    return (name, "") if variant in ("", SINGLE_TASK) else (base, variant)


def evaluate_inputs(cfg: Mapping[str, Any], name: str) -> dict[str, dict[str, str]]:
    """``{seed: {split: predictions}}`` a metrics job scores (ablations: test only)."""
    run, ablation = _run_of(name)
    lay = layout(cfg)
    splits = {"test": f"test_{ablation}"} if ablation else {s: s for s in PREDICTION_SPLITS}
    return {str(seed): {split: lay.predictions(run, seed, file) for split, file in splits.items()}
            for seed in seeds(cfg, name)}


def compare_inputs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``{"predictions": {name: {seed: {split: path}}}, "metrics": {model: path}}``: every
    referenced model's predictions per seed, and the metrics of every model a ``best:*`` pair
    may choose from."""
    from .evaluation.refs import referenced_models
    from .report.spec import comparison_pairs, diagnosis_contrasts, model_groups

    lay, groups = layout(cfg), model_groups(cfg)
    predictions: dict[str, Any] = {}
    referenced = referenced_models(comparison_pairs(cfg), groups)
    for spec in diagnosis_contrasts(cfg):  # the design's runs: their test predictions
        for m in spec["weights"]:
            referenced.setdefault(m, set()).add("test")
    for name, splits in referenced.items():
        predictions[name] = {
            str(seed): {s: lay.predictions(name, seed, s) for s in sorted(splits)}
            for seed in seeds(cfg, name)
        }
    members = [m for g in ("visual", "audio", "fusion") for m in groups[g]]
    return {"predictions": predictions, "metrics": {m: lay.metrics(m) for m in members},
            "protocol": protocol_file(cfg)}


def report_inputs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Every file the report reads (avemo.report.build.build_report's ``inputs``)."""
    from .report.spec import comparison_pairs

    lay = layout(cfg)
    metrics = [*scored(cfg), *(registry.variant(m, a) for m in ablated(cfg) for a in ABLATIONS)]
    trained = [*configured(cfg, "visual", "audio"), *fusion_runs(cfg)]
    return {
        "manifests": lay.manifests(),
        "manifest_qc": lay.manifest_qc(),
        "qc": lay.qc_clips(),
        "metrics": {n: lay.metrics(n) for n in metrics},
        "compare": lay.compare() if comparison_pairs(cfg) else None,
        "summaries": {m: {str(s): lay.summary(m, s) for s in seeds(cfg, m)} for m in trained},
        "training_logs": {m: {str(s): lay.training_curves(m, s) for s in seeds(cfg, m)}
                          for m in trained},
        "benchmarks": lay.benchmarks_dir(),
        # The per-example table and the error browser: every scored run's dev/test
        # predictions, the frame stores (thumbnails) and the clips (audio).
        "predictions": {n: {str(s): {sp: lay.predictions(n, s, sp) for sp in PREDICTION_SPLITS}
                            for s in seeds(cfg, n)} for n in scored(cfg)},
        "frames": {f: {sp: lay.frames(f, sp) for sp in PREDICTION_SPLITS}
                   for f in frame_sets(cfg)},
        "corpus": corpus_inputs(cfg),
        "speech": {s: lay.speech(s) for s in SPLITS},
        "protocol": protocol_file(cfg),
        # What the protocol detected on planted worlds (the diagnosis section says so).
        "planted": planted_file(),
        # What stages skipped or left at a default (avemo.report.flags).
        "flags": [lay.late_json(m, s) for m in configured(cfg, "late_fusion")
                  for s in seeds(cfg, m)],
    }


def report_files(cfg: Mapping[str, Any]) -> list[str]:
    """The report job's declared inputs: ``report_inputs`` but the benchmarks folder, which is
    provenance (job timings written by Snakemake), not an artefact."""
    files = report_inputs(cfg)
    return flat({k: v for k, v in files.items() if k != "benchmarks" and v is not None})


def qc_inputs(cfg: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    lay, study = layout(cfg), STUDY_SET
    return {"manifests": lay.manifests(),
            "frames": {s: lay.frames(study, s) for s in SPLITS},
            "audio": {s: lay.audio(s) for s in SPLITS}}


def corpus_outputs(cfg: Mapping[str, Any]) -> list[str]:
    """The label CSVs of the real corpus (what the download rule makes)."""
    from .labels import LABEL_FILES

    return [str(Path(corpus_root(cfg)) / LABEL_FILES[s]) for s in SPLITS]


def corpus_inputs(cfg: Mapping[str, Any]) -> list[str]:
    """What the manifest job reads: the generated corpus folder, or MELD's label CSVs (the
    clips beside them are the user's data, outside the workflow)."""
    if cfg["dataset"] == "synthetic":
        return [corpus_root(cfg)]
    return corpus_outputs(cfg)
