"""Shared fixtures: the repository root, running the real workflow on a tiny config, and the one
tiny run of the whole workflow that the workflow tests share (`tiny_run`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# The environment the session started with: commands that run in background threads (beside
# tests that monkeypatch os.environ) see this one.
ENVIRON = dict(os.environ)


def tool_env() -> dict[str, str]:
    """Environment whose PATH finds this interpreter's `avemo` and `snakemake`."""
    env = dict(ENVIRON)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def deep_update(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


TINY: dict[str, Any] = {
    "synthetic": {"preset": "tiny", "width": 48, "height": 48},
    "frames": {"size": 32},
    "audio": {"egemaps": True},
    "train": {
        "seeds": [0],
        "engine": {"epochs": 2, "patience": 0},
        "models": {"video_branch": {"engine": {"epochs": 2}}},
    },
    "evaluation": {"n_resamples": 200},
    # The fusion diagnosis (22 more fusion runs + cross-fitting) runs in the main tiny workflow
    # test only (tests/workflow/test_workflow_tiny.py).
    "fusion": {"diagnosis": False},
}


def write_config(workdir: Path, overrides: dict[str, Any] | None = None) -> Path:
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    deep_update(cfg, TINY)
    deep_update(cfg, overrides or {})
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run the real workflow (this repository's Snakefile) with `workdir` as working directory."""
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--profile", str(REPO / "workflow" / "profiles" / "default"), *args]
    return run_cmd(cmd, timeout=timeout, env=tool_env())


@pytest.fixture
def repo() -> Path:
    return REPO


# The full workflow, fusion diagnosis included (TINY leaves it off for runs of their own).
DIAGNOSIS: dict[str, Any] = {"fusion": {"diagnosis": True}}
# The stages before any model (results/ subfolders): the same for every tiny config here.
DATA_PARTS = ("data", "manifest", "frames", "audio")


# -- Builds that start at collection -------------------------------------------------------------
# A session's heavy builds (the shared tiny run, the DVC project) start in background threads as
# soon as the selected tests are known, so that they run beside the unit tests (one process)
# instead of one after another. Their commands go through `run_cmd`, so the session can stop
# them when it ends early.

_LIVE: set[subprocess.Popen[str]] = set()
_LIVE_LOCK = threading.Lock()


def run_cmd(cmd: list[str], *, timeout: float, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(cmd, capture_output=True, text=True, timeout=...)`, tracked while it runs
    so that the end of the session stops it (pytest_sessionfinish)."""
    with subprocess.Popen(cmd, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        with _LIVE_LOCK:
            _LIVE.add(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(cmd, timeout, out, err) from exc
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


_T0 = time.monotonic()  # (conftest is imported as the session starts)
# Each build's start and end, seconds after _T0: written at the session's end to the file named
# by AVEMO_BUILDS_LOG (benchmarks/suite.py shows them beside the suite's wall time).
_SPANS: dict[str, list[float]] = {}


class _Background:
    """`build(folder)` in a daemon thread; `get()` waits and returns or re-raises."""

    def __init__(self, name: str, build: Callable[[Path], Any], folder: Path) -> None:
        self._name = name
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(build, folder), daemon=True,
                                        name=f"build-{name}")
        self._thread.start()

    def _run(self, build: Callable[[Path], Any], folder: Path) -> None:
        _SPANS[self._name] = [time.monotonic() - _T0]
        try:
            self._result = build(folder)
        except BaseException as exc:  # noqa: BLE001 - handed to the fixture that waits
            self._error = exc
        finally:
            _SPANS[self._name].append(time.monotonic() - _T0)

    def get(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


_EARLY: dict[str, Callable[[Path], Any]] = {}  # fixture name -> its build
_AFTER: dict[str, tuple[str, ...]] = {}  # fixture name -> the builds its build waits for
_STARTED: dict[str, _Background] = {}
_FACTORY: list[pytest.TempPathFactory] = []  # the session's, once collection has finished


def start_early(fixture: str, build: Callable[[Path], Any], after: tuple[str, ...] = ()) -> None:
    """Register the build behind session/module fixture `fixture` (from a test module, at
    import): `build(fresh temporary folder)` starts at collection when a selected test uses
    `fixture`; the fixture returns `early_result(fixture, tmp_path_factory)`. `after`: the
    builds it waits for first (`early_dependency`); it orders the tests (see
    `pytest_collection_modifyitems`)."""
    _EARLY[fixture] = build
    _AFTER[fixture] = after


def _depth(fixture: str) -> int:
    """1 for a build that waits for nothing, 1 more for each build it waits for in a chain."""
    return 1 + max((_depth(f) for f in _AFTER.get(fixture, ())), default=0)


@pytest.hookimpl(trylast=True)  # after pytest's own grouping by fixture scope
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests run in the order their early builds finish: those that need none first (every
    unit test, and workflow tests that run on their own), then those that read a build,
    those that read a build made from another build's result last. The main process then
    runs tests while the builds run beside it, instead of waiting on a build it could have
    run a test beside (the suite's tail was tests that mostly wait: SLURM's polling)."""
    def rank(item: pytest.Item) -> int:
        used = set(getattr(item, "fixturenames", ())) & set(_EARLY)
        return max((_depth(f) for f in used), default=0)

    items.sort(key=rank)  # stable: the collection order within each rank


_START_LOCK = threading.Lock()  # builds may start their dependencies from their own threads


def _start(fixture: str, factory: pytest.TempPathFactory) -> _Background:
    with _START_LOCK:
        if fixture not in _STARTED:
            folder = factory.mktemp(fixture.replace("_", ""))
            _STARTED[fixture] = _Background(fixture, _EARLY[fixture], folder)
        return _STARTED[fixture]


def early_result(fixture: str, factory: pytest.TempPathFactory) -> Any:
    """The registered build's result: waits for it (started now if collection did not)."""
    return _start(fixture, factory).get()


def early_dependency(fixture: str) -> Any:
    """For a build that starts from another one's result (e.g. an experiment on the DVC
    project): waits for `fixture`'s build, started now if collection did not start it."""
    me = threading.current_thread().name.removeprefix("build-")
    if me in _EARLY:  # the tests' order relies on it (`pytest_collection_modifyitems`)
        assert fixture in _AFTER[me], f"start_early({me!r}, ..., after=...) must name {fixture!r}"
    result = _start(fixture, _FACTORY[0]).get()
    if me in _SPANS:  # its own work starts now
        _SPANS[me][0] = time.monotonic() - _T0
    return result


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    _FACTORY[:] = [session.config._tmp_path_factory]  # = the tmp_path_factory fixture
    used = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    for fixture in _EARLY:
        if fixture in used:
            _start(fixture, session.config._tmp_path_factory)  # = the tmp_path_factory fixture


_AT_END: list[Callable[[], Any]] = []


def at_session_end(cleanup: Callable[[], Any]) -> None:
    """Run `cleanup` when the session ends (after stopping running commands): for what an
    early build started that must outlive it (e.g. a SLURM cluster the tests then query)."""
    _AT_END.append(cleanup)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Commands still running when the session ends (interrupted, -x) are stopped: SIGTERM
    (Snakemake and DVC stop their jobs), SIGKILL after a minute; then `at_session_end`'s
    cleanups run, newest first."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        if proc.poll() is None:
            proc.terminate()
    for proc in live:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    while _AT_END:
        _AT_END.pop()()
    if log := os.environ.get("AVEMO_BUILDS_LOG"):
        Path(log).write_text(json.dumps(_SPANS, indent=1))


# -- The shared tiny run ----------------------------------------------------------------------

TINY_TIMEOUT = 1800  # seconds the shared tiny run may take


def _tiny_run(work: Path) -> Path:
    write_config(work, DIAGNOSIS)
    proc = snakemake(work, "--cores", "2", timeout=TINY_TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    return work


start_early("tiny_run", _tiny_run)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working directory of ONE real run of the whole workflow (`snakemake --cores 2`,
    TINY + DIAGNOSIS, from an empty folder), shared by the workflow tests: they read it, compare
    against it, or start from a copy of its data stages (`seed_data_stages`). A test that
    changes a file here puts it back as it was (content and mtime) before it ends. It starts
    at collection (see `start_early`)."""
    return early_result("tiny_run", tmp_path_factory)


def seed_data_stages(run: Path, dest: Path, parts: tuple[str, ...] = DATA_PARTS) -> None:
    """Give `dest` (a working directory whose config has the same data-stage settings as `run`)
    the outputs of `run`'s data stages and Snakemake's records of them (mtimes kept), so that
    Snakemake there finds them up to date and runs only what comes after: what a second run
    would do, without extracting the same tiny corpus again."""
    for part in parts:
        shutil.copytree(run / "results" / part, dest / "results" / part, symlinks=True)
    shutil.copytree(run / ".snakemake" / "metadata", dest / ".snakemake" / "metadata",
                    dirs_exist_ok=True)


def overfit_losses(model: Any, batch: dict[str, Any], lr: float, steps: int = 40) -> list[float]:
    """Train ``model`` on one batch with both heads' cross-entropy; the loss per step."""
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        out = model(batch)
        loss = torch.nn.functional.cross_entropy(out["emotion"], batch["emotion"])
        loss = loss + torch.nn.functional.cross_entropy(out["sentiment"], batch["sentiment"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
