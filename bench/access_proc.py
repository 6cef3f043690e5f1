"""Processes and probes for bench/access.py: everything started in a namespace through
`ip netns exec` (which execs in place, so the PID we hold is the program's own), kept in
one registry and stopped by PID, descendants included (pptpd forks pptpctrl and engines,
the pptp client a call manager): their PIDs are collected from /proc before the parent
is signalled, and any that outlive it are signalled by PID too.

I/O: processes in namespaces, stopped by PID with their descendants.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

import measure


def children_of(pid: int) -> list[int]:
    """Every descendant of `pid` (from /proc; best effort, processes come and go)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Procs:
    """The processes one bench run started."""

    def __init__(self, log_dir: str):
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self, ns: str, argv: list[str], log: str, env: dict | None = None) -> subprocess.Popen:
        handle = open(os.path.join(self.log_dir, log), "ab")
        try:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=handle, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env)
        finally:
            handle.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 5.0) -> None:
        """SIGTERM by PID, then SIGKILL; then the same for descendants that outlived it."""
        descendants = children_of(proc.pid) if proc.poll() is None else []
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        deadline = time.monotonic() + 3
        left = [p for p in descendants if alive(p)]
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [p for p in left if alive(p)]
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            with contextlib.suppress(Exception):
                self.stop(proc)
        self.procs.clear()

    def log(self, leaf: str, tail: int = 2000) -> str:
        try:
            with open(os.path.join(self.log_dir, leaf), errors="replace") as handle:
                return handle.read()[-tail:]
        except OSError:
            return ""


def run(ns: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=check)


def ipv4_of(ns: str, dev: str) -> str | None:
    """'A.B.C.D/LEN' of `dev` in `ns`, or None (no device, no address yet)."""
    out = subprocess.run(["ip", "-n", ns, "-j", "addr", "show", "dev", dev], capture_output=True, text=True).stdout
    try:
        return next(f"{a['local']}/{a['prefixlen']}" for link in json.loads(out) for a in link["addr_info"]
                    if a["family"] == "inet")
    except (ValueError, StopIteration, KeyError):
        return None


def has_link(ns: str, dev: str) -> bool:
    return subprocess.run(["ip", "-n", ns, "link", "show", "dev", dev], capture_output=True).returncode == 0


def pings(ns: str, target: str, wait: float = 0.5) -> bool:
    return run(ns, "ping", "-n", "-c", "1", "-W", str(wait), target).returncode == 0


def wait_for(predicate, timeout: float, step: float = 0.005, proc: subprocess.Popen | None = None,
             what: str = "condition"):
    """Poll until `predicate` holds; RuntimeError if `proc` exits or `timeout` passes first."""
    return measure.wait_for(predicate, timeout, step, proc=proc, what=what)
