"""Deterministic demo corpus in MELD's exact on-disk layout (stage 1 when no real MELD is at hand).

Layout written under ``root`` (identical to MELD.Raw, so every later stage runs unchanged):
``train_sent_emo.csv``, ``dev_sent_emo.csv``, ``test_sent_emo.csv`` (``avemo.meld.write_labels``)
and ``train_splits/``, ``dev_splits_complete/``, ``output_repeated_splits_test/`` holding
``dia{D}_utt{U}.mp4`` (H.264 video at ``fps``, AAC audio at 48 kHz stereo by default, as MELD),
plus the ground-truth sidecar ``synthetic_truth.csv``, then
``corpus.json`` last.

Design of the data: a simulation study with planted causes
----------------------------------------------------------
* Labels follow MELD's imbalance: neutral 47 %, joy 17 %, surprise 12 %, anger 11 %, sadness 7 %,
  disgust 3 %, fear 3 % (every split of at least 7 clips holds every emotion at least once), so
  always-neutral scores ~0.30 weighted F1 (MELD test: 0.31). Sentiment is drawn *given* the
  emotion (``SENTIMENT_GIVEN_EMOTION``: neutral 70/15/15 % neutral/positive/negative, surprise
  positive or negative, the others mostly their MELD sentiment, 10-15 % neutral) and carried by
  its own cue (cheek tint on the face, a rising or falling pitch glide in the voice), so a
  sentiment head learns something emotion alone does not give. Dialogues have 3-12 utterances
  from a cast of six speakers; durations are log-normal (median 2.5 s) clipped to 1-15 s (and
  to ``max_duration_s``); label timestamps are consecutive within a dialogue. A preset may set
  its own duration law (``duration``: log-normal median and sigma, clip range, and a share of
  badly cut clips log-uniform up to ``tail_max_s``, like MELD's few clips over a minute) and
  exact per-split label counts (``label_counts``, e.g. MELD's published ones): ``meld_scale``
  (config.yaml) uses both; without them the plan is the demo's, draw for draw.
* Each clip shows a drawn face (per-speaker skin, hair, background and head size; head drift,
  zoom and roll; lighting drift; sensor noise; blinks) and carries voice-like sound (harmonic
  source with a pitch contour and jitter, syllables with pauses, per-speaker formants, breath,
  room noise and clicks); prototypes and rendering in ``avemo.synthetic_render``.
* The face shows the expressed emotion *persistently* at ``face_strength`` x U(0.5, 1) of its
  prototype, so one frame anywhere carries the visual cue (the study's 3-s sampler works).
* ``cue: event`` (default): the target speaker talks only during one voice event (0.5-0.8 s, or
  1.15-1.4 x duration/k in long clips, k the aligned frame set's ``uniform_k`` read from the
  config, so >= 1 of the k uniform frames of the aligned models lies in it; with
  ``event_length_s: [lo, hi]`` U(lo, hi) s instead, independent of k) with the emotion's
  vocal pattern at ``voice_strength`` x U(0.5, 1); the mouth is open
  and moving only then, ``mouth_motion`` times the default drawing's opening (how visible
  *when* the target talks is: the one visual sign an aligned model has of which window to
  use). An off-screen distractor (another cast member, another emotion drawn by the prior, its
  own sentiment, same strength law, mouth never moves) talks at another, non-overlapping time
  with a same-length burst. Whole-clip audio statistics mix both bursts;
  an audio window centred on a frame with an open mouth isolates the true one: alignment
  matters. ``cue: event_start`` / ``event_end``: the same, but the event always starts /
  ends the clip (the distractor after / before it), where an aligned audio window reaches past
  the clip's edge. ``cue: spread``: the target talks over the whole clip, no distractor:
  alignment should bring nothing.
* Difficulty: ``label_noise`` (share of clips expressing a confusable emotion instead of their
  label: joy<->surprise, anger<->disgust, sadness<->fear, fear->surprise, neutral->joy/sadness)
  and ``nuisance`` (scale of wobble, head motion, lighting, sensor and room noise, loudness).
  Defaults (``FACE_STRENGTH`` ... ``NUISANCE``) are calibrated on the demo preset so that the
  best single stream lands at MELD-like scores with the face stream above the voice
  (docs/corpus.md).
* ``inject_defects`` reproduces MELD's known defects so quality control is exercised: a dev label
  row whose clip is missing, a train clip of garbage bytes, an orphan clip with no label row, a
  test clip stored as ``final_videos_testdia{D}_utt{U}.mp4``, and a clip without audio stream.

Determinism: the plan (labels, durations, events) comes from one generator seeded by ``seed``;
each clip renders from its own ``SeedSequence(seed, spawn_key=(1, split, index))``, so worker
count and order do not matter. Same seed: byte-identical CSVs and identical decoded frames and
samples. libx264 runs single-threaded without macroblock-tree rate control, which is not
reproducible (see ``avemo.synthetic_render.X264_OPTIONS``); the mp4 files are then byte-identical.

``synthetic_truth.csv`` (``TRUTH_CSV``, columns ``TRUTH_COLUMNS``, documented in
docs/formats.md) holds the planted ground truth, one row per clip file; no pipeline stage reads
it. ``corpus.json`` holds ``params`` (every generation parameter), ``clips`` (the same records as
the truth CSV), ``defects`` (kind -> split, clip_name, file) and ``plans`` (the exact render
parameters of each clip).
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avemo import meld
from avemo.atomic import atomic_path, write_json
from avemo.errors import ConfigError, DataStageError
from avemo.labels import EMOTIONS, LABEL_FILES, SENTIMENTS, SPLIT_DIRS, SPLITS, clip_name
from avemo.progress import progress
from avemo.synthetic_render import ClipPlan, render_clip

GENERATOR_VERSION = 2
CORPUS_JSON = "corpus.json"
# Planted ground truth, one row per clip (module docstring); no pipeline stage reads it.
TRUTH_CSV = "synthetic_truth.csv"
# Where the planted cue lives (``synthetic.cue``): ``event`` anywhere in the clip, ``event_start``
# / ``event_end`` always at the clip's start / end (the distractor after / before it), ``spread``
# over the whole clip.
EVENT_CUES: tuple[str, ...] = ("event", "event_start", "event_end")
CUES: tuple[str, ...] = (*EVENT_CUES, "spread")
# Default of the dense frame count the event length is tied to: the caller passes the aligned
# frame set's ``uniform_k`` from the config (``avemo.params.synthetic``); a corpus records it
# only when it differs from this, so corpora made before it was read keep their parameters.
# Tied (``event_length_s`` null), an event lasts > 1/align_k of its clip, so at least one of the
# aligned models' frames (and its audio window) lands inside it; ``event_length_s: [lo, hi]``
# draws the length from U(lo, hi) s instead, independent of the frame count (some events then
# hold no dense frame: a world not built around the model).
ALIGN_K = 8
# Written first: marks ``root`` as a synthetic corpus (safe to wipe when parameters change).
PARAMS_MARKER = ".synthetic_params.json"
TEST_PREFIX = "final_videos_test"

EMOTION_PRIOR: dict[str, float] = {
    "neutral": 0.47,
    "joy": 0.17,
    "surprise": 0.12,
    "anger": 0.11,
    "sadness": 0.07,
    "disgust": 0.03,
    "fear": 0.03,
}
CONFUSABLE: dict[str, tuple[str, ...]] = {
    "neutral": ("joy", "sadness"),
    "joy": ("surprise",),
    "surprise": ("joy", "fear"),
    "anger": ("disgust",),
    "sadness": ("fear",),
    "disgust": ("anger",),
    "fear": ("surprise", "sadness"),
}
# P(sentiment | emotion): mostly MELD's mapping, but with real uncertainty (neutral talk can be
# warm or cold, surprise goes both ways), so a sentiment head has something of its own to learn.
SENTIMENT_GIVEN_EMOTION: dict[str, dict[str, float]] = {
    "neutral": {"neutral": 0.70, "positive": 0.15, "negative": 0.15},
    "joy": {"neutral": 0.15, "positive": 0.85, "negative": 0.00},
    "surprise": {"neutral": 0.10, "positive": 0.50, "negative": 0.40},
    "anger": {"neutral": 0.10, "positive": 0.00, "negative": 0.90},
    "sadness": {"neutral": 0.15, "positive": 0.00, "negative": 0.85},
    "disgust": {"neutral": 0.15, "positive": 0.00, "negative": 0.85},
    "fear": {"neutral": 0.15, "positive": 0.05, "negative": 0.80},
}
# Defaults of the difficulty settings (config.yaml restates them; calibration in the docstring).
FACE_STRENGTH = 0.65
VOICE_STRENGTH = 0.5
# The mouth's opening while the target talks (``cue: event``'s visual sign of *when*), as a
# multiple of the drawing's default. At 1 and the pipeline's 32-px frames the opening is about
# 2 px beside head motion of about 1 px, and no aligned fusion model learnt from clip labels
# when the target speaks; `make planted` uses 3 (benchmarks/planted.py says what it measured).
MOUTH_MOTION = 1.0
LABEL_NOISE = 0.15
NUISANCE = 1.0
TRUTH_COLUMNS: tuple[str, ...] = (
    "split",
    "clip_name",
    "file",
    "labelled",
    "emotion",
    "sentiment",
    "expressed_emotion",
    "expressed_sentiment",
    "label_noise",
    "speaker",
    "n_frames",
    "duration_s",
    "cue",
    "face_level",
    "voice_level",
    "event_start_s",
    "event_end_s",
    "event_frames_dense",
    "distractor",
    "distractor_sentiment",
    "distractor_speaker",
    "distractor_level",
    "distractor_start_s",
    "distractor_end_s",
    "distractor_frames_dense",
    "defect",
    "on_disk",
    "has_audio",
)
CAST: tuple[str, ...] = ("Avery", "Blake", "Casey", "Devon", "Emery", "Finley")
SENTENCES: tuple[str, ...] = (
    "I told you about it yesterday.",
    "Well, I guess so.",
    "Can you pass me that?",
    "We should leave at eight.",
    "That is what he said.",
    "Is this the right place?",
    "I was just looking for my keys.",
    "Okay, let me check.",
    "She called this morning.",
    "The coffee is on the table.",
    "Did you see the paper?",
    "We can talk about it later.",
    "It's right over there.",
    "I don't know, maybe.",
    "He's coming back on Monday.",
    'You said "tomorrow", right?',
)
DEFECT_KINDS: tuple[str, ...] = (
    "missing_clip",
    "corrupt_clip",
    "orphan_clip",
    "prefixed_clip",
    "no_audio_clip",
)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _sentiment(emotion: str, rng: np.random.Generator) -> str:
    """Sentiment drawn given the emotion (``SENTIMENT_GIVEN_EMOTION``), not a function of it."""
    probs = SENTIMENT_GIVEN_EMOTION[emotion]
    return str(SENTIMENTS[int(rng.choice(len(SENTIMENTS), p=[probs[s] for s in SENTIMENTS]))])


def _dialogue_lengths(n: int, rng: np.random.Generator) -> list[int]:
    """Split ``n`` utterances into dialogues of 3-12 (only a split smaller than 3 has fewer)."""
    lengths: list[int] = []
    remaining = n
    while remaining > 0:
        length = min(int(rng.integers(3, 13)), remaining)
        if remaining - length < 3 and remaining - length > 0:
            # Never leave a stub of 1-2: take all if it fits, else leave exactly 3.
            length = remaining if remaining <= 12 else remaining - 3
        lengths.append(length)
        remaining -= length
    return lengths


def _emotions(
    n: int, rng: np.random.Generator, counts: dict[str, int] | None = None
) -> list[str]:
    """MELD's label shares as exact quotas (largest remainder), shuffled: iid draws left a
    90-clip test split 63 % neutral (always-neutral 0.49 weighted F1 instead of MELD's ~0.31).
    With n >= 7 every emotion appears at least once. ``counts`` (emotion -> rows, summing to
    ``n``) gives the quotas exactly instead (a preset's ``label_counts``)."""
    if counts is not None:
        labels = np.repeat(np.array(EMOTIONS), [int(counts[e]) for e in EMOTIONS])
        return [str(e) for e in rng.permutation(labels)]
    want = np.array([EMOTION_PRIOR[e] for e in EMOTIONS]) * n
    counts = np.floor(want).astype(int)
    if n >= len(EMOTIONS):
        counts = np.maximum(counts, 1)
    while counts.sum() < n:
        counts[int(np.argmax(want - counts))] += 1
    while counts.sum() > n:  # only after the minimum of one: take from the most over-served
        counts[int(np.argmax(np.where(counts > 1, counts - want, -np.inf)))] -= 1
    labels = np.repeat(np.array(EMOTIONS), counts)
    return [str(e) for e in rng.permutation(labels)]


# The duration law of a preset without its own ``duration`` (the demo's and tiny's): log-normal
# with this median and sigma, clipped to [min_s, max_s]; tail_share of the clips (0 here) are
# instead badly cut ones, log-uniform between max_s and tail_max_s.
DURATION_LAW: dict[str, float | None] = {
    "median_s": 2.5,
    "sigma": 0.55,
    "min_s": 1.0,
    "max_s": 15.0,
    "tail_share": 0.0,
    "tail_max_s": None,
}


def duration_law(law: dict[str, Any] | None) -> dict[str, Any]:
    """A preset's ``duration`` over ``DURATION_LAW`` (missing keys keep their default)."""
    return {**DURATION_LAW, **(law or {})}


def _duration_frames(
    rng: np.random.Generator,
    fps: int,
    max_duration_s: float | None,
    law: dict[str, Any] | None = None,
) -> int:
    if law is None:  # the default law, drawn exactly as before presets had their own
        d = float(np.clip(rng.lognormal(math.log(2.5), 0.55), 1.0, 15.0))
    else:
        law = duration_law(law)
        d = float(rng.lognormal(math.log(float(law["median_s"])), float(law["sigma"])))
        d = float(np.clip(d, float(law["min_s"]), float(law["max_s"])))
        if float(law["tail_share"]) > 0 and rng.random() < float(law["tail_share"]):
            lo, hi = math.log(float(law["max_s"])), math.log(float(law["tail_max_s"]))
            d = float(math.exp(rng.uniform(lo, hi)))
    if max_duration_s is not None:
        d = min(d, max_duration_s)
    return max(1, int(math.floor(d * fps + 1e-9)))  # floor: never exceeds the cap


def _voice_intervals(
    duration: float,
    rng: np.random.Generator,
    placement: str = "event",
    align_k: int = ALIGN_K,
    length_s: tuple[float, float] | None = None,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Event and distractor intervals (s) of an event clip: same length law, never overlapping.

    Length: tied (``length_s`` None) 0.5-0.8 s, or 1.15-1.4 x duration/align_k in long clips,
    so at least one of align_k uniform frames (segment centres) falls inside the event; else
    U(lo, hi) s, independent of the frame count. Both shrink alike in clips too short to hold
    them. Placement: ``event`` in random order anywhere; ``event_start`` the event from 0 s and
    the distractor after it; ``event_end`` the event up to the clip's end, the distractor before.
    """

    def length() -> float:
        if length_s is None:
            return max(rng.uniform(0.5, 0.8), rng.uniform(1.15, 1.4) * duration / align_k)
        return float(rng.uniform(length_s[0], length_s[1]))

    lens = [length() for _ in range(2)]
    gap = min(0.2, 0.1 * duration)
    room = 0.8 * (duration - gap)  # short clips: shrink both, keep some slack for placement
    if sum(lens) > room:
        lens = [x * room / sum(lens) for x in lens]
    if placement == "event_start":  # the event at 0, the distractor somewhere after it
        start = lens[0] + gap + float(rng.uniform()) * (duration - gap - sum(lens))
        return (0.0, lens[0]), (start, start + lens[1])
    if placement == "event_end":  # the event ends the clip, the distractor somewhere before
        start = float(rng.uniform()) * (duration - gap - sum(lens))
        return (duration - lens[0], duration), (start, start + lens[1])
    slack = rng.dirichlet([1.0, 1.0, 1.0]) * (duration - gap - sum(lens))
    first = float(slack[0])
    second = first + lens[0] + gap + float(slack[1])
    ev, dis = (first, first + lens[0]), (second, second + lens[1])
    if rng.random() < 0.5:  # distractor first: move it to the front, event after it
        dis = (first, first + lens[1])
        ev = (dis[1] + gap + float(slack[1]), dis[1] + gap + float(slack[1]) + lens[0])
    return ev, dis


def _frames_inside(duration: float, start: float, end: float, k: int = ALIGN_K) -> int:
    """How many of k uniform frames (segment centres, like ``uniform_k``) are in the span."""
    times = (np.arange(k) + 0.5) * duration / k
    return int(((times >= start) & (times <= end)).sum())


def _clip_plan(
    path: Path,
    params: dict[str, Any],
    key: tuple[int, ...],
    speaker: int,
    n_frames: int,
    expressed: str,
    sentiment: str,
    rng: np.random.Generator,
    has_audio: bool = True,
) -> ClipPlan:
    """Cue timing, strengths and distractor of one clip (drawn from the plan generator)."""
    fps = int(params["fps"])
    duration = n_frames / fps
    # Per-clip strengths vary (weak expressions are near neutral, as in real speech).
    face_level = float(params["face_strength"]) * float(rng.uniform(0.5, 1.0))
    voice_level = float(params["voice_strength"]) * float(rng.uniform(0.5, 1.0))
    ev, dis = (0.0, duration), (0.0, 0.0)
    distractor, d_sentiment, d_speaker, d_level = "", "", speaker, 0.0
    if params["cue"] in EVENT_CUES:
        length_s = params.get("event_length_s")
        ev, dis = _voice_intervals(
            duration,
            rng,
            params["cue"],
            int(params.get("align_k") or ALIGN_K),
            None if length_s is None else (float(length_s[0]), float(length_s[1])),
        )
        # Another emotion by MELD's prior, so the two bursts of whole-clip audio are ambiguous.
        others = [e for e in EMOTIONS if e != expressed]
        prior = np.array([EMOTION_PRIOR[e] for e in others])
        distractor = str(others[int(rng.choice(len(others), p=prior / prior.sum()))])
        d_sentiment = _sentiment(distractor, rng)
        cast = [i for i in range(len(CAST)) if i != speaker]
        d_speaker = cast[int(rng.integers(len(cast)))]
        d_level = float(params["voice_strength"]) * float(rng.uniform(0.5, 1.0))
    return ClipPlan(
        path=str(path),
        entropy=int(params["seed"]),
        spawn_key=key,
        speaker_key=(2, speaker),
        n_frames=n_frames,
        fps=fps,
        width=int(params["width"]),
        height=int(params["height"]),
        audio_rate=int(params["audio_rate"]),
        audio_channels=int(params["audio_channels"]),
        has_audio=has_audio,
        cue=str(params["cue"]),
        expressed=expressed,
        sentiment=sentiment,
        face_level=round(face_level, 4),
        voice_level=round(voice_level, 4),
        event_start_s=round(ev[0], 3),
        event_end_s=round(ev[1], 3),
        distractor=distractor,
        distractor_sentiment=d_sentiment,
        distractor_speaker_key=(2, d_speaker),
        distractor_start_s=round(dis[0], 3),
        distractor_end_s=round(dis[1], 3),
        distractor_level=round(d_level, 4),
        nuisance=float(params["nuisance"]),
        mouth_motion=float(params.get("mouth_motion", MOUTH_MOTION)),
    )


def _express(label: str, rng: np.random.Generator, label_noise: float) -> str:
    if rng.random() < label_noise:
        options = CONFUSABLE[label]
        return options[int(rng.integers(len(options)))]
    return label


def plan_corpus(
    root: Path, params: dict[str, Any]
) -> tuple[
    dict[str, pd.DataFrame], list[ClipPlan], list[dict[str, Any]], dict[str, dict[str, Any]]
]:
    """Labels per split, clip plans, per-clip ground truth and defects; renders nothing.

    Ground-truth records are in plan order; ``plans[i]`` renders ``truth[i]`` (a missing-clip
    defect keeps its truth record with ``on_disk`` False and is never rendered).
    """
    seed = int(params["seed"])
    sizes = {"train": params["n_train"], "dev": params["n_dev"], "test": params["n_test"]}
    labels: dict[str, pd.DataFrame] = {}
    rows_by_split: dict[str, list[dict[str, Any]]] = {}
    for si, split in enumerate(SPLITS):
        rng = _rng(seed, 0, si)
        n = int(sizes[split])
        counts = params.get("label_counts")
        emotions = _emotions(n, rng, None if counts is None else counts[split])
        rows: list[dict[str, Any]] = []
        for d, length in enumerate(_dialogue_lengths(n, rng)):
            cast = rng.choice(len(CAST), size=int(rng.integers(2, 4)), replace=False)
            season, episode = int(rng.integers(1, 11)), int(rng.integers(1, 25))
            cursor = float(rng.uniform(30.0, 1200.0))
            for u in range(length):
                i = len(rows)
                n_frames = _duration_frames(
                    rng, int(params["fps"]), params["max_duration_s"], params.get("duration")
                )
                start = round(cursor, 3)
                end = round(start + n_frames / params["fps"], 3)
                cursor = end + float(rng.uniform(0.1, 1.5))
                rows.append(
                    {
                        "dialogue_id": d,
                        "utterance_id": u,
                        "speaker_idx": int(cast[int(rng.integers(len(cast)))]),
                        "utterance": SENTENCES[int(rng.integers(len(SENTENCES)))],
                        "emotion": emotions[i],
                        "sentiment": _sentiment(emotions[i], rng),
                        "season": season,
                        "episode": episode,
                        "start_s": start,
                        "end_s": end,
                        "n_frames": n_frames,
                        "expressed": _express(emotions[i], rng, float(params["label_noise"])),
                    }
                )
        rows_by_split[split] = rows
        df = pd.DataFrame(
            rows,
            columns=[
                "dialogue_id",
                "utterance_id",
                "speaker_idx",
                "utterance",
                "emotion",
                "sentiment",
                "season",
                "episode",
                "start_s",
                "end_s",
            ],
        )
        df.insert(3, "speaker", [CAST[i] for i in df.pop("speaker_idx")])
        labels[split] = df

    # Defects: which (split, index) gets which, drawn from a dedicated stream.
    defects: dict[str, dict[str, Any]] = {}
    used: set[tuple[str, int]] = set()
    if params["inject_defects"]:
        drng = _rng(seed, 3)
        prefs = {
            "missing_clip": ("dev", "test", "train"),
            "corrupt_clip": ("train", "dev", "test"),
            "prefixed_clip": ("test",),
            "no_audio_clip": ("train", "test", "dev"),
        }
        for kind, order in prefs.items():
            for split in order:
                free = [i for i in range(len(rows_by_split[split])) if (split, i) not in used]
                if free:
                    i = free[int(drng.integers(len(free)))]
                    used.add((split, i))
                    r = rows_by_split[split][i]
                    defects[kind] = {
                        "split": split,
                        "index": i,
                        "clip_name": clip_name(r["dialogue_id"], r["utterance_id"]),
                    }
                    break
    by_index = {(d["split"], d["index"]): k for k, d in defects.items()}

    plans: list[ClipPlan] = []
    truth: list[dict[str, Any]] = []
    dense_k = int(params.get("align_k") or ALIGN_K)
    for si, split in enumerate(SPLITS):
        prng = _rng(seed, 4, si)
        folder = root / SPLIT_DIRS[split]
        rows = rows_by_split[split]
        extra = []
        if params["inject_defects"] and split == "train":
            # Orphan: a whole extra dialogue id (past the last), one utterance, no label row.
            n_dia = (rows[-1]["dialogue_id"] + 1) if rows else 0
            extra.append(
                {
                    "dialogue_id": n_dia,
                    "utterance_id": 0,
                    "speaker_idx": 0,
                    "emotion": None,
                    "n_frames": _duration_frames(
                        prng, int(params["fps"]), params["max_duration_s"], params.get("duration")
                    ),
                    "expressed": str(EMOTIONS[int(prng.integers(len(EMOTIONS)))]),
                }
            )
            extra[0]["sentiment"] = _sentiment(extra[0]["expressed"], prng)
        for i, r in enumerate(rows + extra):
            name = clip_name(r["dialogue_id"], r["utterance_id"])
            kind = by_index.get((split, i), "orphan_clip" if i >= len(rows) else "")
            fname = f"{TEST_PREFIX}{name}.mp4" if kind == "prefixed_clip" else f"{name}.mp4"
            plan = _clip_plan(
                folder / fname,
                params,
                (1, si, i),
                r["speaker_idx"],
                r["n_frames"],
                r["expressed"],
                r["sentiment"],
                prng,
                has_audio=kind != "no_audio_clip",
            )
            if kind:
                defects[kind] = {
                    "split": split,
                    "clip_name": name,
                    "file": f"{SPLIT_DIRS[split]}/{fname}",
                }
            plans.append(plan)
            truth.append(
                {
                    "split": split,
                    "clip_name": name,
                    "file": f"{SPLIT_DIRS[split]}/{fname}",
                    "labelled": i < len(rows),
                    "emotion": r["emotion"],
                    "sentiment": r["sentiment"] if i < len(rows) else None,
                    "expressed_emotion": r["expressed"],
                    "expressed_sentiment": plan.sentiment,
                    "label_noise": r["emotion"] is not None and r["expressed"] != r["emotion"],
                    "speaker": CAST[r["speaker_idx"]],
                    "n_frames": r["n_frames"],
                    "duration_s": plan.duration_s,
                    "cue": plan.cue,
                    "face_level": plan.face_level,
                    "voice_level": plan.voice_level,
                    "event_start_s": plan.event_start_s,
                    "event_end_s": plan.event_end_s,
                    "event_frames_dense": _frames_inside(
                        plan.duration_s, plan.event_start_s, plan.event_end_s, dense_k
                    ),
                    "distractor": plan.distractor or None,
                    "distractor_sentiment": plan.distractor_sentiment or None,
                    "distractor_speaker": CAST[plan.distractor_speaker_key[1]]
                    if plan.distractor
                    else None,
                    "distractor_level": plan.distractor_level,
                    "distractor_start_s": plan.distractor_start_s if plan.distractor else None,
                    "distractor_end_s": plan.distractor_end_s if plan.distractor else None,
                    "distractor_frames_dense": _frames_inside(
                        plan.duration_s, plan.distractor_start_s, plan.distractor_end_s, dense_k
                    )
                    if plan.distractor
                    else 0,
                    "defect": kind or None,
                    "on_disk": kind != "missing_clip",
                    "has_audio": plan.has_audio and kind not in ("missing_clip", "corrupt_clip"),
                }
            )
    return labels, plans, truth, defects


def _validate(params: dict[str, Any]) -> None:
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"synthetic corpus: {key}={params[key]!r} {why}. Fix it in config.yaml.")

    for key in ("n_train", "n_dev", "n_test"):
        if int(params[key]) < 0:
            raise bad(key, "must be >= 0")
    for key in ("width", "height"):
        if int(params[key]) < 16 or int(params[key]) % 2:
            raise bad(key, "must be an even number of pixels >= 16 (H.264 4:2:0)")
    if not 1 <= int(params["fps"]) <= 120:
        raise bad("fps", "must be between 1 and 120")
    if int(params["audio_rate"]) not in (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000):
        raise bad("audio_rate", "must be a standard AAC rate (8000-48000 Hz)")
    if int(params["audio_channels"]) not in (1, 2):
        raise bad("audio_channels", "must be 1 or 2")
    if params["max_duration_s"] is not None and float(params["max_duration_s"]) < 0.5:
        raise bad("max_duration_s", "must be >= 0.5 s or null")
    if params["cue"] not in CUES:
        raise bad("cue", f"must be one of {', '.join(CUES)}")
    for key in ("face_strength", "voice_strength", "label_noise"):
        if not 0.0 <= float(params[key]) <= 1.0:
            raise bad(key, "must be between 0 and 1")
    if not 0.0 <= float(params["nuisance"]) <= 2.0:
        raise bad("nuisance", "must be between 0 and 2")
    if not 0.0 <= float(params.get("mouth_motion", MOUTH_MOTION)) <= 5.0:
        raise bad("mouth_motion", "must be between 0 and 5")
    align_k = params.get("align_k", ALIGN_K)
    if align_k is not None and int(align_k) < 1:
        raise bad("align_k", "must be >= 1 (the aligned frame set's uniform_k)")
    length_s = params.get("event_length_s")
    if length_s is not None and not (
        len(length_s) == 2 and 0.0 < float(length_s[0]) <= float(length_s[1])
    ):
        raise ConfigError(
            f"synthetic corpus: event_length_s={length_s!r} must be null (tied to the dense "
            "frame count) or [min_s, max_s] with 0 < min_s <= max_s. Fix it in config.yaml."
        )
    if align_k is None and length_s is None and params["cue"] in EVENT_CUES:
        raise ConfigError(
            f"synthetic corpus: cue={params['cue']!r} ties the event length to the aligned "
            "frame set's uniform_k, but that set (audio.aligned_frame_set in frames.sets) has "
            "another policy. Set synthetic.event_length_s: [min_s, max_s] in config.yaml."
        )
    if "duration" in params:
        law = params["duration"]
        if set(law) - set(DURATION_LAW):
            raise bad("duration", f"has unknown keys (known: {', '.join(DURATION_LAW)})")
        if not 0 < float(law["min_s"]) <= float(law["median_s"]) <= float(law["max_s"]):
            raise bad("duration", "needs 0 < min_s <= median_s <= max_s")
        if float(law["sigma"]) <= 0 or not 0.0 <= float(law["tail_share"]) < 1.0:
            raise bad("duration", "needs sigma > 0 and 0 <= tail_share < 1")
        if float(law["tail_share"]) > 0 and (
            law["tail_max_s"] is None or float(law["tail_max_s"]) <= float(law["max_s"])
        ):
            raise bad("duration", "needs tail_max_s > max_s when tail_share > 0")
    if "label_counts" in params:
        counts = params["label_counts"]
        for split, key in zip(SPLITS, ("n_train", "n_dev", "n_test"), strict=True):
            per = counts.get(split) if isinstance(counts, dict) else None
            if not isinstance(per, dict) or set(per) != set(EMOTIONS):
                raise bad("label_counts", f"needs {split}: a count for each of {EMOTIONS}")
            if any(int(v) < 0 for v in per.values()) or sum(map(int, per.values())) != int(
                params[key]
            ):
                raise bad(
                    "label_counts",
                    f"{split} counts must be >= 0 and sum to the split size {params[key]}",
                )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _prepare_root(root: Path, params: dict[str, Any]) -> None:
    """Make ``root`` ours for these params: wipe a synthetic corpus made with other params,
    refuse to touch a directory that holds a corpus we did not make (e.g. real MELD)."""
    marker = _read_json(root / PARAMS_MARKER)
    ours = marker is not None or (root / CORPUS_JSON).exists()
    if ours and (marker or {}).get("params") != params:
        for split in SPLITS:
            (root / LABEL_FILES[split]).unlink(missing_ok=True)
            folder = root / SPLIT_DIRS[split]
            for f in folder.glob("*.mp4") if folder.is_dir() else ():
                f.unlink()
        (root / CORPUS_JSON).unlink(missing_ok=True)
        (root / TRUTH_CSV).unlink(missing_ok=True)
    elif not ours:
        foreign = [root / LABEL_FILES[s] for s in SPLITS if (root / LABEL_FILES[s]).exists()]
        foreign += [f for s in SPLITS for f in (root / SPLIT_DIRS[s]).glob("*.mp4")]
        if foreign:
            raise DataStageError(
                f"{root}: holds a corpus not made by the synthetic generator (e.g. {foreign[0]}). "
                "Point the synthetic corpus at an empty or synthetic-only folder."
            )
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / PARAMS_MARKER, {"params": params})
    # Temporary files of a killed run would look like clips to a glob: remove them.
    for split in SPLITS:
        folder = root / SPLIT_DIRS[split]
        for f in folder.glob(".*.mp4") if folder.is_dir() else ():
            f.unlink()


def _write_corrupt(path: Path, seed: int) -> None:
    """Garbage that no demuxer accepts: random bytes behind a text header."""
    data = b"NOT AN MP4 (injected defect)\n" + _rng(seed, 5).bytes(2048)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _write_truth_csv(path: Path, truth: list[dict[str, Any]]) -> None:
    """The planted ground truth as a flat CSV (docs/formats.md); empty cells for None."""
    with atomic_path(path, suffix=".csv") as tmp:
        pd.DataFrame(truth, columns=TRUTH_COLUMNS).to_csv(tmp, index=False)


def corpus_params(
    n_train: int,
    n_dev: int,
    n_test: int,
    seed: int,
    width: int = 96,
    height: int = 96,
    fps: int = 25,
    audio_rate: int = 48000,
    audio_channels: int = 2,
    inject_defects: bool = True,
    max_duration_s: float | None = None,
    cue: str = "event",
    face_strength: float = FACE_STRENGTH,
    voice_strength: float = VOICE_STRENGTH,
    label_noise: float = LABEL_NOISE,
    nuisance: float = NUISANCE,
    mouth_motion: float = MOUTH_MOTION,
    duration: dict[str, Any] | None = None,
    label_counts: dict[str, dict[str, int]] | None = None,
    align_k: int | None = ALIGN_K,
    event_length_s: list[float] | tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The validated generation parameters (``plan_corpus``'s input, recorded in corpus.json).

    ``duration`` and ``label_counts`` appear only when given, so a corpus made without them
    (demo, tiny) has the same parameters, plan and bytes as before presets could set them."""
    params: dict[str, Any] = {
        "generator_version": GENERATOR_VERSION,
        "n_train": int(n_train),
        "n_dev": int(n_dev),
        "n_test": int(n_test),
        "seed": int(seed),
        "width": int(width),
        "height": int(height),
        "fps": int(fps),
        "audio_rate": int(audio_rate),
        "audio_channels": int(audio_channels),
        "inject_defects": bool(inject_defects),
        "max_duration_s": None if max_duration_s is None else float(max_duration_s),
        "cue": str(cue),
        "face_strength": float(face_strength),
        "voice_strength": float(voice_strength),
        "label_noise": float(label_noise),
        "nuisance": float(nuisance),
    }
    # Recorded only when it differs from the default, so a corpus made before the setting
    # existed keeps its parameters (and is not re-rendered).
    if float(mouth_motion) != MOUTH_MOTION:
        params["mouth_motion"] = float(mouth_motion)
    if align_k != ALIGN_K:
        params["align_k"] = None if align_k is None else int(align_k)
    if event_length_s is not None:
        params["event_length_s"] = [float(x) for x in event_length_s]
    if duration is not None:
        params["duration"] = duration_law(duration)
    if label_counts is not None:
        params["label_counts"] = {
            split: {e: int(n) for e, n in per.items()} for split, per in label_counts.items()
        }
    _validate(params)
    return params


def generate_corpus(
    root: str | Path,
    n_train: int,
    n_dev: int,
    n_test: int,
    seed: int,
    workers: int = 1,
    width: int = 96,
    height: int = 96,
    fps: int = 25,
    audio_rate: int = 48000,
    audio_channels: int = 2,
    inject_defects: bool = True,
    max_duration_s: float | None = None,
    cue: str = "event",
    face_strength: float = FACE_STRENGTH,
    voice_strength: float = VOICE_STRENGTH,
    label_noise: float = LABEL_NOISE,
    nuisance: float = NUISANCE,
    mouth_motion: float = MOUTH_MOTION,
    duration: dict[str, Any] | None = None,
    label_counts: dict[str, dict[str, int]] | None = None,
    align_k: int | None = ALIGN_K,
    event_length_s: list[float] | tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Write the synthetic MELD-format corpus under ``root``; return a summary.

    ``n_train/n_dev/n_test`` labelled utterances per split; ``seed`` fixes everything;
    ``workers`` > 1 renders clips in that many processes (output does not depend on it);
    ``width``/``height`` (even), ``fps``, ``audio_rate``, ``audio_channels`` (1 or 2) set the
    streams; ``inject_defects`` adds MELD's defects (module docstring); ``max_duration_s`` caps
    clip durations (default: MELD's spread, 1-15 s); ``cue`` (``CUES``), ``face_strength``,
    ``voice_strength``, ``label_noise`` (0..1), ``nuisance`` (0..2) and ``mouth_motion``
    (0..5) set the planted causes and the difficulty (module docstring); ``duration`` (keys of
    ``DURATION_LAW``) and ``label_counts`` (split -> emotion -> rows, summing to the split
    sizes) replace the default duration law and label quotas (``corpus_params``);
    ``align_k`` (the aligned frame set's ``uniform_k``, None for another policy) and
    ``event_length_s`` (None: tied to align_k; [lo, hi]: U(lo, hi) s) set the event length. Raises
    ConfigError for bad parameters and DataStageError when ``root`` holds a corpus this
    generator did not make.

    Clips already on disk are kept (each was written atomically, so it is complete) and only the
    missing ones are rendered; ``corpus.json`` is written last, so its presence with equal
    parameters means the corpus is complete and the call returns at once. A ``root`` made with
    other parameters is wiped first. Summary keys: ``root, clips, written, skipped, seconds,
    label_counts`` (split -> emotion -> rows), ``defects`` (kind -> split, clip_name, file).
    """
    t0 = time.perf_counter()
    root = Path(root)
    params = corpus_params(
        n_train=n_train,
        n_dev=n_dev,
        n_test=n_test,
        seed=seed,
        width=width,
        height=height,
        fps=fps,
        audio_rate=audio_rate,
        audio_channels=audio_channels,
        inject_defects=inject_defects,
        max_duration_s=max_duration_s,
        cue=cue,
        face_strength=face_strength,
        voice_strength=voice_strength,
        label_noise=label_noise,
        nuisance=nuisance,
        mouth_motion=mouth_motion,
        duration=duration,
        label_counts=label_counts,
        align_k=align_k,
        event_length_s=event_length_s,
    )
    labels, plans, truth, defects = plan_corpus(root, params)
    summary: dict[str, Any] = {
        "root": str(root),
        "clips": sum(t["on_disk"] for t in truth),
        "label_counts": {
            s: {str(k): int(v) for k, v in labels[s]["emotion"].value_counts().items()}
            for s in SPLITS
        },
        "defects": defects,
    }

    existing = _read_json(root / CORPUS_JSON)
    on_disk = [Path(p.path) for p, t in zip(plans, truth, strict=True) if t["on_disk"]]
    if (
        existing is not None
        and existing.get("params") == params
        and all(p.exists() for p in on_disk)
        and all((root / LABEL_FILES[s]).exists() for s in SPLITS)
    ):
        return {
            **summary,
            "written": 0,
            "skipped": len(on_disk),
            "seconds": time.perf_counter() - t0,
        }

    _prepare_root(root, params)
    (root / CORPUS_JSON).unlink(missing_ok=True)  # rewritten last, once everything is there
    for split in SPLITS:
        meld.write_labels(labels[split], root / LABEL_FILES[split])
        (root / SPLIT_DIRS[split]).mkdir(parents=True, exist_ok=True)

    todo: list[ClipPlan] = []
    n_corrupt = 0
    for plan, t in zip(plans, truth, strict=True):
        path = Path(plan.path)
        if t["defect"] == "missing_clip":
            path.unlink(missing_ok=True)
        elif path.exists():
            continue
        elif t["defect"] == "corrupt_clip":
            _write_corrupt(path, params["seed"])
            n_corrupt += 1
        else:
            todo.append(plan)
    todo.sort(key=lambda p: -p.n_frames)  # longest first: better load balance

    bar = progress(total=len(todo), desc="synthetic clips", unit="clip", disable=not todo)
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for fut in as_completed([pool.submit(render_clip, p) for p in todo]):
                fut.result()
                bar.update()
    else:
        for plan in todo:
            render_clip(plan)
            bar.update()
    bar.close()

    _write_truth_csv(root / TRUTH_CSV, truth)
    write_json(
        root / CORPUS_JSON,
        {
            "params": params,
            "clips": truth,
            "defects": defects,
            "plans": [asdict(p) | {"path": t["file"]} for p, t in zip(plans, truth, strict=True)],
        },
    )
    written = len(todo) + n_corrupt
    return {
        **summary,
        "written": written,
        "skipped": len(on_disk) - written,
        "seconds": time.perf_counter() - t0,
    }
