"""What the frozen diagnosis can detect: the planted check's record (``make planted``).

``benchmarks/planted.py`` runs the diagnosis protocol on synthetic worlds where the cause is
known and writes, beside ``docs/planted.md``, a machine-readable record of what each world gave
(``workflow/protocol/planted.json``, committed like the page). The report reads it to say, next
to its own alignment verdict, what the diagnosis detected where alignment was planted and from
how much visible mouth motion: an inconclusive alignment verdict on real data reads
differently when the same protocol did not detect a planted effect of that size.

The record is only read against the protocol it was made under (``protocol_hash``); under any
other protocol the report says the check has to be rerun and quotes nothing from it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import write_json

# Relative to the repository root, next to the protocol it measures.
DEFAULT_PATH = "workflow/protocol/planted.json"
PAGE = "docs/planted.md"
ALIGNMENT = "alignment"  # the check key of aligned - time-shuffled windows
UNPLANTED = "unplanted"  # the negative control's check key
CROSSFIT = "crossfit"  # cross-fitted − in-sample train embeddings: the main effect

PathLike = str | os.PathLike[str]


def default_path() -> Path:
    """The repository's record (next to the package in a checkout), else cwd-relative."""
    here = Path(__file__).resolve().parents[3] / DEFAULT_PATH
    return here if here.is_file() else Path(DEFAULT_PATH)


def write(path: PathLike, record: Mapping[str, Any]) -> None:
    write_json(Path(path), dict(record))


