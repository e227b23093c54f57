"""A real one-node SLURM cluster (with accounting) on this host, for the workflow's SLURM tests.

`slurm_cluster()` installs Debian's slurm-wlm, munge, slurmdbd and mariadb-server when missing,
starts munged, mariadbd, slurmdbd, slurmctld and slurmd itself (there is no systemd here and the
package scripts cannot start services) and stops every daemon it started, by PID, on exit.

Why accounting: the Snakemake SLURM plugin polls job states with `sacct`; without slurmdbd
`sacct` fails, the plugin drops the job after a few failures and Snakemake never returns.

Why /etc/slurm/slurm.conf: the plugin strips SLURM_* variables (SLURM_CONF included) before the
nested `srun` inside each job, so clients must find the configuration at its default path. Any
existing slurm.conf/slurmdbd.conf is put back on exit, and a host-wide lock keeps two clusters
from fighting over that path and the daemons' ports.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge", "slurmdbd", "mariadb-server")
NEEDED = ("slurmctld", "slurmd", "slurmdbd", "sbatch", "sacct", "sacctmgr", "munged", "mariadbd")
SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
ETC = Path("/etc/slurm")
LOCK = Path("/run/avemo-slurm-test.lock")
ACCOUNT = "avemo"
PARTITION = "debug"
DB_USER, DB_PASS = "slurm", "avemo-test"


class ClusterUnavailable(RuntimeError):
    """The cluster cannot start here (no root, apt unreachable, a daemon will not start)."""


@dataclass
class Cluster:
    """A running cluster: where its files are and how to reach it."""

    root: Path
    node: str
    cpus: int
    mem_mb: int
    partition: str = PARTITION
    account: str = ACCOUNT
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)  # daemons we started

    @property
    def env(self) -> dict[str, str]:
        """Environment for SLURM clients (sbatch, sacct, snakemake) talking to this cluster."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(ETC / "slurm.conf")
        return env

    def run(self, *cmd: str, check: bool = True, timeout: int = 60) -> str:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
        return proc.stdout

    def sacct(self, fields: str, job: str | None = None) -> list[dict[str, str]]:
        """Allocation rows (no job steps) from `sacct -X -a`, one dict per job keyed by field.

        `job` filters here, not with `sacct -j`: on this setup `-j` can return a stub record
        (JobName "allocation", no requests) for a job that the unfiltered query shows fully.
        """
        fields = fields if fields.startswith("JobID,") else f"JobID,{fields}"
        out = self.run("sacct", "-X", "-a", "-n", "-P", f"--format={fields}")
        names = fields.split(",")
        rows = [dict(zip(names, line.split("|"), strict=True)) for line in out.splitlines()]
        return [r for r in rows if job is None or r["JobID"] == job]

    def log(self, daemon: str) -> str:
        path = self.root / "log" / f"{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (f"{d}/{name}" for d in SBIN if os.access(f"{d}/{name}", os.X_OK)), None
    )


