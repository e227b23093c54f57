"""A real headless Chromium for the report's error-browser tests (Selenium + chromedriver).

Debian's ``chromium`` and ``chromium-driver`` are installed with apt-get when missing (root
only), as ``slurm_cluster`` does for SLURM; ``BrowserUnavailable`` says why a browser cannot
start here, and the tests skip with that reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

PACKAGES = ("chromium", "chromium-driver")
BINARIES = ("chromium", "chromedriver")


class BrowserUnavailable(RuntimeError):
    """No headless browser here (no selenium, not root to install, apt failed, no start)."""


def ensure_chromium(timeout: int = 900) -> None:
    """apt-get install Chromium and its driver unless both binaries are already there."""
    if all(shutil.which(b) for b in BINARIES):
        return
    if os.geteuid() != 0:
        raise BrowserUnavailable(f"{PACKAGES} missing and not root to apt-get install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BrowserUnavailable(f"{' '.join(cmd)}: {exc}") from exc
        if proc.returncode:
            raise BrowserUnavailable(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    missing = [b for b in BINARIES if not shutil.which(b)]
    if missing:
        raise BrowserUnavailable(f"installed {PACKAGES} but still missing {missing}")


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium WebDriver that records the page's console (``get_log("browser")``).
    Raises BrowserUnavailable when it cannot start."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        raise BrowserUnavailable(f"selenium is not installed ({exc}): make test installs it") \
            from exc
    ensure_chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--mute-audio", "--window-size=1200,900"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    except WebDriverException as exc:
        raise BrowserUnavailable(f"headless Chromium did not start: {exc.msg}") from exc
    try:
        yield driver
    finally:
        driver.quit()


def severe_logs(driver: Any) -> list[dict[str, Any]]:
    """The page's console errors (and failed loads) since the last call."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def click_through(driver: Any, html: str, timeout: float = 20.0) -> dict[str, Any]:
    """Open ``html`` (a path), click the error browser's confusion cells until one lists a
    clip with audio, wait for that audio to load; then the disagreements view. Returns what
    the page showed: ``cards``, ``audio`` (src prefix, duration, readyState, error),
    ``disagreements`` (the list's heading), ``rows`` (matrix rows under a class filter) and
    ``errors`` (console errors)."""
    from pathlib import Path

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(driver, timeout)
    driver.get(Path(html).resolve().as_uri())
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#eb-matrix button.eb-cell"))
    # Click cells in turn until one lists a clip with audio (a cell may hold only a clip
    # without an audio stream, which the page shows as "no audio").
    n_cells = len(driver.find_elements(By.CSS_SELECTOR, "#eb-matrix button.eb-cell"))
    for i in range(n_cells):
        driver.find_elements(By.CSS_SELECTOR, "#eb-matrix button.eb-cell")[i].click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#eb-list h3"))
        if driver.find_elements(By.CSS_SELECTOR, "#eb-list audio"):
            break
    cards = driver.find_elements(By.CSS_SELECTOR, "#eb-list .eb-card")
    # Metadata loads from the data: URI without playing; duration > 0 means Chromium decoded
    # the stream's header (a bad source sets audio.error instead).
    probe = (
        "const a=document.querySelector('#eb-list audio');"
        "return a&&{src:a.src.slice(0,30),duration:a.duration,ready:a.readyState,"
        "error:a.error&&a.error.code,canPlay:a.canPlayType('audio/webm; codecs=opus')};"
    )
    wait.until(lambda d: (lambda a: a is None or a["ready"] >= 1 or a["error"])(
        d.execute_script(probe)))
    audio = driver.execute_script(probe)
    thumbs = len(driver.find_elements(By.CSS_SELECTOR, "#eb-list .eb-frames img"))
    Select(driver.find_element(By.ID, "eb-class")).select_by_index(1)  # the first label
    rows = len(driver.find_elements(By.CSS_SELECTOR, "#eb-matrix table.eb-cm tr")) - 1
    Select(driver.find_element(By.ID, "eb-class")).select_by_index(0)
    dis = driver.find_element(By.ID, "eb-dis")
    heading = ""
    if dis.is_enabled():
        dis.click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#eb-list h3"))
        heading = driver.find_element(By.CSS_SELECTOR, "#eb-list h3").text
    return {"cards": len(cards), "audio": audio, "thumbnails": thumbs, "rows": rows,
            "disagreements": heading, "errors": severe_logs(driver)}


def assert_browsed(seen: dict[str, Any], min_audio_s: float) -> None:
    """What every click-through must have seen: no console errors, a cell's clip cards with
    thumbnails, and an embedded audio source the browser decoded (at least ``min_audio_s``)."""
    assert seen["errors"] == []
    assert seen["cards"] >= 1 and seen["thumbnails"] >= 1
    audio = seen["audio"]
    assert audio and audio["src"].startswith("data:audio/webm;base64,"), audio
    assert audio["error"] is None and audio["ready"] >= 1, audio
    assert audio["duration"] > min_audio_s, audio
