"""A two-node Slurm on this machine for `nox -s slurm` (scale-out.md §3.1, appendix B1):
slurmctld and two slurmd (n1, n2) with configuration, state and logs in one scratch
directory; auth/none, so no munge daemon."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PLUGINS = Path("/usr/lib/x86_64-linux-gnu/slurm-wlm")
NODES = ("n1", "n2")
CONFIG = """\
ClusterName=ptest
SlurmctldHost={host}(127.0.0.1)
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation={scratch}/state
SlurmdSpoolDir={scratch}/spool/%n
SlurmctldPidFile={scratch}/slurmctld.pid
SlurmdPidFile={scratch}/slurmd-%n.pid
SlurmctldLogFile={scratch}/slurmctld.log
SlurmdLogFile={scratch}/slurmd-%n.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType={proctrack}
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
KillWait=2
SlurmdTimeout=10
NodeName=n1 NodeHostname={host} NodeAddr=127.0.0.1 Port=6821 CPUs=2 RealMemory=10000 State=UNKNOWN
NodeName=n2 NodeHostname={host} NodeAddr=127.0.0.1 Port=6822 CPUs=2 RealMemory=10000 State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
"""
CGROUP = "CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\nConstrainCores=no\n"


def available() -> str | None:
    """Why a Slurm cluster cannot be started here, or None."""
    if os.environ.get("PALAESTRIO_SLURM_TESTS") != "1":
        return "Slurm tests run in `nox -s slurm` (PALAESTRIO_SLURM_TESTS=1)"
    if os.geteuid() != 0:
        return "a test Slurm needs root"
    if not shutil.which("slurmctld") or not (PLUGINS / "auth_none.so").exists():
        return "slurm-wlm (with auth_none) is not installed"
    return None


@dataclass
class Cluster:
    scratch: Path
    env: dict[str, str]
    daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def run(self, *argv: str) -> str:
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=20)
        return done.stdout

    def idle_nodes(self) -> int:
        out = self.run("sinfo", "--noheader", "-t", "idle,mix,alloc", "-o", "%D")
        return sum(int(n) for n in out.split() if n.isdigit())

    def start_slurmd(self, node: str) -> None:
        conf = self.env["SLURM_CONF"]
        self.daemons[node] = subprocess.Popen(
            ["slurmd", "-D", "-f", conf, "-N", node],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_ready(self, nodes: int = 2, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.idle_nodes() < nodes:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Slurm not ready: {self.run('sinfo')}")
            time.sleep(0.1)

    def steps(self) -> list[str]:
        return self.run("squeue", "--steps", "--noheader", "-o", "%i %j %N").splitlines()

    def kill_node(self, node: str) -> list[int]:
        """Losing a machine: SIGKILL its slurmd, its steps' slurmstepd and their tasks."""
        jobs = self.run("squeue", "--noheader", "-w", node, "-o", "%i").split()
        victims = {self.daemons[node].pid}
        for procs in Path(f"/sys/fs/cgroup/freezer/slurm_{node}").rglob("cgroup.procs"):
            victims |= {int(pid) for pid in procs.read_text().split()}
        for pid in stepds():
            command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if any(f"[{job}." in command for job in jobs):
                victims.add(pid)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.daemons[node].wait()
        return sorted(victims)

    def revive(self, node: str, timeout: float = 60) -> None:
        """The node back, once Slurm has written off the jobs it lost with it (marking
        it down at once instead of waiting for SlurmdTimeout, which is flaky here)."""
        self.run("scontrol", "update", f"nodename={node}", "state=down", "reason=lost")
        deadline = time.monotonic() + timeout
        while self.run("squeue", "--noheader", "-w", node, "-o", "%i").split():
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobs stuck on {node}: {self.steps()}")
            time.sleep(0.2)
        self.start_slurmd(node)
        self.run("scontrol", "update", f"nodename={node}", "state=resume")
        self.wait_ready(timeout=timeout)

    def stop(self) -> None:
        """Every daemon, then whatever slurmstepd is left; nothing of Slurm survives."""
        for process in self.daemons.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.daemons.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid in stepds():
            os.kill(pid, signal.SIGKILL)
        for cgroup in Path("/sys/fs/cgroup/freezer").glob("slurm*"):
            for directory in sorted(cgroup.rglob("*"), key=lambda p: -len(p.parts)):
                if directory.is_dir():
                    directory.rmdir()
            cgroup.rmdir()


def stepds() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_text().startswith("slurmstepd"):
                found.append(int(entry))
        except OSError:
            continue
    return found


def start(scratch: Path) -> Cluster:
    for directory in ("state", "spool/n1", "spool/n2"):
        (scratch / directory).mkdir(parents=True, exist_ok=True)
    freezer = Path("/sys/fs/cgroup/freezer")
    proctrack = "proctrack/cgroup" if os.access(freezer, os.W_OK) else "proctrack/pgid"
    host = socket.gethostname().split(".")[0]
    conf = scratch / "slurm.conf"
    conf.write_text(CONFIG.format(host=host, scratch=scratch, proctrack=proctrack))
    (scratch / "cgroup.conf").write_text(CGROUP)
    cluster = Cluster(scratch, {**os.environ, "SLURM_CONF": str(conf)})
    cluster.daemons["ctld"] = subprocess.Popen(
        ["slurmctld", "-D", "-i", "-f", str(conf)],
        env=cluster.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for node in NODES:
        cluster.start_slurmd(node)
    try:
        cluster.wait_ready()
    except BaseException:
        cluster.stop()
        raise
    return cluster
