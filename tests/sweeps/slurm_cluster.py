"""A real Slurm on this machine for the tests (Debian's slurm-wlm, munge, and a MariaDB
behind slurmdbd so that ``sacct`` answers as on a real cluster), of one node or more:
each node a slurmd of this machine (``slurmd -N <node>``, its own port, spool folder, pid
and log file). Partition ``cpu`` (the default) has the first node alone, ``all`` every node.

:func:`start_cluster` installs what is missing (as root, with apt), writes every file it
uses below one folder (configs, sockets, state, logs: nothing in /etc or /run), starts
munged, mariadbd, slurmdbd, slurmctld and the slurmds on free ports, and waits until the
nodes are idle. :meth:`SlurmCluster.stop` stops what it started. :class:`Unavailable` says why
there can be no cluster here (the tests then skip with that reason).

The daemons end with the process that started them, however it ends: each is started with
``PR_SET_PDEATHSIG`` (SIGTERM when its parent dies, also of SIGKILL or a time limit), and
``daemons.json`` in the cluster's folder names the owner and the daemons (pid and start
time), so that :func:`reap_leftovers`, called before a cluster starts, stops the daemons
of any earlier cluster whose owner is gone (and never those of a live one).

Clients find the cluster through ``SLURM_CONF`` (:attr:`SlurmCluster.env`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from imagenet_multilabel.core.processes import start_time

PACKAGES = ("slurm-wlm", "munge", "mariadb-server", "slurmdbd")
PROGRAMS = ("munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd")
PARTITION = "cpu"  # the first node alone (the default)
PARTITION_ALL = "all"  # every node
CLUSTER = "imltest"
DB_USER, DB_PASSWORD, DB_NAME = "slurm", "slurm-test", "slurm_acct_db"


class Unavailable(RuntimeError):
    """No Slurm can be started on this machine (the reason is the message)."""


def _missing() -> list[str]:
    return [p for p in PROGRAMS if shutil.which(p, path=_path()) is None]


def _path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])


def install(timeout_s: float = 900) -> None:
    """apt-get install the packages where a program is missing (root only); waits for
    another apt (dpkg lock) and retries."""
    if not _missing():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable(
            f"Slurm is not installed ({', '.join(_missing())} missing) and cannot be "
            f"installed here (needs root and apt-get): apt-get install {' '.join(PACKAGES)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    deadline = time.monotonic() + timeout_s
    commands = (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
    )
    for command in commands:
        while True:
            proc = subprocess.run(command, env=env, capture_output=True, text=True)
            if proc.returncode == 0:
                break
            locked = "lock" in (proc.stderr + proc.stdout).lower()
            if not locked or time.monotonic() > deadline:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise Unavailable(f"{' '.join(command[:2])} failed: {' / '.join(tail)}")
            time.sleep(10)  # another apt holds dpkg's lock
    if _missing():
        raise Unavailable(f"installed {' '.join(PACKAGES)} but {', '.join(_missing())} missing")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class SlurmCluster:
    root: Path
    host: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    pid_files: dict[str, Path] = field(default_factory=dict)
    startup_s: float = 0.0
    nodes: int = 1  # slurmd daemons on this machine, each a node of its own (slurmd -N)

    @property
    def node_names(self) -> list[str]:
        """The first node is this host; the others ``<host>-<n>`` (slurmd -N)."""
        return [self.host] + [f"{self.host}-{n}" for n in range(2, self.nodes + 1)]

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env_overrides(self) -> dict[str, str]:
        """What a client of this cluster (sbatch, sacct, submitit) needs in its environment."""
        return {"SLURM_CONF": str(self.conf), "PATH": _path()}

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.env_overrides}

    def run(self, *command: str, check: bool = True, timeout: float = 60) -> str:
        proc = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode:
            raise RuntimeError(f"{' '.join(command)}: {proc.stderr.strip() or proc.stdout}")
        return proc.stdout

    def log(self, name: str) -> str:
        path = self.root / "log" / f"{name}.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    # -- start ------------------------------------------------------------------------

    def _spawn(self, name: str, command: list[str], user: str | None = None) -> None:
        if user:
            command = ["runuser", "-u", user, "--", *command]
        out = open(self.root / "log" / f"{name}.out", "ab")  # noqa: SIM115 (the daemon's)
        self.procs[name] = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**self.env, "PATH": _path()},
            start_new_session=True,  # not in the test's process group (Ctrl-C)
            preexec_fn=_die_with_parent,
        )
        self._record()

    def _record(self) -> None:
        """daemons.json: the owner (this process) and each daemon, for :func:`reap_leftovers`."""
        me = os.getpid()
        record = {
            "owner": {"pid": me, "start": start_time(me)},
            "daemons": {
                n: {"pid": p.pid, "start": start_time(p.pid)} for n, p in self.procs.items()
            },
        }
        (self.root / DAEMONS).write_text(json.dumps(record))

    def _wait(self, what: str, ready, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(
                    f"{dead[0]} ended while waiting for {what}: "
                    + (self.log(dead[0]) or (self.root / "log" / f"{dead[0]}.out").read_text())[
                        -2000:
                    ]
                )
            time.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what}")

    def start(self) -> SlurmCluster:
        started = time.monotonic()
        for sub in ("log", "state", "spool", "munge", "db", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.db_port, self.dbd_port, self.ctld_port, *self.slurmd_ports = _free_ports(
            3 + self.nodes
        )
        self._start_munge()
        self._start_mariadb()
        self._write_configs()
        self._spawn("slurmdbd", ["slurmdbd", "-D"])  # slurmdbd.conf beside SLURM_CONF
        self._wait("slurmdbd", lambda: self._port_open(self.dbd_port))
        self.run("sacctmgr", "-i", "add", "cluster", CLUSTER)
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._wait("slurmctld", lambda: self._port_open(self.ctld_port))
        for node in self.node_names:
            (self.root / "spool" / node).mkdir(exist_ok=True)
            self._spawn(f"slurmd.{node}", ["slurmd", "-D", "-N", node, "-f", str(self.conf)])
        self._wait("the nodes to be idle", self._node_idle, timeout=90)
        self.startup_s = time.monotonic() - started
        return self

    @staticmethod
    def _port_open(port: int) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-N", "-o", "%t", check=False, timeout=20)
        return out.strip() != "" and all(s.strip() == "idle" for s in out.split())

    def _start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.munge_socket = self.root / "munge" / "munge.sock"
        self._spawn(
            "munged",
            [
                "munged",
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--pid-file={self.root / 'run' / 'munged.pid'}",
                f"--seed-file={self.root / 'munge' / 'munged.seed'}",
            ],
        )
        self._wait("munged", self.munge_socket.exists)

    def _start_mariadb(self) -> None:
        data = self.root / "db"
        self.db_socket = self.root / "run" / "mysqld.sock"
        subprocess.run(
            [
                "mariadb-install-db",
                f"--datadir={data}",
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=300,
        )
        self._spawn(
            "mariadbd",
            [
                "mariadbd",
                "--no-defaults",
                "--user=root",
                f"--datadir={data}",
                f"--socket={self.db_socket}",
                "--bind-address=127.0.0.1",
                f"--port={self.db_port}",
                f"--pid-file={self.root / 'run' / 'mysqld.pid'}",
                f"--log-error={self.root / 'log' / 'mariadbd.log'}",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M",
            ],
        )
        self._wait("mariadbd", lambda: self._port_open(self.db_port), timeout=120)
        sql = (
            f"CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}';"
            f"CREATE DATABASE IF NOT EXISTS {DB_NAME};"
            f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'127.0.0.1';"
        )
        subprocess.run(
            ["mariadb", f"--socket={self.db_socket}", "-u", "root", "-e", sql],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=60,
        )

    def _write_configs(self) -> None:
        r = self.root
        auth = f"AuthType=auth/munge\nAuthInfo=socket={self.munge_socket}\n"
        dbd = r / "slurmdbd.conf"
        dbd.write_text(
            auth + f"DbdHost=localhost\nDbdPort={self.dbd_port}\nSlurmUser=root\n"
            f"PidFile={r / 'run' / 'slurmdbd.pid'}\nLogFile={r / 'log' / 'slurmdbd.log'}\n"
            "StorageType=accounting_storage/mysql\n"
            f"StorageHost=127.0.0.1\nStoragePort={self.db_port}\n"
            f"StorageUser={DB_USER}\nStoragePass={DB_PASSWORD}\nStorageLoc={DB_NAME}\n"
        )
        dbd.chmod(0o600)
        self.conf.write_text(
            f"ClusterName={CLUSTER}\nSlurmctldHost={self.host}(127.0.0.1)\n"
            + auth
            + "CredType=cred/munge\n"
            f"SlurmctldPort={self.ctld_port}\nSlurmdPort={self.slurmd_ports[0]}\n"
            "SlurmUser=root\nSlurmdUser=root\n"
            f"StateSaveLocation={r / 'state'}\nSlurmdSpoolDir={r / 'spool' / '%n'}\n"
            f"SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}\n"
            f"SlurmdPidFile={r / 'run' / 'slurmd.%n.pid'}\n"
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}\n"
            f"SlurmdLogFile={r / 'log' / 'slurmd.%n.log'}\n"
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
            "SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n"
            "JobAcctGatherType=jobacct_gather/none\nJobCompType=jobcomp/none\n"
            "AccountingStorageType=accounting_storage/slurmdbd\n"
            f"AccountingStorageHost=localhost\nAccountingStoragePort={self.dbd_port}\n"
            f"AccountingStoragePass={self.munge_socket}\n"  # munged of slurmdbd's connections
            "MpiDefault=none\nReturnToService=2\nSwitchType=switch/none\n"
            "SchedulerType=sched/backfill\nSchedulerParameters=sched_interval=1\n"
            "MinJobAge=600\nKillWait=5\nInactiveLimit=0\nWaitTime=0\n"
            "SlurmctldTimeout=30\nSlurmdTimeout=30\nMessageTimeout=20\n"
            + "".join(
                f"NodeName={node} NodeHostname={self.host} NodeAddr=127.0.0.1 Port={port} "
                f"CPUs={self.cpus} State=UNKNOWN\n"
                for node, port in zip(self.node_names, self.slurmd_ports, strict=True)
            )
            + f"PartitionName={PARTITION} Nodes={self.host} Default=YES MaxTime=INFINITE "
            "State=UP OverSubscribe=NO\n"
            + (
                f"PartitionName={PARTITION_ALL} Nodes={','.join(self.node_names)} "
                "MaxTime=INFINITE State=UP OverSubscribe=NO\n"
                if self.nodes > 1
                else ""
            )
        )

    # -- stop -------------------------------------------------------------------------

    def stop(self) -> None:
        """Cancels what is left in the queue, then stops the daemons in reverse order."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run("scancel", "--full", "-u", "root", check=False)
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.procs.clear()
        (self.root / DAEMONS).unlink(missing_ok=True)