def ensure_packages(timeout: int = 600) -> None:
    """apt-get install the SLURM/munge/MariaDB packages unless every binary is already there."""
    if all(_which(n) for n in NEEDED):
        return
    if os.geteuid() != 0:
        raise ClusterUnavailable(f"SLURM packages missing and not root to install {PACKAGES}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    steps = (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES])
    for cmd in steps:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterUnavailable(f"{' '.join(cmd)}: {exc}") from exc
        if proc.returncode != 0:
            raise ClusterUnavailable(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    missing = [n for n in NEEDED if not _which(n)]
    if missing:
        raise ClusterUnavailable(f"installed {PACKAGES} but still missing {missing}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check, what: str, timeout: float, log: Path | None = None) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise ClusterUnavailable(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


def _daemon(
    procs: dict[str, subprocess.Popen],
    name: str,
    cmd: list[str],
    log_dir: Path,
    user: str | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Run a daemon in the foreground as our child, so we own its PID and reap it."""
    with (log_dir / f"{name}.out").open("w") as out:
        procs[name] = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            user=user, env=env, start_new_session=True,
        )  # fmt: skip


def _stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM, SIGKILL after `timeout`; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _munge_works() -> bool:
    enc = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
    if enc.returncode != 0:
        return False
    dec = subprocess.run(["unmunge"], input=enc.stdout, capture_output=True, timeout=10)
    return dec.returncode == 0


def _start_munge(procs: dict[str, subprocess.Popen], log_dir: Path) -> None:
    """Reuse a working munged (not ours to stop); otherwise start one and remember its PID."""
    if _munge_works():
        return
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True)
    munge = pwd.getpwnam("munge")
    for d in (key.parent, Path("/run/munge"), Path("/var/lib/munge"), Path("/var/log/munge")):
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, munge.pw_uid, munge.pw_gid)
    os.chown(key, munge.pw_uid, munge.pw_gid)
    key.chmod(0o600)
    _daemon(procs, "munged", [_which("munged"), "--foreground"], log_dir, user="munge")
    _wait(_munge_works, "munged", 15, log_dir / "munged.log")


def _start_mariadb(root: Path, procs: dict[str, subprocess.Popen]) -> int:
    """A private MariaDB (own datadir, socket, TCP port on 127.0.0.1) holding slurm_acct_db."""
    mysql = pwd.getpwnam("mysql")
    data, run = root / "mysql", root / "mysqld"
    sock = run / "mysqld.sock"
    for d in (data, run):  # mysqld (user mysql) writes its files and socket here
        d.mkdir()
        os.chown(d, mysql.pw_uid, mysql.pw_gid)
    subprocess.run(
        [_which("mariadb-install-db"), "--no-defaults", f"--datadir={data}", "--user=mysql",
         "--auth-root-authentication-method=socket", "--skip-test-db"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    port = _free_port()
    log = root / "log" / "mariadbd.log"
    _daemon(
        procs,
        "mariadbd",
        [_which("mariadbd"), "--no-defaults", "--user=mysql", f"--datadir={data}",
         f"--socket={sock}", f"--pid-file={run / 'mysqld.pid'}", f"--port={port}",
         "--bind-address=127.0.0.1", "--innodb-buffer-pool-size=32M",
         "--skip-log-bin"],
        root / "log",
    )  # fmt: skip
    sql = ["mariadb", "--no-defaults", f"--socket={sock}", "-uroot", "-e"]
    _wait(lambda: subprocess.run([*sql, "SELECT 1"], capture_output=True).returncode == 0,
          "mariadbd", 60, log)  # fmt: skip
    grant = (
        f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASS}';"
        f"CREATE DATABASE slurm_acct_db;"
        f"GRANT ALL ON slurm_acct_db.* TO '{DB_USER}'@'127.0.0.1';"
    )
    subprocess.run([*sql, grant], check=True, capture_output=True, timeout=30)
    return port


def _write_configs(root: Path, node: str, cpus: int, mem_mb: int, db_port: int) -> None:
    ports = {"ctld": _free_port(), "slurmd": _free_port(), "dbd": _free_port()}
    (root / "state").mkdir()
    (root / "spool").mkdir()
    slurm_conf = f"""\
ClusterName=avemo
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ports["ctld"]}
SlurmdPort={ports["slurmd"]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
# No cgroups in this container: track processes by /proc, bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={ports["dbd"]}
AccountingStorageEnforce=associations
# Keep sbatch --comment (the plugin writes rule_<name>_wildcards_<...> there) in sacct.
AccountingStoreFlags=job_comment
MinJobAge=300
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MpiDefault=none
KillWait=5
# The node may be declared bigger than the host (the workflow's profile asks for several CPUs
# and GBs per rule); config_overrides makes slurmd trust this file, not the hardware.
SlurmdParameters=config_overrides
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""
    dbd_conf = f"""\
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={ports["dbd"]}
SlurmUser=root
PidFile={root}/slurmdbd.pid
LogFile={root}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={db_port}
StorageUser={DB_USER}
StoragePass={DB_PASS}
StorageLoc=slurm_acct_db
"""
    ETC.mkdir(parents=True, exist_ok=True)
    (ETC / "slurm.conf").write_text(slurm_conf)
    (ETC / "slurmdbd.conf").write_text(dbd_conf)
    (ETC / "slurmdbd.conf").chmod(0o600)  # slurmdbd refuses a world-readable password file


@contextlib.contextmanager
def _etc_backup() -> Iterator[None]:
    """Put back whatever slurm.conf / slurmdbd.conf were there before."""
    saved = {p: p.read_bytes() for p in (ETC / "slurm.conf", ETC / "slurmdbd.conf") if p.exists()}
    try:
        yield
    finally:
        for p in (ETC / "slurm.conf", ETC / "slurmdbd.conf"):
            if p in saved:
                p.write_bytes(saved[p])
            else:
                p.unlink(missing_ok=True)


def _dbd_up(env: dict[str, str]) -> bool:
    cmd = ["sacctmgr", "-n", "list", "cluster"]
    return subprocess.run(cmd, env=env, capture_output=True, timeout=10).returncode == 0


def _ctld_registered(cluster: Cluster) -> bool:
    out = cluster.run("sacctmgr", "-n", "-P", "show", "cluster", "avemo", "format=ControlHost",
                      check=False, timeout=10)  # fmt: skip
    return bool(out.strip())


def _node_idle(cluster: Cluster) -> bool:
    out = cluster.run("sinfo", "-h", "-N", "-o", "%T", check=False, timeout=10)
    return out.strip() in ("idle", "mixed")


@contextlib.contextmanager
def slurm_cluster(cpus: int = 2, mem_mb: int | None = None) -> Iterator[Cluster]:
    """Install (if needed) and run a one-node cluster with accounting; tear it down on exit.

    `cpus`/`mem_mb` are what the node declares (default: 2 CPUs, 90 % of RAM). They may exceed
    the host (slurmd trusts slurm.conf, nothing enforces limits without cgroups), so a test can
    schedule jobs with a real profile's requests side by side on a small machine. Raises
    ClusterUnavailable when the cluster cannot be started (callers skip with that reason).
    """
    if os.geteuid() != 0:
        raise ClusterUnavailable("a real SLURM cluster needs root (daemons, /etc/slurm)")
    ensure_packages()
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    lock = LOCK.open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # one test cluster per host at a time
    root = Path(tempfile.mkdtemp(prefix="avemo-slurm-"))
    root.chmod(0o755)  # mysqld runs as mysql and must reach its datadir
    (root / "log").mkdir()
    (root / "log").chmod(0o777)  # mysqld writes its error log here as user mysql
    node = socket.gethostname().split(".")[0]
    if mem_mb is None:
        mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.9)
    cluster = Cluster(root=root, node=node, cpus=cpus, mem_mb=mem_mb)
    try:
        with _etc_backup():
            try:
                _start(cluster)
                yield cluster
            finally:
                _teardown(cluster)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        lock.close()


def _start(cluster: Cluster) -> None:
    """Start munge, MariaDB, slurmdbd (+ cluster/account/user), slurmctld, slurmd; wait idle."""
    root, procs, env, logs = cluster.root, cluster.procs, cluster.env, cluster.root / "log"
    try:
        _start_munge(procs, logs)
        db_port = _start_mariadb(root, procs)
        _write_configs(root, cluster.node, cluster.cpus, cluster.mem_mb, db_port)
        _daemon(procs, "slurmdbd", [_which("slurmdbd"), "-D"], logs, env=env)
        _wait(lambda: _dbd_up(env), "slurmdbd", 30, logs / "slurmdbd.log")
        user = pwd.getpwuid(os.geteuid()).pw_name
        for args in (
            ("add", "cluster", "avemo"),
            ("add", "account", ACCOUNT, "Description=avemo tests", "Organization=avemo"),
            ("add", "user", user, f"Account={ACCOUNT}", f"DefaultAccount={ACCOUNT}"),
        ):
            cluster.run("sacctmgr", "-i", *args, timeout=30)
        _daemon(procs, "slurmctld", [_which("slurmctld"), "-D", "-i"], logs, env=env)
        _daemon(procs, "slurmd", [_which("slurmd"), "-D"], logs, env=env)
        _wait(lambda: _node_idle(cluster), "node idle", 60, logs / "slurmd.log")
        # Jobs submitted before slurmctld has registered with slurmdbd can end up in the
        # accounting database without their name and requests.
        _wait(lambda: _ctld_registered(cluster), "slurmctld in slurmdbd", 30, logs / "slurmdbd.log")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        raise ClusterUnavailable(f"cluster start failed: {exc} {detail}") from exc
    dead = [n for n, p in procs.items() if p.poll() is not None]
    if dead:
        raise ClusterUnavailable(f"daemons exited during start: {dead}; logs in {logs}")


def _teardown(cluster: Cluster) -> None:
    """Cancel what is left, then stop the daemons we started, newest first."""
    if "slurmctld" in cluster.procs:
        with contextlib.suppress(Exception):
            cluster.run("scancel", "--full", "-u", pwd.getpwuid(os.geteuid()).pw_name, check=False)
    for proc in reversed(list(cluster.procs.values())):
        _stop(proc)


if __name__ == "__main__":  # manual check: python tests/workflow/slurm_cluster.py
    t0 = time.monotonic()
    with slurm_cluster() as c:
        print(f"up in {time.monotonic() - t0:.1f} s:\n{c.run('sinfo')}")
        jid = c.run("sbatch", "--parsable", f"-A{ACCOUNT}", "-J", "smoke", "-c", "1",
                    "--mem", "100", "-o", "/dev/null", "--wrap", "echo hi").strip()  # fmt: skip
        _wait(lambda: [r["State"] for r in c.sacct("State", jid)] == ["COMPLETED"],
              f"job {jid}", 60)  # fmt: skip
        print(c.sacct("JobID,JobName,State,ReqCPUS,ReqMem", jid))
    print(f"total {time.monotonic() - t0:.1f} s")
