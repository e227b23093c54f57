"""avemo.evaluation.sensitivity: the report's reading of the planted check's record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avemo.evaluation import sensitivity


def _world(name: str, hit: bool, *, event: bool = True, sweep: bool = False,
           mouth: float = 3.0, control: str = "inconclusive",
           auc: float | None = 0.9) -> dict[str, Any]:
    verdict = ("effect" if hit else "inconclusive") if event else (
        "equivalent" if hit else "inconclusive")
    return {"name": name, "event": event, "sweep": sweep, "timing_auc": auc,
            "settings": {"mouth_motion": mouth},
            "checks": [{"key": sensitivity.ALIGNMENT, "verdict": verdict, "as_implied": hit,
                        "delta": 0.12 if hit else 0.03, "detectable": 0.05},
                       {"key": sensitivity.CROSSFIT, "verdict": "effect",
                        "as_implied": name != "spread"},
                       {"key": sensitivity.UNPLANTED, "verdict": control,
                        "as_implied": control != "effect"}]}


def _record(*worlds: dict[str, Any], hash_: str = "abc123") -> dict[str, Any]:
    return {"protocol_hash": hash_, "train_seeds": [1, 2, 3, 4, 5], "worlds": list(worlds)}


def test_absent_or_stale_records_say_so_and_quote_nothing() -> None:
    (none,) = sensitivity.sentences(None, "abc123")
    assert "No planted check" in none and "make planted" in none
    (stale,) = sensitivity.sentences(_record(_world("event", True), hash_="old000"), "abc123")
    assert "`old000`, not this one (`abc123`)" in stale and "1 of 1" not in stale


def test_detections_misses_and_the_sweep_limit() -> None:
    rec = _record(_world("event", True), _world("event_start", False),
                  _world("spread", True, event=False, auc=None),
                  _world("sweep_mouth1", False, sweep=True, mouth=1.0, auc=0.6),
                  _world("sweep_mouth3", True, sweep=True, mouth=3.0, control="effect"))
    text = " ".join(sensitivity.sentences(rec, "abc123"))
    assert "positive effect in 1 of 2 worlds" in text
    assert "not detected in `event_start` (+0.030, where about 0.050 was detectable)" in text
    assert "(`spread`) it was read as **equivalent**" in text
    assert "control was called an effect in 1 of 5 worlds" in text
    assert "negative effect in 1 of 5 worlds (`spread`)" in text
    assert ("mouth_motion 1: not detected (inconclusive; timing visible at test ROC AUC 0.60)"
            in text)
    assert "mouth_motion 3: detected" in text and "less clearly" in text
    assert "not evidence that timing does not matter" in text


def test_a_sweep_missed_everywhere_names_the_effect_size_it_needed() -> None:
    def with_room(w: dict[str, Any], room: float) -> dict[str, Any]:
        return {**w, "headroom": room}

    rec = _record(with_room(_world("event", True), 0.24),
                  with_room(_world("sweep_mouth1", False, sweep=True, mouth=1.0), 0.15),
                  with_room(_world("sweep_mouth3", False, sweep=True, mouth=3.0), 0.15))
    text = " ".join(sensitivity.sentences(rec, "abc123"))
    assert "worth up to +0.150 weighted F1 there" in text and "at least +0.240" in text
    assert "below what this design detects" in text and "less clearly" not in text


def test_every_sweep_point_detected_adds_no_caveat(tmp_path: Path) -> None:
    rec = _record(_world("sweep_mouth1", True, sweep=True, mouth=1.0))
    sensitivity.write(tmp_path / "planted.json", rec)
    text = " ".join(sensitivity.sentences(sensitivity.load(tmp_path / "planted.json"),
                                          "abc123"))
    assert "mouth_motion 1: detected" in text and "not evidence" not in text
    assert sensitivity.load(tmp_path / "missing.json") is None


def test_the_summary_paragraph_is_the_first_sentence_only() -> None:
    rec = _record(_world("event", True), _world("sweep_mouth1", False, sweep=True, mouth=1.0))
    full = sensitivity.paragraph(rec, "abc123")
    first = sensitivity.paragraph(rec, "abc123", first=True)
    assert full.startswith("**What this diagnosis can detect") and "mouth_motion 1" in full
    assert "1 of 1 worlds" in first and "mouth_motion" not in first and first.endswith(".")


def test_a_miss_names_what_the_order_inside_windows_was_worth() -> None:
    rec = _record({**_world("event", True), "window_order": 0.01},
                  {**_world("event_start", False), "window_order": 0.12},
                  {**_world("event_end", False), "window_order": 0.1})
    text = " ".join(sensitivity.sentences(rec, "abc123"))
    assert "worth +0.100 to +0.120 weighted F1 to an order-free linear probe" in text
    assert "against +0.010 to +0.010 where alignment was detected" in text
    assert "keeps that order" in text
    # Not recorded (an older record): nothing is said about it.
    plain = " ".join(sensitivity.sentences(_record(_world("event", True),
                                                   _world("event_start", False)), "abc123"))
    assert "order-free" not in plain
