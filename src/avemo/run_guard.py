"""What the Snakefile does before any job: check the config files and results_dir, lock it.

Two calls from the Snakefile:

- ``before_config(workflow, "config.yaml")`` at parse time, before the ``configfile:`` directive
  (Snakemake's own loader names neither the file nor the line of a problem): reads config.yaml,
  every ``--configfile`` overlay and ``--config``, and reports each problem in the file and on
  the line that set the key; checks that results_dir can be created and written; removes the
  Snakemake lock a killed run left (``clear_stale_snakemake_locks``: only when the results
  folder's lock shows that run is gone, so a live run's lock is never touched); and puts this
  interpreter's ``bin`` folder on PATH so that jobs find its ``avemo`` even when Snakemake was
  started by its full path without activating the venv.
- ``on_start(config)`` from ``onstart:``, which Snakemake runs only in the main process of a real
  run (not for dry-runs, and not in jobs that re-run snakemake on a cluster node: those get
  ``--no-hooks``): locks results_dir for as long as this process lives, then removes temporary
  entries that killed jobs left behind (``avemo.atomic`` names them so they can be recognised).

Errors are AvemoErrors; inside Snakemake they are printed as one message, without the Python
frames Snakemake shows for an exception raised in a Snakefile.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import host_tag, temp_owner
from .config import ConfigSource, KeyPath, check_sources, locate, read_source
from .errors import AvemoError, ResultsDirError

LOCK_NAME = ".avemo.lock"
# A temporary entry written from another host cannot be checked for a live writer; one that
# nobody has modified for this long is taken as abandoned (writers add files continuously).
STALE_AFTER_S = 24 * 3600.0


def _logger() -> Any:
    from snakemake.logging import logger  # only when running under Snakemake

    return logger


@contextlib.contextmanager
def snakemake_errors() -> Iterator[None]:
    """Print an AvemoError as one message and stop the Snakemake run (exit status 1).

    Snakemake prints an exception raised in a Snakefile with the Python frames it passed
    through; SystemExit after logging the message gives the user only what they can act on.
    """
    try:
        yield
    except AvemoError as exc:
        _logger().error(f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from None


# ---------------------------------------------------------------- parse time (every process)

def before_config(workflow: Any, base: str = "config.yaml") -> dict[str, Any]:
    """The parse-time checks (see the module docstring); returns the merged, checked config."""
    with snakemake_errors():
        use_own_bin()
        sources = workflow_sources(workflow, base)
        cfg = check_sources(sources)
        # Jobs re-running snakemake (cluster nodes, group jobs) need not repeat the tree walk.
        if not (getattr(workflow, "remote_exec", False)
                or getattr(workflow, "subprocess_exec", False)):
            check_results_dir(cfg, where=locate("results_dir", sources) or "schema default")
            # Before Snakemake checks its own lock (after parsing, before onstart): a run killed
            # with -9 left it, and the same command must go on without --unlock.
            cleared = clear_stale_snakemake_locks(cfg["results_dir"])
            if cleared is not None:
                _logger().info(cleared)
    return cfg


def use_own_bin() -> Path | None:
    """Put the bin folder of the running interpreter first on PATH if its `avemo` is not found.

    Rules run `avemo <stage>` through the shell; `.venv/bin/snakemake` called by its full path
    leaves the venv off PATH, and every job would fail with `avemo: command not found`. Jobs
    (local, or sbatch with the exported environment) inherit os.environ.
    """
    for bindir in dict.fromkeys([Path(sys.executable).parent, Path(sys.prefix) / "bin"]):
        exe = bindir / "avemo"
        if not exe.is_file():
            continue
        found = shutil.which("avemo")
        if found and os.path.samefile(found, exe):
            return None
        path = os.environ.get("PATH", "")
        os.environ["PATH"] = f"{bindir}{os.pathsep}{path}" if path else str(bindir)
        return bindir
    return None


def _label(path: str | os.PathLike[str]) -> str:
    """A path as the user wrote it: relative to the working directory when inside it."""
    rel = os.path.relpath(os.path.abspath(path))
    return str(path) if rel.startswith("..") else rel


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _key_paths(data: Mapping[str, Any], prefix: KeyPath = ()) -> dict[KeyPath, int | None]:
    out: dict[KeyPath, int | None] = {}
    for key, value in data.items():
        out[(*prefix, str(key))] = None
        if isinstance(value, Mapping):
            out.update(_key_paths(value, (*prefix, str(key))))
    return out


def workflow_sources(workflow: Any, base: str = "config.yaml") -> list[ConfigSource]:
    """config.yaml, each --configfile overlay, then --config: the layers Snakemake merges.

    Snakemake 9 keeps the overlays in ``workflow.overwrite_configfiles`` (absolute paths, in
    command-line order) and the parsed ``--config`` in ``workflow.config_settings.config``; the
    ``configfile:`` directive merges the base file first and both of those over it.
    """
    settings = workflow.config_settings
    overlays = [Path(p) for p in (workflow.overwrite_configfiles or ())]
    cli = _plain(settings.config or {})
    sources: list[ConfigSource] = []
    replaced = settings.replace_workflow_config and settings.overwrite_config
    # Without overlays the base file must exist (read_source says so); with them it may not.
    if not replaced and (Path(base).exists() or not overlays):
        sources.append(read_source(base, _label(base)))
    sources += [read_source(p, _label(p)) for p in overlays]
    if cli:
        sources.append(ConfigSource("--config", cli, _key_paths(cli)))
    return sources


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


def _unwritable_dirs(root: Path, skip: set[Path]) -> list[Path]:
    bad: list[Path] = []
    for dirpath, dirnames, _ in os.walk(root, onerror=lambda e: bad.append(Path(e.filename))):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        if not _writable(here):
            bad.append(here)
    return bad


def check_results_dir(cfg: Mapping[str, Any], where: str = "config.yaml") -> Path:
    """Raise ResultsDirError unless results_dir can be created and every folder in it written.

    Checked before any job: otherwise the first job fails with a traceback that never names the
    folder, and its log, which would live under results_dir, stays empty.
    """
    root = Path(os.path.abspath(cfg["results_dir"]))
    what = f"results_dir {cfg['results_dir']!r} ({where})"
    fix = "set results_dir to a folder you can write"
    probe = root  # the nearest part of the path that exists decides whether the rest can be made
    while not os.path.lexists(probe):
        probe = probe.parent
    if probe.is_symlink() and not probe.exists():
        raise ResultsDirError(f"{what}: {probe} is a broken symbolic link; fix or remove it, "
                              f"or {fix}.")
    if not probe.is_dir():
        inside = "" if probe == root else f", so the folder {root} cannot be created inside it"
        raise ResultsDirError(f"{what}: {probe} is a regular file{inside}; move the file away, "
                              f"or {fix}.")
    # A read-only MELD copy under results_dir is an input, not something the run writes.
    skip = set()
    if cfg.get("dataset") == "meld":
        skip.add(Path(os.path.abspath(cfg["meld"]["root"])))
    bad = _unwritable_dirs(root, skip) if probe == root else ([] if _writable(probe) else [probe])
    if bad:
        more = f" (and {len(bad) - 1} more folders under it)" if len(bad) > 1 else ""
        user = _user()
        raise ResultsDirError(
            f"{what}: {bad[0]} is not writable by {user}{more}, so jobs cannot write their "
            f"outputs; make it writable (e.g. chmod -R u+w {bad[0]}), or {fix}."
        )
    return root


def _user() -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(os.geteuid()).pw_name}"
    except (ImportError, KeyError):
        return f"uid {os.geteuid()}"


# ------------------------------------------------------------------------ onstart (main only)

@dataclass
class ResultsLock:
    """An exclusive flock on <results_dir>/.avemo.lock; the kernel releases it when we exit."""

    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        _HELD.pop(self.path.parent, None)


# Locks this process holds: kept referenced (so the fd stays open) until the process exits.
_HELD: dict[Path, ResultsLock] = {}


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except ValueError:
        info = {}
    if not info:
        return "another process (it has not recorded itself yet)"
    return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, started "
            f"{info.get('started', '?')} in {info.get('cwd', '?')} ({info.get('command', '?')})")


def acquire_results_lock(results_dir: str | os.PathLike[str]) -> ResultsLock | None:
    """Lock results_dir for this process, or raise ResultsDirError naming who holds it.

    Returns None (after a warning) where the file system has no locks.
    """
    root = Path(os.path.abspath(results_dir))
    if root in _HELD:
        return _HELD[root]
    path = root / LOCK_NAME
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ResultsDirError(f"results_dir {root}: cannot create {path} ({exc.strerror}); "
                              f"make the folder writable or set results_dir elsewhere.") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise ResultsDirError(
            f"results_dir {root} is in use by another run: {holder}. Two runs writing the same "
            f"results overwrite each other's files. Wait for that run to end (or stop it), or "
            f"give this one its own results_dir; the lock ({path}) is released when that "
            f"process exits."
        ) from None
    except OSError as exc:  # e.g. ENOLCK on a network file system without lock support
        os.close(fd)
        _logger().warning(f"results_dir {root}: cannot be locked ({exc.strerror}); nothing "
                          f"stops a second run from writing the same folder.")
        return None
    info = {"pid": os.getpid(), "host": socket.gethostname(), "cwd": os.getcwd(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    lock = _HELD[root] = ResultsLock(path, fd)
    return lock


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OverflowError, OSError):
        return False
    return True


def _newest_mtime(entry: Path) -> float:
    newest = entry.lstat().st_mtime
    if entry.is_dir() and not entry.is_symlink():
        for dirpath, dirnames, filenames in os.walk(entry):
            for name in (*dirnames, *filenames):
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
    return newest


def _abandoned(entry: Path, host: str, pid: int, max_age_s: float) -> bool:
    if host == host_tag():
        return not _pid_alive(pid)
    return time.time() - _newest_mtime(entry) > max_age_s


def remove_stale_temps(root: str | os.PathLike[str], max_age_s: float = STALE_AFTER_S
                       ) -> list[Path]:
    """Remove avemo.atomic's temporary entries under ``root`` whose writer is gone.

    Only names made by avemo.atomic are considered (``.avemo-tmp.<host>.<pid>.``); an entry is
    abandoned when its process no longer exists on this host, or, written from another host,
    when nothing in it changed for ``max_age_s``. Call it only while holding the results lock.
    """
    removed: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            owner = temp_owner(name)
            if owner is None:
                continue
            entry = Path(dirpath, name)
            if name in dirnames:
                dirnames.remove(name)  # never descend into a temporary folder
            try:
                if not _abandoned(entry, *owner, max_age_s):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            except OSError as exc:
                _logger().warning(f"could not remove stale temporary {entry}: {exc}")
                continue
            removed.append(entry)
    return removed


SNAKEMAKE_LOCKS = Path(".snakemake") / "locks"  # Snakemake's lock folder in the working dir


def _owning_results(path: str, cache: dict[Path, Path | None]) -> Path | None:
    """The nearest folder above ``path`` that holds a results lock (its results_dir)."""
    for folder in Path(os.path.abspath(path)).parents:
        if folder not in cache:
            cache[folder] = folder if (folder / LOCK_NAME).is_file() else None
        if cache[folder] is not None:
            return folder
    return None


def clear_stale_snakemake_locks(results_dir: str | os.PathLike[str],
                                lockdir: str | os.PathLike[str] = SNAKEMAKE_LOCKS) -> str | None:
    """Remove Snakemake's lock files when the run that wrote them is gone; say so, or None.

    A run killed with -9 (or a reboot) leaves ``.snakemake/locks``, and the next run stops
    with "Directory cannot be locked" until ``--unlock``. They are removed only when all of
    these hold, so a lock of a live run is never touched:

    - no process holds ``<results_dir>/.avemo.lock`` (a live run holds it from onstart on),
      and the process recorded in it, on this host, no longer exists;
    - every lock file is older than that record (a run that started since, and is between
      writing Snakemake's lock and taking ours, wrote newer ones);
    - every output a lock file names lies in this results_dir (not another results folder's
      run sharing the working directory).
    """
    locks = sorted(p for p in Path(lockdir).glob("*.lock") if p.is_file())
    ours = Path(os.path.abspath(results_dir))
    record = ours / LOCK_NAME
    if not locks or not record.is_file():
        return None
    try:
        fd = os.open(record, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held by a live run (or no lock support: cannot tell)
            return None
        try:
            info = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
            stamp = os.fstat(fd).st_mtime
        except ValueError:
            return None
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    pid = int(info.get("pid") or 0)
    if info.get("host") != socket.gethostname() or _pid_alive(pid):
        return None
    cache: dict[Path, Path | None] = {}
    for lock in locks:
        if lock.stat().st_mtime > stamp:
            return None
        if lock.name.endswith(".output.lock"):
            names = [line.strip() for line in lock.read_text().splitlines() if line.strip()]
            if any(_owning_results(n, cache) != ours for n in names):
                return None
    for lock in locks:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
    return (f"Removed Snakemake's lock ({lockdir}, {len(locks)} file(s)) left by an interrupted "
            f"run: pid {pid} on host {info.get('host')}, started {info.get('started', '?')}, "
            f"no longer runs, and no run holds {ours}. What it left unfinished is redone "
            f"(rerun-incomplete, set by the workflow's profiles).")


def on_error(config: Mapping[str, Any]) -> str | None:
    """After a failed run (``onerror:``): name a full results disk on the terminal, where the
    failed job's own message may not have been written (its log is on that disk)."""
    from .faults import disk_full_notice

    notice = disk_full_notice(os.path.abspath(config["results_dir"]))
    if notice is not None:
        _logger().error(f"DiskFullError: {notice}")
    return notice


def on_start(config: Mapping[str, Any]) -> ResultsLock | None:
    """Lock results_dir for this run, then remove temporary entries left by killed jobs."""
    with snakemake_errors():
        root = Path(os.path.abspath(config["results_dir"]))
        lock = acquire_results_lock(root)
        if lock is None:
            return None  # without the lock another run may be writing: leave its files alone
        removed = remove_stale_temps(root)
        if removed:
            names = [os.path.relpath(p, root) for p in removed]
            shown = ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10
                                             else "")
            _logger().info(f"Removed {len(removed)} stale temporary file(s)/folder(s) left "
                           f"under {root} by interrupted jobs: {shown}")
        return lock
