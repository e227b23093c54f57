"""Manifest stage: MELD labels x clip files on disk -> ``manifest/{split}.parquet`` + ``qc.csv``.

Format: docs/formats.md section 2. Reader for later stages: ``read_manifest`` (+ ``usable``).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from avemo.atomic import atomic_path
from avemo.errors import DataStageError, LabelFileError
from avemo.heap import trim_heap
from avemo.labels import LABEL_FILES, SPLIT_DIRS, SPLITS
from avemo.media import empty_probe, probe_clip
from avemo.meld import format_time, read_labels
from avemo.progress import progress

QC_COLUMNS: list[str] = ["split", "clip_name", "stage", "reason", "detail"]
# Column order and dtype of every manifest file (docs/formats.md).
MANIFEST_DTYPES: dict[str, str] = {
    "split": "str",
    "clip_name": "str",
    "dialogue_id": "int64",
    "utterance_id": "int64",
    "season": "int64",
    "episode": "int64",
    "speaker": "str",
    "utterance": "str",
    "emotion": "str",
    "sentiment": "str",
    "start_s": "float64",
    "end_s": "float64",
    "clip_path": "str",
    "exists": "bool",
    "size_bytes": "int64",
    "duration_s": "float64",
    "has_video": "bool",
    "has_audio": "bool",
    "fps": "float64",
    "width": "int64",
    "height": "int64",
    "audio_rate": "int64",
    "audio_channels": "int64",
    "ok": "bool",
    "qc_reason": "str",
}
MANIFEST_COLUMNS: list[str] = list(MANIFEST_DTYPES)
_PROBE_KEYS = (
    "exists",
    "size_bytes",
    "duration_s",
    "has_video",
    "has_audio",
    "fps",
    "width",
    "height",
    "audio_rate",
    "audio_channels",
)

T = TypeVar("T")
R = TypeVar("R")

# Real MELD's test folder names some clips ``final_videos_testdia{D}_utt{U}.mp4``.
_CLIP_RE = re.compile(r"^(?:final_videos_test)?(dia\d+_utt\d+)$")
_FIX_INPUT = "Set `meld.root` in config.yaml to the MELD.Raw folder, or run the download stage."


def _index_clips(split_dir: Path) -> tuple[dict[str, Path], list[tuple[str, str, str]]]:
    """Map clip_name -> file for every .mp4 in ``split_dir``; also return odd files as QC rows.

    A plain ``dia{D}_utt{U}.mp4`` wins over a ``final_videos_test`` copy of the same clip.
    Hidden files (macOS ``._*`` resource forks in some MELD archives) are skipped.
    """
    found: dict[str, Path] = {}
    odd: list[tuple[str, str, str]] = []  # (clip_name, reason, detail)
    for path in sorted(split_dir.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() != ".mp4" or not path.is_file():
            continue
        m = _CLIP_RE.match(path.stem)
        if m is None:
            odd.append((path.stem, "orphan_clip", f"{path.name}: name is not dia{{D}}_utt{{U}}"))
            continue
        name = m[1]
        if name in found:
            plain_first = found[name].stem == name
            keep, drop = (found[name], path) if plain_first else (path, found[name])
            found[name] = keep
            odd.append((name, "duplicate_file", f"{drop.name} ignored, using {keep.name}"))
        else:
            found[name] = path
    return found, odd


def _judge(probe: dict[str, Any], min_s: float, max_s: float) -> list[str]:
    """QC reasons for one clip, the fatal one (if any) first; ``no_audio`` is not fatal."""
    if not probe["exists"]:
        return ["missing"]
    if probe["size_bytes"] == 0:
        return ["empty_file"]
    if not probe["has_video"]:
        # A file that opens but whose video stream does not decode is "unreadable".
        if "no video stream" in probe["error"] and (probe["has_audio"] or probe["audio_rate"]):
            reasons = ["no_video"]
        else:
            reasons = ["unreadable"]
    else:
        duration = probe["duration_s"]
        if not math.isfinite(duration):
            reasons = ["unknown_duration"]
        elif duration > max_s:
            reasons = ["too_long"]
        elif duration < min_s:
            reasons = ["zero_duration"]
        else:
            reasons = []
    if probe["has_video"] and not probe["has_audio"]:
        reasons.append("no_audio")
    return reasons


def _label_problems(rec: dict[str, Any], label_file: str) -> list[tuple[str, str]]:
    """(reason, detail) for a label row that must not be trained on; each is fatal."""
    start, end = rec["start_s"], rec["end_s"]
    if end >= start:
        return []
    detail = (
        f"{label_file}, Sr No. {rec['sr_no']}: EndTime {format_time(end)} is before "
        f"StartTime {format_time(start)}"
    )
    return [("end_before_start", detail)]


def _build_split(
    split: str,
    corpus_root: Path,
    min_s: float,
    max_s: float,
    workers: int,
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    label_path = corpus_root / LABEL_FILES[split]
    split_dir = corpus_root / SPLIT_DIRS[split]
    if not label_path.is_file():
        raise DataStageError(
            f"label file for split {split!r} not found: {label_path}. {_FIX_INPUT}"
        )
    if not split_dir.is_dir():
        raise DataStageError(
            f"clip folder for split {split!r} not found: {split_dir}. {_FIX_INPUT}"
        )
    try:
        labels = read_labels(label_path)
    except LabelFileError as exc:
        raise DataStageError(str(exc)) from exc

    files, odd = _index_clips(split_dir)
    paths = [files.get(name) for name in labels["clip_name"]]

    def probe(path: Path | None) -> dict[str, Any]:
        return probe_clip(path) if path is not None else {**empty_probe(), "error": "no file"}

    bar = dict(total=len(paths), desc=f"manifest {split}", unit="clip", leave=False)
    # Probes are read as they finish, a few submitted ahead (map_ahead), and every row goes
    # straight into columns: nothing per clip waits in memory beside the manifest itself.
    # Threads suffice: probing is file I/O plus libav calls, and needs no pickling.
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    probes = (map_ahead(pool, probe, paths, ahead=4 * workers) if pool is not None
              else map(probe, paths))
    records = (dict(zip(labels.columns, values, strict=True))
               for values in labels.itertuples(index=False, name=None))
    own = {*_PROBE_KEYS, "split", "clip_path", "ok", "qc_reason"}  # set below, not from labels
    label_cols = [c for c in MANIFEST_COLUMNS if c in labels.columns and c not in own]
    cols: dict[str, list[Any]] = {c: [] for c in MANIFEST_COLUMNS}

    qc: list[dict[str, str]] = []
    try:
        triples = zip(records, paths, progress(probes, **bar), strict=True)
        for rec, path, info in triples:
            label_qc = _label_problems(rec, label_path.name)
            reasons = _judge(info, min_s, max_s)
            # Label problems first: they hold whatever the clip is like.
            fatal = [r for r, _ in label_qc] + [r for r in reasons if r != "no_audio"]
            for c in label_cols:
                cols[c].append(rec[c])
            for k in _PROBE_KEYS:
                cols[k].append(info[k])
            cols["split"].append(split)
            cols["clip_path"].append(str(path.resolve()) if path is not None else "")
            cols["ok"].append(not fatal)
            cols["qc_reason"].append(fatal[0] if fatal else "")
            qc.extend(_qc_rows(split, rec, path, info, label_qc, reasons, split_dir, min_s, max_s))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    labelled = set(labels["clip_name"])
    for name in sorted(set(files) - labelled):
        qc.append(dict(split=split, clip_name=name, reason="orphan_clip", detail=files[name].name))
    for name, reason, detail in odd:
        qc.append(dict(split=split, clip_name=name, reason=reason, detail=detail))

    df = pd.DataFrame(cols, columns=MANIFEST_COLUMNS)
    for col, dtype in MANIFEST_DTYPES.items():
        df[col] = df[col].astype(dtype)
    _require_usable(split, df, label_path, split_dir)
    return df, qc


def _require_usable(split: str, df: pd.DataFrame, label_path: Path, split_dir: Path) -> None:
    """Raise DataStageError when ``split`` has no row or no usable clip.

    Every later stage needs each split (train to fit, dev to choose, test to score); without
    this check the run went on for minutes and stopped in training or scoring with a message
    that blamed the features, not the corpus.
    """
    if df.empty:
        raise DataStageError(
            f"{label_path}: no rows (only a header), so split {split!r} has no utterance. "
            f"Put the split's label rows in it, or set `meld.root` to a complete MELD.Raw folder."
        )
    if df["ok"].any():
        return
    reasons = Counter(df["qc_reason"])
    why = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
    raise DataStageError(
        f"{split_dir}: no usable clip for split {split!r}: none of the {len(df)} rows of "
        f"{label_path.name} has a clip there that passes QC ({why}). Put the split's clips "
        f"(dia{{D}}_utt{{U}}.mp4, named as in {label_path.name}) in {split_dir}, or set "
        f"`meld.root` to a complete MELD.Raw folder."
    )


def map_ahead(pool: Executor, fn: Callable[[T], R], items: Sequence[T], ahead: int
              ) -> Iterator[R]:
    """``pool.map(fn, items)``, but with at most ``ahead`` calls submitted and not yet
    consumed: ``Executor.map`` submits every call at once, and each pending call (its future,
    then its result) waits in memory until it is read, so memory grew with the corpus."""
    futures: deque[Future[R]] = deque(pool.submit(fn, x) for x in items[:ahead])
    for x in items[ahead:]:
        yield futures.popleft().result()
        futures.append(pool.submit(fn, x))
    while futures:
        yield futures.popleft().result()


def _qc_rows(split: str, rec: dict[str, Any], path: Path | None, info: dict[str, Any],
             label_qc: list[tuple[str, str]], reasons: list[str], split_dir: Path,
             min_s: float, max_s: float) -> list[dict[str, str]]:
    """The QC rows of one labelled clip: its label problems, then its clip's."""
    qc = [dict(split=split, clip_name=rec["clip_name"], reason=reason, detail=d)
          for reason, d in label_qc]
    detail = info["error"] or (path.name if path is not None else "")
    if "too_long" in reasons or "zero_duration" in reasons:
        detail = f"duration {info['duration_s']:.3f} s outside [{min_s}, {max_s}]"
    for reason in reasons:
        d = detail if reason != "missing" else f"no {rec['clip_name']}.mp4 in {split_dir}"
        qc.append(dict(split=split, clip_name=rec["clip_name"], reason=reason, detail=d))
    return qc


