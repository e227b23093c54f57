"""Is a MELD-format corpus MELD itself? Its label rows against the published label files.

Split sizes decide nothing: a generated corpus can have MELD's sizes (the ``meld_scale``
preset), and MELD's own label CSVs can sit beside a handful of clips. A corpus is MELD when
every split's label fingerprint (``avemo.meld.label_fingerprint``: dialogue, utterance,
emotion, sentiment; blind to encoding, quoting, line endings and row order) equals one of a
label file published in the MELD repository (github.com/declare-lab/MELD, ``data/MELD/``, every
revision: the current UTF-8 files and the earlier ones with C1 characters), and at least
``min_clip_share`` of its labelled clips are on disk. The published fingerprints are data
(``avemo/data/meld_label_fingerprints.yaml``), computed once from a clone of that repository by
``python -m avemo.meld_release <clone> <out.yaml>``, each with the file and commits it came from.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from avemo.errors import DataStageError
from avemo.labels import LABEL_FILES, SPLITS
from avemo.meld import label_fingerprint, read_labels

PUBLISHED_FILE = "meld_label_fingerprints.yaml"
REPOSITORY = "https://github.com/declare-lab/MELD"
REPO_DIR = "data/MELD"
# What the report calls each case (avemo.report.findings.Data.kind).
MELD, MELD_LABELS, MELD_FORMAT = "meld", "meld_labels", "meld_format"


def load_published(path: str | Path | None = None) -> dict[str, Any]:
    """The published fingerprints (the packaged file unless ``path`` is given)."""
    where = path or f"avemo/data/{PUBLISHED_FILE}"
    try:
        if path is None:
            text = (resources.files("avemo") / "data" / PUBLISHED_FILE).read_text("utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise DataStageError(f"MELD label fingerprints file {where} unreadable: {exc}") from exc
    missing = [s for s in SPLITS if not (data.get("splits") or {}).get(s)]
    if missing or "min_clip_share" not in data:
        raise DataStageError(
            f"MELD label fingerprints file {where} lacks split(s) {missing} or min_clip_share; "
            "regenerate it with `python -m avemo.meld_release <MELD clone> <file>`"
        )
    return data


def published_rows(published: Mapping[str, Any]) -> dict[str, int]:
    """Labelled utterances per split in the published files (all revisions agree)."""
    return {s: int(published["splits"][s][0]["rows"]) for s in SPLITS}


@dataclass(frozen=True)
class Identity:
    """What a corpus is: ``kind`` (meld / meld_labels / meld_format); ``available`` clips on
    disk (manifest ``exists``) of ``published`` labelled utterances in MELD's files;
    ``matched``: the split's published file and first commit, for each split that matches."""

    kind: str
    available: int
    published: int
    matched: dict[str, str]


def identify(manifests: Mapping[str, pd.DataFrame],
             published: Mapping[str, Any] | None = None) -> Identity:
    """Match each split's label rows (manifest rows: one per labelled utterance, present or
    not) against the published fingerprints; MELD when every split matches and at least
    ``min_clip_share`` of the clips exist, "MELD labels" when every split matches but fewer
    clips exist, a MELD-format corpus otherwise."""
    pub = published if published is not None else load_published()
    matched: dict[str, str] = {}
    for split in SPLITS:
        fp = label_fingerprint(manifests[split])
        for version in pub["splits"][split]:
            if version["sha256"] == fp:
                matched[split] = f"{version['file']} @ {version['commits'][0]['commit'][:10]}"
                break
    total = sum(published_rows(pub).values())
    available = sum(int(manifests[s]["exists"].astype(bool).sum()) for s in SPLITS)
    if len(matched) < len(SPLITS):
        kind = MELD_FORMAT
    elif available >= float(pub["min_clip_share"]) * total:
        kind = MELD
    else:
        kind = MELD_LABELS
    return Identity(kind, available, total, matched)


# ---------------------------------------------------------------------------------------------
# Regenerating the published fingerprints from a clone of the MELD repository


def _git(clone: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(clone), *args], check=True,
                          capture_output=True).stdout


def fingerprints_of_clone(clone: str | Path) -> dict[str, list[dict[str, Any]]]:
    """``{split: [{sha256, rows, file, commits: [{commit, date}]}]}``: every distinct label
    content of ``data/MELD/{split}_sent_emo.csv`` over the clone's history, newest first."""
    clone = Path(clone)
    out: dict[str, list[dict[str, Any]]] = {}
    for split in SPLITS:
        rel = f"{REPO_DIR}/{LABEL_FILES[split]}"
        log = _git(clone, "log", "--format=%H %ad", "--date=short", "--", rel).decode()
        versions: dict[str, dict[str, Any]] = {}
        for line in filter(None, log.splitlines()):
            commit, date = line.split()
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / LABEL_FILES[split]
                path.write_bytes(_git(clone, "show", f"{commit}:{rel}"))
                rows = read_labels(path)
            fp = label_fingerprint(rows)
            entry = versions.setdefault(fp, {"sha256": fp, "rows": len(rows), "file": rel,
                                             "commits": []})
            entry["commits"].append({"commit": commit, "date": date})
        out[split] = list(versions.values())
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m avemo.meld_release <clone of declare-lab/MELD> <out.yaml>",
              file=sys.stderr)
        return 2
    clone, out = Path(args[0]), Path(args[1])
    head = _git(clone, "rev-parse", "HEAD").decode().strip()
    data = {
        "source": f"{REPOSITORY} ({REPO_DIR}/*_sent_emo.csv, every revision up to {head})",
        # Below this share of MELD's labelled clips on disk, results are not MELD's: the report
        # says "MELD labels with N of M clips available".
        "min_clip_share": 0.95,
        "splits": fingerprints_of_clone(clone),
    }
    header = ("# Label fingerprints (avemo.meld.label_fingerprint) of MELD's published label "
              "files.\n# Generated by `python -m avemo.meld_release <clone> <this file>`; "
              "do not edit.\n")
    out.write_text(header + yaml.safe_dump(data, sort_keys=False, width=100), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
