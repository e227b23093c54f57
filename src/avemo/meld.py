"""MELD label CSVs <-> pandas DataFrame.

Reader (``read_labels``) copes with every MELD copy in circulation:

* current release: UTF-8 (sometimes with a BOM), CRLF line endings, typographic quotes;
* copies from before late 2020: Windows-1252 punctuation stored either as raw cp1252 bytes (the
  file is then not valid UTF-8) or as C1 control characters (U+0080-U+009F) inside UTF-8, plus
  non-breaking spaces;
* copies re-saved by a spreadsheet as "Unicode text": UTF-16 (or UTF-32) with a byte-order mark,
  or UTF-16 without one (recognised by the ASCII header's zero bytes).

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
import hashlib
import io
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

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


# Byte-order marks, UTF-32 before UTF-16: a UTF-32-LE mark starts with the UTF-16-LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_TRIED = "UTF-8 (with or without BOM) with cp1252 fallback, UTF-16/UTF-32 (BOM), UTF-16 (no BOM)"
_FIX_ENCODING = (
    "Re-save it as UTF-8 (e.g. a spreadsheet's 'CSV UTF-8' format), or re-download the MELD "
    "label files."
)


def _bomless_utf16(data: bytes) -> str | None:
    """UTF-16 byte order of a file without BOM, judged from its (ASCII) header's first char."""
    if len(data) >= 2 and (data[0] == 0) != (data[1] == 0):
        return "utf-16-be" if data[0] == 0 else "utf-16-le"
    return None


def _decode(data: bytes) -> tuple[str, str]:
    """Return (text, encoding used); raise UnicodeDecodeError for a strict codec's bad bytes.

    A BOM decides the codec. Otherwise UTF-16 without BOM if the header says so, else UTF-8 with
    a per-byte-run cp1252 fallback for old copies (so that case never fails to decode).
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            # Decode the BOM too (then drop its U+FEFF) so error offsets count from file start.
            errors = _ERRORS_NAME if codec == "utf-8" else "strict"
            return data.decode(codec, errors=errors)[1:], f"{codec.upper()} (byte-order mark)"
    codec = _bomless_utf16(data)
    if codec is not None:
        return data.decode(codec), f"{codec.upper()} (no byte-order mark)"
    return data.decode("utf-8", errors=_ERRORS_NAME), "UTF-8/cp1252"


def _read_text(path: Path) -> tuple[str, str]:
    """The file's normalised text and the encoding it was read as; LabelFileError if neither."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LabelFileError(
            f"{path}: cannot read label file ({exc.strerror or exc}). Check meld.root in "
            "config.yaml points at the MELD.Raw folder, or run the download stage."
        ) from exc
    try:
        text, encoding = _decode(data)
    except UnicodeDecodeError as exc:
        raise LabelFileError(
            f"{path}: cannot decode the label file as {exc.encoding.upper()}, the encoding its "
            f"first bytes indicate (byte {exc.start}: {exc.reason}). {_FIX_ENCODING}"
        ) from None
    # A NUL in the header means a wrong guess (e.g. UTF-32 without BOM) or not a text file.
    if "\x00" in text.partition("\n")[0]:
        raise LabelFileError(
            f"{path}: the label file is not text in any encoding tried ({_TRIED}): its header "
            f"contains NUL characters when read as {encoding}. {_FIX_ENCODING}"
        )
    return normalize_text(text), encoding


# ---------------------------------------------------------------------------------------------
# Reader

_FIX_ROW = "Fix or delete this row, or re-download the MELD label files."
_FIX_ROWS = "Fix or delete these rows, or re-download the MELD label files."
_MAX_LISTED = 20  # bad rows spelled out in one error; the rest are counted


def _fail(path: Path, line: int, problem: str, fix: str) -> LabelFileError:
    return LabelFileError(f"{path}, line {line}: {problem}. {fix}")


def _rows_error(path: Path, problems: list[tuple[int, str]]) -> LabelFileError:
    """One error for every bad row (line, problem), so a user can fix them in one pass."""
    if len(problems) == 1:
        return _fail(path, *problems[0], _FIX_ROW)
    listed = [f"  line {line}: {problem}" for line, problem in problems[:_MAX_LISTED]]
    if len(problems) > _MAX_LISTED:
        listed.append(f"  ... and {len(problems) - _MAX_LISTED} more")
    body = "\n".join(listed)
    return LabelFileError(f"{path}: {len(problems)} bad rows:\n{body}\n{_FIX_ROWS}")


class _CsvReader(Protocol):
    """What csv.reader returns (its type is private)."""

    line_num: int

    def __next__(self) -> list[str]: ...


def _header(path: Path, reader: _CsvReader, encoding: str) -> list[str]:
    """The stripped column names; LabelFileError if empty or lacking a MELD column."""
    try:
        names = [h.strip() for h in next(reader)]
    except StopIteration:
        raise _fail(path, 1, "file is empty", "Re-download the MELD label files.") from None
    missing = [c for c in MELD_COLUMNS if c not in names]
    if missing:
        raise _fail(
            path,
            1,
            f"header lacks column(s) {missing} (found {names}; file read as {encoding})",
            f"The header must contain {MELD_COLUMNS}; re-download the MELD label files.",
        )
    return names


