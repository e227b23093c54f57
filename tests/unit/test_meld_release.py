"""What the report calls the data: MELD only when the label rows are MELD's own (by content)
and most clips are on disk; split sizes alone decide nothing."""

from __future__ import annotations

import copy
import csv
import io
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from avemo import meld_release
from avemo.labels import EMOTIONS, LABEL_FILES, SENTIMENTS, SPLITS
from avemo.meld import label_fingerprint, read_labels, write_labels
from avemo.report import findings

SIZES = {"train": 9989, "dev": 1109, "test": 2610}  # MELD's published split sizes
MELD_DESCRIPTION = {"dataset": "meld", "root": "/data/meld"}


def _labels(n: int, seed: int) -> pd.DataFrame:
    """A MELD-format label table of ``n`` rows (generated, not MELD's)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "dialogue_id": np.arange(n) // 5, "utterance_id": np.arange(n) % 5,
        "speaker": "Ross",
        "utterance": [f"Oh, I\u2019m \u201cfine\u201d, line {i}" for i in range(n)],
        "emotion": rng.choice(EMOTIONS, n), "sentiment": rng.choice(SENTIMENTS, n),
        "season": 1, "episode": 1, "start_s": 1.0, "end_s": 2.5,
    })


def _manifests(sizes: dict[str, int], present: int | None = None) -> dict[str, pd.DataFrame]:
    """Manifest-like tables; the first ``present`` rows of all splits together exist."""
    out, left = {}, sum(sizes.values()) if present is None else present
    for i, split in enumerate(SPLITS):
        df = _labels(sizes[split], seed=i)
        k = min(left, len(df))
        left -= k
        out[split] = df.assign(exists=np.arange(len(df)) < k)
    return out


def _published_from(manifests: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """A fingerprints mapping shaped as the packaged file, made from ``manifests``' labels
    (they stand in for MELD's published files, which this repository does not copy)."""
    pub = copy.deepcopy(meld_release.load_published())
    for split in SPLITS:
        pub["splits"][split] = [{"sha256": label_fingerprint(manifests[split]),
                                 "rows": len(manifests[split]),
                                 "file": f"data/MELD/{split}_sent_emo.csv",
                                 "commits": [{"commit": "0" * 40, "date": "2020-01-01"}]}]
    return pub


def test_packaged_fingerprints_hold_every_published_revision() -> None:
    pub = meld_release.load_published()
    assert meld_release.published_rows(pub) == SIZES
    assert 0.5 < pub["min_clip_share"] <= 1
    for split in SPLITS:
        versions = pub["splits"][split]
        commits = {c["commit"][:7] for v in versions for c in v["commits"]}
        # The current UTF-8 files and the copy before them (C1 characters).
        assert {"ca3e126", "91116b0"} <= commits, split
        assert all(len(v["sha256"]) == 64 for v in versions)


def test_generated_corpus_with_melds_split_sizes_is_not_meld() -> None:
    manifests = _manifests(SIZES)
    data = findings.identify(MELD_DESCRIPTION, manifests)
    assert data.kind == findings.MELD_FORMAT
    assert data.name == "a MELD-format corpus of 13,708 utterances"
    assert meld_release.identify(manifests).matched == {}


def test_meld_labels_with_few_clips_are_named_by_their_clips() -> None:
    manifests = _manifests(SIZES, present=42)
    pub = _published_from(manifests)
    data = findings.identify(MELD_DESCRIPTION, manifests, published=pub)
    assert data.kind == findings.MELD_LABELS
    assert data.name == "MELD labels with 42 of 13,708 clips available"
    assert "MELD labels" in data.finding("x") and "not evidence" in data.finding("x")


def test_meld_labels_with_most_clips_are_meld() -> None:
    manifests = _manifests(SIZES)
    pub = _published_from(manifests)
    share = pub["min_clip_share"]
    enough = int(np.ceil(share * sum(SIZES.values())))
    assert findings.identify(MELD_DESCRIPTION, _manifests(SIZES, enough),
                             published=pub).kind == findings.MELD
    assert findings.identify(MELD_DESCRIPTION, _manifests(SIZES, enough - 1),
                             published=pub).kind == findings.MELD_LABELS
    # One label changed in one split: not MELD's labels any more.
    changed = {**manifests, "dev": manifests["dev"].copy()}
    first = changed["dev"].at[0, "emotion"]
    changed["dev"].at[0, "emotion"] = next(e for e in EMOTIONS if e != first)
    assert findings.identify(MELD_DESCRIPTION, changed, published=pub).kind == \
        findings.MELD_FORMAT


def test_fingerprint_ignores_encoding_quoting_line_endings_and_order(tmp_path: Path) -> None:
    df = _labels(40, seed=3)
    write_labels(df, tmp_path / "crlf.csv")  # MELD's current layout: UTF-8, CRLF, minimal quotes
    base = (tmp_path / "crlf.csv").read_bytes().decode("utf-8")
    lf = base.replace("\r\n", "\n")
    variants = {
        "lf.csv": lf.encode("utf-8"),
        "bom.csv": b"\xef\xbb\xbf" + base.encode("utf-8"),
        "cp1252.csv": lf.encode("cp1252"),  # raw cp1252 bytes, as some old copies
        # C1 control characters inside UTF-8, as MELD's pre-2020 files
        "c1.csv": lf.translate({0x2019: "\x92", 0x201C: "\x93", 0x201D: "\x94"}).encode(),
        "utf16.csv": base.encode("utf-16"),
    }
    for name, data in variants.items():
        (tmp_path / name).write_bytes(data)
    # Every field quoted, data rows in another order, labels in capitals, LF endings.
    rows = list(csv.reader(io.StringIO(lf, newline="")))
    header, body = rows[0], [r for r in rows[1:] if r]
    body = body[::-1]
    emo = header.index("Emotion")
    body = [r[:emo] + [r[emo].upper()] + r[emo + 1:] for r in body]
    buf = io.StringIO(newline="")
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows([header, *body])
    (tmp_path / "quoted.csv").write_text(buf.getvalue(), encoding="utf-8", newline="")
    expected = label_fingerprint(read_labels(tmp_path / "crlf.csv"))
    assert expected == label_fingerprint(df)
    for name in [*variants, "quoted.csv"]:
        assert label_fingerprint(read_labels(tmp_path / name)) == expected, name
    assert (tmp_path / "quoted.csv").read_bytes() != (tmp_path / "lf.csv").read_bytes()
    # Any label change does change it.
    other = df.copy()
    other.at[5, "sentiment"] = next(s for s in SENTIMENTS if s != df.at[5, "sentiment"])
    assert label_fingerprint(other) != expected


MELD_CLONE = os.environ.get("AVEMO_MELD_CLONE")  # a git clone of github.com/declare-lab/MELD


@pytest.mark.skipif(not MELD_CLONE, reason="set AVEMO_MELD_CLONE to a clone of declare-lab/MELD")
def test_packaged_fingerprints_are_those_of_the_meld_repository(tmp_path: Path) -> None:
    """Against the published files themselves: the packaged fingerprints regenerate from the
    repository, and its current labels beside a few clips are "MELD labels with N of M"."""
    clone = Path(str(MELD_CLONE))
    found = meld_release.fingerprints_of_clone(clone)
    assert found == meld_release.load_published()["splits"]
    manifests = {}
    for i, split in enumerate(SPLITS):
        rel = f"{meld_release.REPO_DIR}/{LABEL_FILES[split]}"
        path = tmp_path / LABEL_FILES[split]
        path.write_bytes(subprocess.run(["git", "-C", str(clone), "show", f"HEAD:{rel}"],
                                        check=True, capture_output=True).stdout)
        labels = read_labels(path)
        manifests[split] = labels.assign(exists=np.arange(len(labels)) < 3 * (i == 0))
    data = findings.identify(MELD_DESCRIPTION, manifests)
    assert data.kind == findings.MELD_LABELS
    assert data.name == "MELD labels with 3 of 13,708 clips available"
    everything = {s: m.assign(exists=True) for s, m in manifests.items()}
    assert findings.identify(MELD_DESCRIPTION, everything).kind == findings.MELD
