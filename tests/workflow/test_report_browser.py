"""The error browser of the tiny workflow run's real report.html, clicked through in a real
headless Chromium: real frames, real clips' audio (AAC decoded, Opus re-encoded), real
predictions of every configured model."""

from __future__ import annotations

import pandas as pd
import pytest
from headless_chromium import BrowserUnavailable, assert_browsed, chromium, click_through

pytestmark = pytest.mark.slow


def test_tiny_report_error_browser(tiny_run):
    report = tiny_run / "results" / "report"
    table = pd.read_parquet(report / "tables" / "predictions.parquet")
    assert {"dev", "test"} == set(table["split"]) and table["has_video"].any()
    try:
        with chromium() as driver:
            seen = click_through(driver, str(report / "report.html"))
    except BrowserUnavailable as exc:
        pytest.skip(f"no headless browser: {exc}")
    assert_browsed(seen, min_audio_s=0.0)
    assert (report / "report.html").stat().st_size < 20e6