def _numbered_rows(
    reader: _CsvReader, problems: list[tuple[int, str]]
) -> Iterator[tuple[int, list[str]]]:
    """Yield (first physical line, fields) of each non-blank record; add CSV errors to problems."""
    last_line = reader.line_num
    while True:
        line = last_line + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. an unterminated quote swallowing the rest of the file
            problems.append((line, f"malformed CSV ({exc}); probably an unbalanced double quote"))
            if reader.line_num == last_line:  # no progress: stop rather than loop forever
                return
            last_line = reader.line_num
            continue
        last_line = reader.line_num
        if row:  # skip blank lines (e.g. trailing)
            yield line, row


def _parse_field(col: str, field: str, value: str) -> object:
    """One MELD field as its DataFrame value; ValueError naming the column if invalid."""
    if field in _INT_FIELDS:
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"{col} is not an integer: {value!r}") from None
    if field in ("start_s", "end_s"):
        try:
            return parse_time(value)
        except ValueError as exc:
            raise ValueError(f"{col}: {exc}") from None
    if field in ("emotion", "sentiment"):
        allowed = EMOTIONS if field == "emotion" else SENTIMENTS
        label = value.strip().lower()
        if label not in allowed:
            raise ValueError(f"unknown {col} {value!r} (expected one of {allowed})")
        return label
    return value


def _parse_row(row: list[str], pos: dict[str, int], width: int) -> dict[str, object]:
    """Every field of one record; ValueError listing all of its bad fields."""
    if len(row) != width:
        raise ValueError(f"has {len(row)} fields, the header has {width}")
    values: dict[str, object] = {}
    problems: list[str] = []
    for col, field in _FIELD_OF.items():
        try:
            values[field] = _parse_field(col, field, row[pos[col]])
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("; ".join(problems))
    return values


def read_labels(csv_path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read one MELD label CSV into a DataFrame, one row per utterance, in file order.

    Columns: ``sr_no, dialogue_id, utterance_id, speaker, utterance, emotion, sentiment, season,
    episode, start_s, end_s, clip_name``. Raises LabelFileError for a missing, undecodable or
    empty file or a missing header column (file, line 1, problem, fix), and one LabelFileError
    listing every bad row (1-based line, problem): wrong number of fields, a non-integer id, an
    unknown emotion/sentiment, a bad time, a duplicate (dialogue, utterance), malformed CSV.
    EndTime before StartTime is kept as read: the manifest stage makes it a QC row.
    """
    path = Path(csv_path)
    text, encoding = _read_text(path)
    # newline="" keeps quoted newlines inside fields; csv's line_num counts physical lines.
    reader = csv.reader(io.StringIO(text, newline=""))
    names = _header(path, reader, encoding)
    pos = {c: names.index(c) for c in MELD_COLUMNS}

    records: dict[str, list[object]] = {f: [] for f in LABEL_COLUMNS}
    seen: dict[tuple[int, int], int] = {}
    problems: list[tuple[int, str]] = []
    for line, row in _numbered_rows(reader, problems):
        try:
            values = _parse_row(row, pos, len(names))
            key = (int(values["dialogue_id"]), int(values["utterance_id"]))  # type: ignore[arg-type]
            if key in seen:
                raise ValueError(
                    f"duplicate Dialogue_ID={key[0]}, Utterance_ID={key[1]} "
                    f"(first seen on line {seen[key]})"
                )
        except ValueError as exc:
            problems.append((line, str(exc)))
            continue
        seen[key] = line
        values["clip_name"] = clip_name(*key)
        for f in LABEL_COLUMNS:
            records[f].append(values[f])
    if problems:
        raise _rows_error(path, problems)

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


# ---------------------------------------------------------------------------------------------
# Label fingerprint

FINGERPRINT_COLUMNS: tuple[str, ...] = ("dialogue_id", "utterance_id", "emotion", "sentiment")


def label_fingerprint(rows: pd.DataFrame) -> str:
    """SHA-256 of a split's label rows: (dialogue, utterance, emotion, sentiment), sorted.

    Only these four fields, as parsed values (integers, lower-case labels), enter the hash:
    the encoding, quoting, line endings, row order and the utterance text (where old and new
    copies of MELD differ by C1 characters) do not change it. ``rows``: ``read_labels``' output
    or a manifest (both carry ``FINGERPRINT_COLUMNS``).
    """
    keyed = sorted(
        zip(
            rows["dialogue_id"].astype("int64").tolist(),
            rows["utterance_id"].astype("int64").tolist(),
            rows["emotion"].astype(str).str.strip().str.lower().tolist(),
            rows["sentiment"].astype(str).str.strip().str.lower().tolist(),
            strict=True,
        )
    )
    text = "".join(f"{d},{u},{e},{s}\n" for d, u, e, s in keyed)
    return hashlib.sha256(text.encode("ascii")).hexdigest()
