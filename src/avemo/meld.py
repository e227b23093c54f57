"""MELD label CSVs <-> pandas DataFrame.

Reader (``read_labels``) copes with every MELD copy in circulation:

* current release: UTF-8 (sometimes with a BOM), CRLF line endings, typographic quotes;
* copies from before late 2020: Windows-1252 punctuation stored either as raw cp1252 bytes (the
  file is then not valid UTF-8) or as C1 control characters (U+0080-U+009F) inside UTF-8, plus
  non-breaking spaces.

Canonical text form (what every copy is normalised to): the Unicode characters cp1252 assigns to
those bytes, i.e. ‘ ’ “ ” – — … (U+2018/2019/201C/201D/2013/2014/2026), and NBSP (U+00A0) as a
plain space. Nothing else in the text is touched (no stripping, no case change), so an old copy
and the current release give equal DataFrames.

Writer (``write_labels``) produces MELD's exact layout (UTF-8 without BOM, CRLF, minimal quoting,
lower-case labels, ``HH:MM:SS,mmm`` times), byte-deterministically.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import os
import re
from pathlib import Path

import pandas as pd

from avemo.atomic import atomic_path
from avemo.errors import LabelFileError
from avemo.labels import EMOTIONS, SENTIMENTS, clip_name

MELD_COLUMNS: list[str] = [
    "Sr No.",
    "Utterance",
    "Speaker",
    "Emotion",
    "Sentiment",
    "Dialogue_ID",
    "Utterance_ID",
    "Season",
    "Episode",
    "StartTime",
    "EndTime",
]

# DataFrame column for each MELD column, in read_labels' output order.
_FIELD_OF: dict[str, str] = {
    "Sr No.": "sr_no",
    "Utterance": "utterance",
    "Speaker": "speaker",
    "Emotion": "emotion",
    "Sentiment": "sentiment",
    "Dialogue_ID": "dialogue_id",
    "Utterance_ID": "utterance_id",
    "Season": "season",
    "Episode": "episode",
    "StartTime": "start_s",
    "EndTime": "end_s",
}
LABEL_COLUMNS: list[str] = [
    "sr_no",
    "dialogue_id",
    "utterance_id",
    "speaker",
    "utterance",
    "emotion",
    "sentiment",
    "season",
    "episode",
    "start_s",
    "end_s",
    "clip_name",
]
_INT_FIELDS = ("sr_no", "dialogue_id", "utterance_id", "season", "episode")

# ---------------------------------------------------------------------------------------------
# Times


_TIME_RE = re.compile(r"^\s*(\d{1,2}):(\d{1,2}):(\d{1,2})[,.](\d{1,3})\s*$")


def parse_time(text: str) -> float:
    """Parse a MELD timestamp (``HH:MM:SS,mmm``) into seconds.

    Accepts a one-digit hour (``0:13:40,766``), ``.`` instead of ``,``, and fewer than three
    fraction digits, read as a decimal fraction (``00:06:47,28`` = 407.28 s, as MELD means it).
    Raises ValueError for anything else.
    """
    m = _TIME_RE.match(str(text))
    if m is None:
        raise ValueError(f"not a HH:MM:SS,mmm time: {text!r}")
    hours, minutes, seconds = int(m[1]), int(m[2]), int(m[3])
    if minutes >= 60 or seconds >= 60:
        raise ValueError(f"minutes/seconds out of range in time {text!r}")
    millis = int(m[4].ljust(3, "0"))
    # Integer milliseconds first so format_time(parse_time(x)) round-trips exactly.
    return ((hours * 3600 + minutes * 60 + seconds) * 1000 + millis) / 1000.0


def format_time(seconds: float) -> str:
    """Format seconds as MELD's ``HH:MM:SS,mmm`` (rounded to the millisecond)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"cannot format time {seconds!r}: must be finite and >= 0")
    total_ms = int(round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


# ---------------------------------------------------------------------------------------------
# Text decoding and normalisation


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Decode the bytes UTF-8 rejects as cp1252 (latin-1 for the five bytes cp1252 leaves out)."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    text = "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in bad)
    return text, exc.end


_ERRORS_NAME = "avemo-cp1252-fallback"
codecs.register_error(_ERRORS_NAME, _cp1252_fallback)


def _build_translation() -> dict[int, str]:
    table: dict[int, str] = {0x00A0: " "}
    # C1 controls stored in UTF-8 are cp1252 bytes that were decoded as latin-1 at some point:
    # map each back to the character cp1252 gives it (0x81, 0x8D, 0x8F, 0x90, 0x9D stay as-is).
    for code in range(0x80, 0xA0):
        try:
            table[code] = bytes([code]).decode("cp1252")
        except UnicodeDecodeError:
            continue
    return table


_TRANSLATION = _build_translation()


def normalize_text(text: str) -> str:
    """Map C1 control characters as cp1252 would and NBSP to a space (see module docstring)."""
    return text.translate(_TRANSLATION)