def load(path: PathLike | None) -> dict[str, Any] | None:
    """The record, or None when there is no file (no planted check has been run)."""
    if path is None or not Path(path).is_file():
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _check(world: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    return next((c for c in world.get("checks", []) if c.get("key") == key), None)


def _names(worlds: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"`{w['name']}`" for w in worlds)


def _undetected(world: Mapping[str, Any]) -> str:
    """A world where alignment went undetected: its difference against the size the run could
    detect."""
    c = _check(world, ALIGNMENT) or {}
    if c.get("delta") is None:
        return f"`{world['name']}`"
    size = c.get("detectable")
    return (f"`{world['name']}` ({c['delta']:+.3f}"
            + ("" if size is None else f", where about {size:.3f} was detectable") + ")")


def _window_order_text(undetected: Sequence[Mapping[str, Any]],
                       detected: Sequence[Mapping[str, Any]]) -> str:
    """What the order inside each audio window was worth to an order-free linear probe in the
    worlds where alignment went undetected, against the detected ones (the time-shuffled
    control shuffles whole windows, so it keeps that order); empty when not recorded."""
    miss = [w["window_order"] for w in undetected if w.get("window_order") is not None]
    hit = [w["window_order"] for w in detected if w.get("window_order") is not None]
    if not miss:
        return ""
    text = (f". There, the time order inside each audio window was worth {min(miss):+.3f} to "
            f"{max(miss):+.3f} weighted F1 to an order-free linear probe (all windows against "
            "the same windows with each one's time segments averaged)")
    if hit:
        text += (f", against {min(hit):+.3f} to {max(hit):+.3f} where alignment was detected")
    return text + ("; the time-shuffled control shuffles whole windows and keeps that order, "
                   "so it can read part of what alignment adds")


def _hit(world: Mapping[str, Any]) -> bool:
    return bool((_check(world, ALIGNMENT) or {}).get("as_implied"))


def _sweep_text(sweep: Sequence[Mapping[str, Any]],
                detected_worlds: Sequence[Mapping[str, Any]]) -> str:
    """The sweep point by point, then what limits detection: how visible the timing was and
    how much knowing it was worth (the oracle's headroom), against the detected worlds'."""
    parts = []
    for w in sweep:
        c = _check(w, ALIGNMENT) or {}
        auc = w.get("timing_auc")
        seen = "" if auc is None else f"timing visible at test ROC AUC {auc:.2f}"
        if _hit(w):
            word = "detected" + (f" ({seen})" if seen else "")
        else:
            word = f"not detected ({c.get('verdict', '–')}" + (f"; {seen}" if seen else "") + ")"
        parts.append(f"mouth_motion {float(w['settings'].get('mouth_motion', 0)):g}: {word}")
    text = "at the configuration's voice strength, the sensitivity sweep gave " + "; ".join(parts)
    undetected = [w for w in sweep if not _hit(w)]
    if not undetected:
        return text
    room = [w["headroom"] for w in undetected if w.get("headroom") is not None]
    found = [w["headroom"] for w in detected_worlds if w.get("headroom") is not None]
    if len(undetected) == len(sweep) and room and found:
        text += (f". Knowing the timing was worth up to {max(room):+.3f} weighted F1 there "
                 f"(an oracle on the event's audio), against at least {min(found):+.3f} in the "
                 "worlds where alignment was detected: an alignment effect of that size is below "
                 "what this design detects")
    else:
        text += (". Where speakers' mouths show their timing less clearly than at the points "
                 "where it was detected, it goes undetected")
    return text + ("; an inconclusive alignment verdict is therefore not evidence that timing "
                   "does not matter")


def sentences(record: Mapping[str, Any] | None, protocol_hash: str) -> list[str]:
    """Plain sentences on what the protocol detected where causes were planted; one sentence
    saying the check is missing or stale when the record is absent or made under another
    protocol."""
    if record is None:
        return [f"No planted check has been run under this protocol ({PAGE}): how large an "
                "alignment effect this diagnosis can detect is not measured; run `make planted`."]
    made = record.get("protocol_hash")
    if made != protocol_hash:
        return [f"The planted check ({PAGE}) was run under protocol `{made}`, not this one "
                f"(`{protocol_hash}`): what it detected does not apply here; run `make planted`."]
    worlds = list(record.get("worlds", []))
    seeds = len(record.get("train_seeds", []))
    head = (f"On planted synthetic worlds under this protocol ({PAGE}; {seeds} training seeds "
            "never used while it was developed)")
    out: list[str] = []
    checked = [w for w in worlds if w.get("event") and not w.get("sweep")]
    if checked:
        hit = [w for w in checked if _hit(w)]
        undetected = [w for w in checked if w not in hit]
        text = (f"{head}, aligned − time-shuffled windows was read as a positive effect in "
                f"{len(hit)} of {len(checked)} worlds where the target speaks in a short event")
        if undetected:
            text += "; not detected in " + " and ".join(_undetected(w) for w in undetected)
            text += _window_order_text(undetected, hit)
        out.append(text)
    else:
        out.append(f"{head}, no world with a short event was run")
    spread = [w for w in worlds if not w.get("event") and not w.get("sweep")]
    for w in spread:
        c = _check(w, ALIGNMENT)
        if c is not None:
            out.append(f"where the target speaks throughout (`{w['name']}`) it was read as "
                       f"**{c['verdict']}** (implied: equivalent)")
    control = [w for w in worlds if _check(w, UNPLANTED) is not None]
    if control:
        false = [w for w in control if _check(w, UNPLANTED)["verdict"] == "effect"]
        out.append(f"the unplanted negative control was called an effect in {len(false)} of "
                   f"{len(control)} worlds")
    crossfit = [w for w in worlds if _check(w, CROSSFIT) is not None]
    if crossfit:
        worse = [w for w in crossfit if not _check(w, CROSSFIT).get("as_implied")]
        out.append("cross-fitting the train embeddings (its main effect over the design's "
                   f"runs) was read as a negative effect in {len(worse)} of {len(crossfit)} "
                   "worlds" + (f" ({_names(worse)})" if worse else ""))
    sweep = sorted((w for w in worlds if w.get("sweep")),
                   key=lambda w: float(w["settings"].get("mouth_motion", 0)))
    if sweep:
        out.append(_sweep_text(sweep, [w for w in checked if _hit(w)]))
    return out


def paragraph(record: Mapping[str, Any] | None, protocol_hash: str, first: bool = False) -> str:
    """The report's labelled paragraph: every sentence, or only the first (the summary's)."""
    said = sentences(record, protocol_hash)
    return ("**What this diagnosis can detect (synthetic worlds with a planted cause, not this "
            f"data):** {'; '.join(said[:1] if first else said).rstrip('.')}.")
