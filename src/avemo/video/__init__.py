"""Frames stage: sample, decode, crop and store video frames (docs/formats.md section 3)."""

from __future__ import annotations

from avemo.video.sampling import POLICIES, STUDY_EVERY_S, sample_times
from avemo.video.store import FrameStore, ShardWriter

__all__ = ["POLICIES", "STUDY_EVERY_S", "FrameStore", "ShardWriter", "sample_times"]