def _decode(data: bytes) -> str:
    """UTF-8 (BOM dropped) with a per-byte-run cp1252 fallback for old copies."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    return data.decode("utf-8", errors=_ERRORS_NAME)


# ---------------------------------------------------------------------------------------------
# Reader


def _fail(path: Path, line: int, problem: str, fix: str) -> LabelFileError:
    return LabelFileError(f"{path}, line {line}: {problem}. {fix}")


def read_labels(csv_path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read one MELD label CSV into a DataFrame, one row per utterance, in file order.

    Columns: ``sr_no, dialogue_id, utterance_id, speaker, utterance, emotion, sentiment, season,
    episode, start_s, end_s, clip_name``. Raises LabelFileError (file, 1-based line, problem,
    fix) for a missing file, a missing header column, a row with the wrong number of fields, a
    non-integer id, an unknown emotion/sentiment, a bad time, or a duplicate (dialogue, utterance).
    """
    path = Path(csv_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LabelFileError(
            f"{path}: cannot read label file ({exc.strerror or exc}). Check meld.root in "
            "config.yaml points at the MELD.Raw folder, or run the download stage."
        ) from exc
    text = normalize_text(_decode(data))
    # newline="" keeps quoted newlines inside fields; csv's line_num counts physical lines.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise _fail(path, 1, "file is empty", "Re-download the MELD label files.") from None
    names = [h.strip() for h in header]
    missing = [c for c in MELD_COLUMNS if c not in names]
    if missing:
        raise _fail(
            path,
            1,
            f"header lacks column(s) {missing} (found {names})",
            f"The header must contain {MELD_COLUMNS}; re-download the MELD label files.",
        )
    pos = {c: names.index(c) for c in MELD_COLUMNS}

    records: dict[str, list[object]] = {f: [] for f in LABEL_COLUMNS}
    seen: dict[tuple[int, int], int] = {}
    emotions, sentiments = set(EMOTIONS), set(SENTIMENTS)
    fix_row = "Fix or delete this row, or re-download the MELD label files."
    last_line = reader.line_num
    while True:
        line = last_line + 1  # first physical line of the next record
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. an unterminated quote swallowing the rest of the file
            raise _fail(
                path, line, f"malformed CSV ({exc}); probably an unbalanced double quote", fix_row
            ) from None
        last_line = reader.line_num
        if not row:  # blank line (e.g. trailing)
            continue
        try:
            if len(row) != len(names):
                raise ValueError(f"has {len(row)} fields, the header has {len(names)}")
            raw = {c: row[i] for c, i in pos.items()}
            values: dict[str, object] = {}
            for col, field in _FIELD_OF.items():
                value = raw[col]
                if field in _INT_FIELDS:
                    try:
                        values[field] = int(value.strip())
                    except ValueError:
                        raise ValueError(f"{col} is not an integer: {value!r}") from None
                elif field in ("start_s", "end_s"):
                    try:
                        values[field] = parse_time(value)
                    except ValueError as exc:
                        raise ValueError(f"{col}: {exc}") from None
                elif field == "emotion":
                    values[field] = value.strip().lower()
                    if values[field] not in emotions:
                        raise ValueError(f"unknown Emotion {value!r} (expected one of {EMOTIONS})")
                elif field == "sentiment":
                    values[field] = value.strip().lower()
                    if values[field] not in sentiments:
                        raise ValueError(
                            f"unknown Sentiment {value!r} (expected one of {SENTIMENTS})"
                        )
                else:
                    values[field] = value
            key = (int(values["dialogue_id"]), int(values["utterance_id"]))  # type: ignore[arg-type]
            if key in seen:
                raise ValueError(
                    f"duplicate Dialogue_ID={key[0]}, Utterance_ID={key[1]} "
                    f"(first seen on line {seen[key]})"
                )
            seen[key] = line
        except ValueError as exc:
            raise _fail(path, line, str(exc), fix_row) from None
        values["clip_name"] = clip_name(*key)
        for f in LABEL_COLUMNS:
            records[f].append(values[f])

    df = pd.DataFrame(records, columns=LABEL_COLUMNS)
    for f in _INT_FIELDS:
        df[f] = df[f].astype("int64")
    for f in ("start_s", "end_s"):
        df[f] = df[f].astype("float64")
    return df


# ---------------------------------------------------------------------------------------------
# Writer


def write_labels(df: pd.DataFrame, csv_path: str | os.PathLike[str]) -> None:
    """Write ``df`` (read_labels' columns; ``sr_no`` optional, else 1..N) as a MELD label CSV.

    UTF-8 without BOM, CRLF line endings, csv.QUOTE_MINIMAL, lower-case labels, times as
    ``HH:MM:SS,mmm``. Atomic and byte-deterministic; rewriting what read_labels returns gives
    the same bytes.
    """
    required = [c for c in LABEL_COLUMNS if c not in ("sr_no", "clip_name")]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"write_labels: DataFrame lacks column(s) {missing}")
    sr_no = df["sr_no"].tolist() if "sr_no" in df.columns else list(range(1, len(df) + 1))

    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(MELD_COLUMNS)
    for sr, rec in zip(sr_no, df[required].itertuples(index=False), strict=True):
        writer.writerow(
            [
                int(sr),
                str(rec.utterance),
                str(rec.speaker),
                str(rec.emotion).lower(),
                str(rec.sentiment).lower(),
                int(rec.dialogue_id),
                int(rec.utterance_id),
                int(rec.season),
                int(rec.episode),
                format_time(float(rec.start_s)),
                format_time(float(rec.end_s)),
            ]
        )
    with atomic_path(csv_path) as tmp:
        tmp.write_bytes(buf.getvalue().encode("utf-8"))