def build_manifests(
    corpus_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    max_duration_s: float = 60.0,
    min_duration_s: float = 0.05,
    workers: int = 1,
) -> dict[str, dict[str, int]]:
    """Build ``out_dir/{split}.parquet`` for every split and ``out_dir/qc.csv``.

    ``corpus_root`` is MELD's layout (label CSVs beside the clip folders). Each labelled
    utterance gets one manifest row, probed with ``avemo.media.probe_clip`` (``workers`` threads).
    Returns ``{split: {"rows": n, "ok": k, <qc reason>: count, ...}}``. Raises DataStageError for
    a missing label file or clip folder, an unreadable label file, or a split with no row or
    no usable clip (nothing later could be trained, chosen or scored on it).
    """
    root, out = Path(corpus_root), Path(out_dir)
    frames: dict[str, pd.DataFrame] = {}
    qc_rows: list[dict[str, str]] = []
    summary: dict[str, dict[str, int]] = {}
    # Read every split before writing anything, so a bad input leaves no partial manifest.
    for split in SPLITS:
        df, qc = _build_split(split, root, min_duration_s, max_duration_s, workers)
        trim_heap()  # the split's per-row temporaries: the next split and the writes reuse it
        frames[split] = df
        qc_rows.extend(qc)
        counts = Counter(q["reason"] for q in qc)
        summary[split] = {
            "rows": len(df),
            "ok": int(df["ok"].sum()),
            **dict(sorted(counts.items())),
        }

    for split, df in frames.items():
        # Stored relative to the manifest's folder (read_manifest resolves them): the same
        # corpus and results in another folder give byte-identical manifests.
        here = out.resolve()
        df["clip_path"] = [Path(os.path.relpath(c, here)).as_posix() if c else ""
                           for c in df["clip_path"]]
        with atomic_path(out / f"{split}.parquet") as tmp:
            df.to_parquet(tmp, index=False)
        trim_heap()
    qc_df = pd.DataFrame(
        [{**q, "stage": "manifest"} for q in qc_rows], columns=QC_COLUMNS, dtype="str"
    )
    with atomic_path(out / "qc.csv") as tmp:
        qc_df.to_csv(tmp, index=False, lineterminator="\n")
    return summary


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read one ``manifest/{split}.parquet`` (``clip_path`` absolute); raise DataStageError if
    absent or malformed."""
    p = Path(path)
    if not p.is_file():
        raise DataStageError(f"manifest not found: {p}. Run the manifest stage first.")
    try:
        df = pd.read_parquet(p)
    except Exception as exc:  # noqa: BLE001 - any parquet failure means "rebuild it"
        raise DataStageError(
            f"manifest {p} cannot be read ({exc}). Delete it and rerun the manifest stage."
        ) from exc
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise DataStageError(
            f"manifest {p} lacks column(s) {missing}. It was written by another version: "
            "delete it and rerun the manifest stage."
        )
    # clip_path is stored relative to the manifest's folder; callers get absolute paths.
    here = p.resolve().parent
    df["clip_path"] = [str((here / c).resolve()) if c else "" for c in df["clip_path"]]
    return df


def usable(df: pd.DataFrame) -> pd.DataFrame:
    """The manifest rows later stages process (``ok`` is True), index reset."""
    return df[df["ok"].astype(bool)].reset_index(drop=True)
