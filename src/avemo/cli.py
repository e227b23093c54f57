"""`avemo <stage> ...`: one entry point, one subcommand per stage, no logic.

Each subcommand takes paths plus `--params JSON` (the stage's keyword arguments, built by
avemo.params from the validated config) and calls one stage function. Errors a user can act on
(AvemoError) print as one clear message without a traceback and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import AvemoError, ConfigError
from .fingerprint import with_inputs


def _params(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--params is not valid JSON ({exc}): {text[:200]}") from exc
    if not isinstance(value, dict):
        raise ConfigError("--params must be a JSON object of keyword arguments")
    return value


def _synthetic(a: argparse.Namespace) -> None:
    from .synthetic import generate_corpus

    generate_corpus(a.root, workers=a.workers, **_params(a.params))


def _download(a: argparse.Namespace) -> None:
    from .download import fetch_meld

    fetch_meld(**_params(a.params))


def _manifest(a: argparse.Namespace) -> None:
    from .manifest import build_manifests

    build_manifests(a.root, a.out_dir, workers=a.workers, **_params(a.params))


def _frames(a: argparse.Namespace) -> None:
    from .video.extract import extract_frames

    extract_frames(a.manifest, a.out, workers=a.workers, **_params(a.params))


def _audio(a: argparse.Namespace) -> None:
    from .audio.extract import extract_audio

    extract_audio(a.manifest, a.frames, a.out, workers=a.workers, **_params(a.params))


def _speech(a: argparse.Namespace) -> None:
    from .audio.speech_share import measure_speech

    measure_speech(a.manifest, a.frames, a.out, workers=a.workers, **_params(a.params))


def _json(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} is not valid JSON ({exc}): {text[:200]}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a JSON object")
    return value


def _report(a: argparse.Namespace) -> None:
    from .report.build import build_report

    build_report(_json(a.inputs, "--inputs"), a.out_dir, **_params(a.params))


def _qc(a: argparse.Namespace) -> None:
    from .qc import build_qc

    files = _json(a.inputs, "--inputs")
    build_qc(files["manifests"], files["frames"], files["audio"], a.out)


def _train(a: argparse.Namespace) -> None:
    from .training.inputs import SplitFiles
    from .training.stage import train_stream

    files = _json(a.inputs, "--inputs")
    params = _params(a.params)
    # The model's own frame set is named by its params: the --inputs JSON has sorted keys.
    own = params.pop("frame_set", None)
    frames = files.get("frames") or {}
    if own is not None and own not in frames:
        raise ConfigError(f"{a.model}: frame set {own!r} is not among the job's inputs "
                          f"{sorted(frames)}")
    splits = {s: SplitFiles(s, Path(m), frames=Path(frames[own][s]) if own else None,
                            audio=Path(files["audio"][s]) if "audio" in files else None)
              for s, m in files["manifests"].items()}
    extra = {f: {s: Path(d) for s, d in dirs.items()} for f, dirs in frames.items() if f != own}
    # The rule's threads: the main process plus DataLoader workers.
    train_stream(a.model, a.seed, splits, a.out, config_hash=with_inputs(a.config_hash, files),
                 frame_set=own,
                 extra_frame_sets=extra, num_workers=max(0, a.workers - 1), **params)


def _crossfit(a: argparse.Namespace) -> None:
    from .training.crossfit import cross_fit
    from .training.inputs import SplitFiles

    files = _json(a.inputs, "--inputs")
    params = _params(a.params)
    sets = {f: Path(d) for f, d in files["train_frames"].items()}
    own = params.pop("frame_set")  # named by the params: the --inputs JSON has sorted keys
    splits = {"train": SplitFiles("train", Path(files["manifests"]["train"]), frames=sets[own]),
              "dev": SplitFiles("dev", Path(files["manifests"]["dev"]),
                                frames=Path(files["dev_frames"]))}
    full = {f: Path(p) for f, p in files["full_embeddings"].items()}
    cross_fit(a.model, a.seed, splits, sets, a.out, full_embeddings=full,
              config_hash=with_inputs(a.config_hash, files),
              num_workers=max(0, a.workers - 1), **params)


def _fusion(a: argparse.Namespace) -> None:
    from .fusion.stage import train_fusion

    inputs = _params(a.inputs)
    train_fusion(a.model.removesuffix("@single_task"), a.seed, inputs["manifests"],
                 inputs["video_utt"], inputs["audio_dirs"], a.out,
                 video_dense=inputs["video_dense"], aligned_dirs=inputs["aligned_dirs"],
                 frames_dense=inputs.get("frames_dense"),
                 config_hash=with_inputs(a.config_hash, inputs), num_workers=max(0, a.workers - 1),
                 **_params(a.params))


def _late(a: argparse.Namespace) -> None:
    from .fusion.late import late_fusion

    inputs = _json(a.inputs, "--inputs")
    late_fusion(inputs["visual"], inputs["audio"], a.out, seed=a.seed, **_params(a.params))


def _baseline(a: argparse.Namespace) -> None:
    from .evaluation.baselines import write_baseline_predictions
    from .registry import get

    if len(a.targets) != len(a.out):
        raise ConfigError("avemo baseline: give one --out file per --targets manifest")
    for target, out in zip(a.targets, a.out, strict=True):
        write_baseline_predictions(get(a.model).load(), a.model, a.train, target, out,
                                   seed=a.seed)


def _evaluate(a: argparse.Namespace) -> None:
    from .evaluation.evaluate import evaluate_model

    # {seed: {split: predictions}}; an ablation's test_no_audio file is scored as test.
    paths = {int(seed): dict(files)
             for seed, files in _json(a.predictions, "--predictions").items()}
    subsets = None
    if a.subsets_audio:
        from .evaluation.compare import audio_subsets

        subsets = audio_subsets(a.subsets_audio)  # clips with / without usable audio
    evaluate_model(a.model, paths, a.out, subsets=subsets, **_params(a.params))
    if a.confusion_csv:
        from .evaluation.metrics import write_confusion_pairs

        write_confusion_pairs(paths[min(paths)]["test"], a.confusion_csv)


def _compare(a: argparse.Namespace) -> None:
    from .evaluation.compare import compare_pairs

    p = _params(a.params)
    files = _json(a.inputs, "--inputs")
    predictions = {m: {int(seed): dict(splits) for seed, splits in per_seed.items()}
                   for m, per_seed in files["predictions"].items()}
    compare_pairs(p.pop("pairs"), predictions, a.out, metrics=files["metrics"],
                  protocol=files.get("protocol"), **p)


def _check_config(a: argparse.Namespace) -> None:
    from .config import load_config

    # Overlays layered as `snakemake --configfile config.yaml overlay.yaml` layers them (a YAML
    # syntax error in an overlay is reported by Snakemake itself without the file's name).
    load_config(a.config, *a.overlays)
    print(f"{' + '.join([a.config, *a.overlays])}: valid")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avemo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], None], help_: str):
        p = sub.add_parser(name, help=help_)
        p.set_defaults(fn=fn)
        p.add_argument("--params", default=None, help="stage keyword arguments as a JSON object")
        p.add_argument("--workers", type=int, default=1, help="parallel worker processes")
        return p

    p = add("synthetic", _synthetic, "generate the MELD-format demo corpus")
    p.add_argument("--root", required=True)
    add("download", _download, "download and extract the real MELD corpus")
    p = add("manifest", _manifest, "join label CSVs with clips on disk; write manifest + QC")
    p.add_argument("--root", required=True)
    p.add_argument("--out-dir", required=True)
    p = add("frames", _frames, "extract frames of one split into sharded arrays")
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    p = add("audio", _audio, "extract audio features of one split")
    p.add_argument("--manifest", required=True)
    p.add_argument("--frames", required=True)
    p.add_argument("--out", required=True)
    p = add("speech", _speech, "measure per clip the share of speech and its co-variation "
            "with visual activity (one split)")
    p.add_argument("--manifest", required=True)
    p.add_argument("--frames", required=True)
    p.add_argument("--out", required=True)
    p = add("report", _report, "build the report from pipeline outputs")
    p.add_argument("--inputs", required=True, help="JSON: every file the report reads")
    p.add_argument("--out-dir", required=True)
    p = add("qc", _qc, "join per-clip status of the data stages into one QC table")
    p.add_argument("--inputs", required=True,
                   help='JSON: {"manifests"|"frames"|"audio": split -> path}')
    p.add_argument("--out", required=True)
    p = add("train", _train, "train one per-stream model for one seed")
    p.add_argument("--model", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config-hash", required=True)
    p.add_argument("--inputs", required=True,
                   help='JSON: {"manifests": split -> path, "frames": set -> split -> dir '
                        '(every set; --params names the own one) | "audio": split -> dir}')
    p = add("crossfit", _crossfit, "out-of-fold train embeddings of a video model (one seed)")
    p.add_argument("--model", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config-hash", required=True)
    p.add_argument("--inputs", required=True,
                   help='JSON: {"manifests": train|dev -> path, "dev_frames": dir, '
                        '"train_frames": set -> dir (--params names the own one)}')
    p = add("fusion", _fusion, "train one early-fusion model for one seed")
    p.add_argument("--model", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config-hash", required=True)
    p.add_argument("--inputs", required=True, help="JSON: input kind -> split -> path")
    p = add("late", _late, "late fusion of a visual and an audio model's predictions")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--inputs", required=True, help='JSON: {"visual"|"audio": split -> path}')
    p = add("baseline", _baseline, "a registered baseline's predictions (no features)")
    p.add_argument("--model", required=True, help="a registered baseline (majority, prior)")
    p.add_argument("--train", required=True, help="the train manifest (class prior)")
    p.add_argument("--targets", nargs="+", required=True, help="manifests to predict")
    p.add_argument("--out", nargs="+", required=True, help="one predictions file per target")
    p.add_argument("--seed", type=int, default=0)
    p = add("evaluate", _evaluate, "metrics (with bootstrap CIs) of one model over its seeds")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--confusion-csv", default=None,
                   help="also write actual/predicted test emotions of the first seed (dvc plots)")
    p.add_argument("--subsets-audio", default=None,
                   help="audio/test folder: also score clips with / without usable audio")
    p.add_argument("--predictions", required=True, help="JSON: seed -> split -> predictions")
    p = add("compare", _compare, "paired bootstrap tests between configured pairs of models")
    p.add_argument("--out", required=True)
    p.add_argument("--inputs", required=True,
                   help='JSON: {"predictions": model -> seed -> split -> path, '
                        '"metrics": model -> path}')
    p = sub.add_parser("check-config", help="validate a config file against the schema")
    p.add_argument("config", nargs="?", default="config.yaml")
    p.add_argument("overlays", nargs="*", help="overlay files (--configfile), in order")
    p.set_defaults(fn=_check_config)
    return parser


def _output(a: argparse.Namespace) -> str:
    """Where the subcommand writes (its disk is the one a full-disk message names)."""
    for name in ("out", "out_dir", "root"):
        value = getattr(a, name, None)
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            return str(value)
    return "."


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        try:
            args.fn(args)
        except AvemoError:
            raise
        except Exception as exc:  # a full disk is not the code's fault: say so in one line
            from .faults import disk_full_error, is_disk_full

            if not is_disk_full(exc):
                raise
            raise disk_full_error(exc, _output(args)) from exc
    except AvemoError as exc:
        print(f"avemo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