DAEMONS = "daemons.json"
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _alive(entry: dict) -> bool:
    return entry.get("start") is not None and start_time(int(entry["pid"])) == entry["start"]


def reap_leftovers(parent: Path | None = None) -> list[str]:
    """Stop the daemons of earlier clusters (``<tmp>/slurm-*/daemons.json``) whose owner
    is gone; returns what was stopped (``<folder>: <daemon> <pid>``)."""
    stopped = []
    for record_file in Path(parent or tempfile.gettempdir()).glob(f"slurm-*/{DAEMONS}"):
        try:
            record = json.loads(record_file.read_text())
        except (OSError, ValueError):
            continue
        if _alive(record.get("owner") or {}):
            continue  # a live test session's cluster
        live = {n: d for n, d in (record.get("daemons") or {}).items() if _alive(d)}
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for entry in live.values():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(entry["pid"]), sig)  # its session: the daemon and its helpers
            deadline = time.monotonic() + 20
            while any(_alive(d) for d in live.values()) and time.monotonic() < deadline:
                time.sleep(0.2)
        stopped += [f"{record_file.parent}: {n} {d['pid']}" for n, d in live.items()]
        record_file.unlink(missing_ok=True)
    return stopped


def start_cluster(root: Path | None = None, nodes: int = 1) -> SlurmCluster:
    """Install what is missing and start a cluster below ``root`` (a new folder in /tmp:
    short, for the sockets' path limit). Raises :class:`Unavailable` where Slurm cannot be
    installed; a cluster that fails to start is stopped and its error raised."""
    install()
    for line in reap_leftovers():
        print(f"stopped a daemon an earlier test session left running: {line}")
    cluster = SlurmCluster(Path(root or tempfile.mkdtemp(prefix="slurm-")), nodes=nodes)
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise
