"""MELD label CSV reader/writer: round trip, real-file quirks, error messages."""

from __future__ import annotations

import codecs
from pathlib import Path

import pandas as pd
import pytest

from avemo.errors import LabelFileError
from avemo.meld import MELD_COLUMNS, format_time, parse_time, read_labels, write_labels

HEADER = ",".join(MELD_COLUMNS)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dialogue_id": [0, 0, 3, 3],
            "utterance_id": [0, 2, 0, 1],  # ids skip numbers, dialogues 1-2 absent
            "speaker": ["Chandler", "The Interviewer", "Joey", "Rachel"],
            "utterance": [
                "also I was the point person on my company’s transition",
                'He said, "no"',
                "line one\nline two",
                "",
            ],
            "emotion": ["neutral", "surprise", "joy", "anger"],
            "sentiment": ["neutral", "positive", "positive", "negative"],
            "season": [8, 8, 2, 2],
            "episode": [21, 21, 3, 3],
            "start_s": [976.059, 980.5, 0.0, 4927.28],
            "end_s": [978.0, 981.25, 1.999, 4930.0],
        }
    )


def _write_bytes(tmp_path: Path, body: bytes, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(body)
    return path


def _row(utt: str, emo: str = "neutral", dia: str = "0", uid: str = "0", t: str = "00:00:01,000"):
    # Real MELD quotes its times because they contain a comma.
    return f'1,{utt},Joey,{emo},neutral,{dia},{uid},1,1,"{t}","00:00:02,000"'


# --- times -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:16:16,059", 976.059),
        ("0:13:40,766", 820.766),
        ("00:06:47,28", 407.28),
        ("00:06:47,2", 407.2),
        ("00:06:47.280", 407.28),
        ("01:00:00,000", 3600.0),
    ],
)
def test_parse_time_accepts_meld_variants(text: str, seconds: float) -> None:
    assert parse_time(text) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize("text", ["", "12:00", "00:61:00,000", "00:00:00,0000", "a:b:c,d"])
def test_parse_time_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_format_time_round_trips() -> None:
    assert format_time(976.059) == "00:16:16,059"
    assert format_time(407.28) == "00:06:47,280"
    assert format_time(0) == "00:00:00,000"
    assert parse_time(format_time(4927.28)) == pytest.approx(4927.28)
    with pytest.raises(ValueError):
        format_time(-1.0)


# --- round trip ------------------------------------------------------------------------------


def test_round_trip_is_exact_and_byte_identical(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    src = _frame()
    write_labels(src, first)
    raw = first.read_bytes()
    assert raw.startswith(HEADER.encode() + b"\r\n")
    assert b'"He said, ""no"""' in raw  # quoted comma + doubled quotes
    assert raw.count(b"\r\n") == 5  # header + 4 rows; the quoted newline stays a bare \n
    got = read_labels(first)
    assert len(got) == 4
    assert got["sr_no"].tolist() == [1, 2, 3, 4]
    assert got["clip_name"].tolist() == ["dia0_utt0", "dia0_utt2", "dia3_utt0", "dia3_utt1"]
    for col in src.columns:
        if col in ("start_s", "end_s"):
            assert got[col].tolist() == pytest.approx(src[col].tolist())
        else:
            assert got[col].tolist() == src[col].tolist(), col
    write_labels(got, second)
    assert second.read_bytes() == raw


def test_write_is_deterministic_and_lowercases_labels(tmp_path: Path) -> None:
    df = _frame()
    df["emotion"] = df["emotion"].str.capitalize()
    write_labels(df, tmp_path / "a.csv")
    write_labels(df, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert b",Neutral," not in (tmp_path / "a.csv").read_bytes()
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


# --- quirks ----------------------------------------------------------------------------------


def test_raw_cp1252_bytes_are_decoded(tmp_path: Path) -> None:
    body = (HEADER + "\r\n").encode() + _row("I\x92m fine \x85").encode("latin-1") + b"\r\n"
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    got = read_labels(_write_bytes(tmp_path, body))
    assert got["utterance"].tolist() == ["I’m fine …"]


def test_mixed_utf8_and_cp1252_in_one_file(tmp_path: Path) -> None:
    body = (
        (HEADER + "\r\n").encode()
        + _row("caf\u00e9 \u2019ok\u2019", uid="0").encode("utf-8")
        + b"\r\n"
        + _row("don\x92t", uid="1").encode("latin-1")
        + b"\r\n"
    )
    got = read_labels(_write_bytes(tmp_path, body))
    assert got["utterance"].tolist() == ["café ’ok’", "don’t"]


def test_c1_controls_and_nbsp_in_utf8_are_normalised(tmp_path: Path) -> None:
    utt = "\x91a\x92 \x93b\x94 c\x96d\x97e\x85\u00a0f"
    body = (HEADER + "\r\n" + _row(utt) + "\r\n").encode("utf-8")
    got = read_labels(_write_bytes(tmp_path, body))
    assert got["utterance"].iloc[0] == "‘a’ “b” c–d—e… f"


def test_bom_lf_endings_and_label_case(tmp_path: Path) -> None:
    body = b"\xef\xbb\xbf" + (HEADER + "\n" + _row("hi", emo="Joy") + "\n").encode()
    got = read_labels(_write_bytes(tmp_path, body))
    assert got["emotion"].tolist() == ["joy"]
    assert got["sr_no"].tolist() == [1]


def test_one_digit_hour_and_two_ms_digits(tmp_path: Path) -> None:
    body = HEADER + "\r\n" + _row("x", t="0:13:40,766").replace("00:00:02,000", "00:13:41,28")
    got = read_labels(_write_bytes(tmp_path, (body + "\r\n").encode()))
    assert got["start_s"].iloc[0] == pytest.approx(820.766)
    assert got["end_s"].iloc[0] == pytest.approx(821.28)


def test_old_and_new_copies_give_equal_frames(tmp_path: Path) -> None:
    new_rows = [
        _row("\u201cYou\u2019re right\u201d \u2013 ok\u2026", uid="0"),
        _row('"Wait, what?"', uid="1"),
        _row('"multi\r\nline"', uid="2"),
    ]
    old_rows = [
        _row("\x93You\x92re right\x94 \x96 ok\x85", uid="0"),
        _row('"Wait,\u00a0what?"', uid="1"),
        _row('"multi\r\nline"', uid="2"),
    ]
    new = "\ufeff" + HEADER + "\r\n" + "\r\n".join(new_rows) + "\r\n"
    old_c1 = HEADER + "\r\n" + "\r\n".join(old_rows) + "\r\n"
    a = read_labels(_write_bytes(tmp_path, new.encode("utf-8"), "new.csv"))
    b = read_labels(_write_bytes(tmp_path, old_c1.encode("utf-8"), "old_c1.csv"))
    c = read_labels(_write_bytes(tmp_path, old_c1.encode("latin-1"), "old_cp1252.csv"))
    assert len(a) == 3
    assert a["utterance"].iloc[2] == "multi\r\nline"
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)


# --- errors ----------------------------------------------------------------------------------


def _error_for(tmp_path: Path, rows: list[str], header: str = HEADER) -> str:
    body = (header + "\r\n" + "\r\n".join(rows) + "\r\n").encode()
    path = _write_bytes(tmp_path, body)
    with pytest.raises(LabelFileError) as info:
        read_labels(path)
    msg = str(info.value)
    assert str(path) in msg
    return msg


def test_bad_label_names_line(tmp_path: Path) -> None:
    msg = _error_for(tmp_path, [_row("a", uid="0"), _row("b", emo="happy", uid="1")])
    assert "line 3" in msg and "happy" in msg


def test_bad_time_line_counts_quoted_newlines(tmp_path: Path) -> None:
    rows = [_row('"two\r\nlines"', uid="0"), _row("b", uid="1", t="1:2")]
    msg = _error_for(tmp_path, rows)
    assert "line 4" in msg and "StartTime" in msg


def test_missing_column(tmp_path: Path) -> None:
    header = HEADER.replace(",Sentiment", "")
    msg = _error_for(
        tmp_path, ['1,x,Joey,joy,0,0,1,1,"00:00:01,000","00:00:02,000"'], header=header
    )
    assert "line 1" in msg and "Sentiment" in msg


def test_non_integer_id_wrong_field_count_and_duplicate(tmp_path: Path) -> None:
    assert "Dialogue_ID" in _error_for(tmp_path, [_row("a", dia="x")])
    assert "fields" in _error_for(tmp_path, [_row("a") + ",extra"])
    msg = _error_for(tmp_path, [_row("a"), _row("b")])
    assert "duplicate" in msg and "line 3" in msg and "line 2" in msg


def test_unterminated_quote(tmp_path: Path) -> None:
    msg = _error_for(tmp_path, [_row("a", uid="0"), _row('"never closed', uid="1")])
    assert "line 3" in msg and "quote" in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LabelFileError, match="meld.root"):
        read_labels(tmp_path / "nope.csv")


# --- encodings -------------------------------------------------------------------------------


def _sample_text() -> str:
    rows = [_row("I\u2019m caf\u00e9", uid="0"), _row('"Wait, what?"', uid="1")]
    return HEADER + "\r\n" + "\r\n".join(rows) + "\r\n"


@pytest.mark.parametrize(
    ("codec", "bom"),
    [
        ("utf-16", b""),  # Python's utf-16 writes a BOM (native order)
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-16-le", b""),  # no BOM: told by the header's zero bytes
        ("utf-16-be", b""),
        ("utf-8-sig", b""),
        ("utf-32", b""),
    ],
)
def test_utf16_and_other_unicode_encodings_are_read(tmp_path: Path, codec: str, bom: bytes) -> None:
    text = _sample_text()
    body = bom + text.encode(codec)
    want = read_labels(_write_bytes(tmp_path, text.encode("utf-8"), "utf8.csv"))
    got = read_labels(_write_bytes(tmp_path, body, "other.csv"))
    pd.testing.assert_frame_equal(got, want)
    assert got["utterance"].tolist() == ["I’m café", "Wait, what?"]


def test_whole_file_cp1252_is_read(tmp_path: Path) -> None:
    got = read_labels(_write_bytes(tmp_path, _sample_text().encode("cp1252")))
    assert got["utterance"].tolist() == ["I’m café", "Wait, what?"]


def test_undecodable_utf16_names_file_encoding_and_fix(tmp_path: Path) -> None:
    body = b"\xff\xfe" + HEADER.encode("utf-16-le") + b"\x00\xd8\x41\x00"  # lone surrogate
    path = _write_bytes(tmp_path, body)
    with pytest.raises(LabelFileError) as info:
        read_labels(path)
    msg = str(info.value)
    assert str(path) in msg and "UTF-16-LE" in msg and "UTF-8" in msg and "re-save" in msg.lower()


def test_binary_file_names_encodings_tried(tmp_path: Path) -> None:
    path = _write_bytes(tmp_path, b"PK\x03\x04\x00\x00\x08\x00" + bytes(range(256)))
    with pytest.raises(LabelFileError) as info:
        read_labels(path)
    msg = str(info.value)
    assert str(path) in msg and "UTF-8" in msg and "cp1252" in msg and "UTF-16" in msg
    assert "re-save" in msg.lower()


def test_header_error_names_the_encoding_read(tmp_path: Path) -> None:
    body = b"\xff\xfe" + (HEADER.replace(",Sentiment", "") + "\r\n").encode("utf-16-le")
    path = _write_bytes(tmp_path, body)
    with pytest.raises(LabelFileError, match=r"Sentiment.*UTF-16-LE"):
        read_labels(path)


# --- every bad row at once -------------------------------------------------------------------


def test_every_bad_row_is_reported_in_one_error(tmp_path: Path) -> None:
    rows = [
        _row("a", uid="0"),
        _row("b", emo="happy", uid="1"),  # line 3
        _row("c", uid="2"),
        _row("d", dia="x", uid="3"),  # line 5
        _row("e", uid="4", t="1:2"),  # line 6
        _row("f", uid="0"),  # line 7: duplicate of line 2
        _row("g", emo="glad", uid="x"),  # line 8: two problems in one row
    ]
    msg = _error_for(tmp_path, rows)
    assert "5 bad rows" in msg
    for needle in ["line 3:", "happy", "line 5:", "Dialogue_ID", "line 6:", "StartTime"]:
        assert needle in msg, needle
    assert "line 7:" in msg and "duplicate" in msg and "line 2" in msg
    assert "line 8:" in msg and "glad" in msg and "Utterance_ID" in msg
    assert "line 2:" not in msg and "line 4:" not in msg
    assert "Fix or delete these rows" in msg


def test_bad_row_listing_is_capped(tmp_path: Path) -> None:
    rows = [_row(f"u{i}", emo="happy", uid=str(i)) for i in range(25)]
    msg = _error_for(tmp_path, rows)
    assert "25 bad rows" in msg
    assert "line 21:" in msg and "line 22:" not in msg  # lines 2..21 are the first 20
    assert "and 5 more" in msg


def test_end_before_start_is_read_not_raised(tmp_path: Path) -> None:
    # The manifest stage turns it into a QC row (test_manifest.py); the reader keeps the row.
    row = _row("x", t="00:00:05,000")  # EndTime is 00:00:02,000
    got = read_labels(_write_bytes(tmp_path, (HEADER + "\r\n" + row + "\r\n").encode()))
    assert (got["start_s"].iloc[0], got["end_s"].iloc[0]) == (5.0, 2.0)
