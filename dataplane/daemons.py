"""Processes vispd runs for a topology (BIRD, ExaBGP, the egress manager), by PID.

Each daemon has, in the topology's run directory, its configuration files, `NAME.pid`,
`NAME.digest` (the planned resource's digest: a changed plan restarts it) and `NAME.log`
(stdout and stderr). A daemon is started without daemonising, in its own session, inside
its network namespace, and stopped by the PID vispd recorded — and only if that PID still
runs in the namespace vispd started it in, so a recycled PID is never signalled.

I/O: processes, PID files and configuration files in the run directory.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass

from . import netns
from .netns import alive


@dataclass(frozen=True)
class Running:
    name: str
    ns: str
    pid: int
    digest: str  # of the whole planned daemon
    launch: str  # of its namespace, command line and environment


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except FileNotFoundError:
        return None


def _netns_inode_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        return None


def _namespace_inode(ns: str) -> int | None:
    """Inode of namespace `ns` ("" is the one vispd itself runs in)."""
    try:
        return netns.inode(ns) if ns else os.stat("/proc/thread-self/ns/net").st_ino
    except FileNotFoundError:
        return None


def _terminate(pid: int, grace: float = 3.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def same_command_in(ns: str, argv: list[str]) -> list[int]:
    """PIDs running exactly `argv` in namespace `ns` (configs live in vispd's own run
    directory, so an exact command line is vispd's own daemon)."""
    wanted = _namespace_inode(ns)
    target = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if handle.read() != target:
                    continue
        except OSError:
            continue
        if _netns_inode_of(int(entry)) == wanted:
            found.append(int(entry))
    return found


class DaemonDirectory:
    def __init__(self, run_dir: str):
        self.run_dir = run_dir

    def path(self, leaf: str) -> str:
        return os.path.join(self.run_dir, leaf)

    def running(self, name: str) -> Running | None:
        """The daemon `name` if its recorded PID is alive in the namespace it was started in."""
        lines = (_read(self.path(f"{name}.pid")) or "").split("\n")
        if len(lines) < 3 or not lines[0].isdigit() or not lines[2].isdigit():
            return None
        pid, ns, inode = int(lines[0]), lines[1], int(lines[2])
        if not alive(pid) or _netns_inode_of(pid) != inode:
            return None
        digest, _, launch = (_read(self.path(f"{name}.digest")) or "").partition(" ")
        return Running(name, ns, pid, digest, launch)

    def namespace_of(self, name: str) -> str:
        lines = (_read(self.path(f"{name}.pid")) or "").split("\n")
        return lines[1] if len(lines) > 1 else ""

    def recorded(self) -> list[str]:
        """Names of every daemon with a PID file (alive or not)."""
        try:
            return sorted(f[:-4] for f in os.listdir(self.run_dir) if f.endswith(".pid"))
        except FileNotFoundError:
            return []

    def write_files(self, files: dict[str, str]) -> None:
        os.makedirs(self.run_dir, exist_ok=True)
        for leaf, content in files.items():
            os.makedirs(os.path.dirname(self.path(leaf)), exist_ok=True)
            tmp = self.path(leaf + ".tmp")
            with open(tmp, "w") as handle:
                handle.write(content)
            os.replace(tmp, self.path(leaf))

    def reload(self, name: str, files: dict[str, str], sig: int, digest: str, launch: str) -> bool:
        """Rewrite the files and signal the running daemon; False if it is not running."""
        running = self.running(name)
        if running is None:
            return False
        self.write_files(files)
        os.kill(running.pid, sig)
        self._write_digest(name, digest, launch)
        return True

    def _write_digest(self, name: str, digest: str, launch: str) -> None:
        with open(self.path(f"{name}.digest"), "w") as handle:
            handle.write(f"{digest} {launch}\n")

    def start(self, name: str, ns: str, argv: list[str], files: dict[str, str],
              env: dict[str, str], digest: str, launch: str = "") -> int:
        os.makedirs(self.run_dir, exist_ok=True)
        for pid in same_command_in(ns, argv):
            _terminate(pid)  # an instance whose PID file was lost: same argv, same namespace
        self.write_files(files)
        log = open(self.path(f"{name}.log"), "ab")
        full_env = {**os.environ, **env}
        try:
            context = netns.entered(ns) if ns else contextlib.nullcontext()
            with context:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.run_dir, env=full_env, start_new_session=True)
        finally:
            log.close()
        with open(self.path(f"{name}.pid"), "w") as handle:
            handle.write(f"{proc.pid}\n{ns}\n{_namespace_inode(ns)}\n")
        self._write_digest(name, digest, launch)
        return proc.pid

    def stop(self, name: str, grace: float = 3.0) -> None:
        """Stop the daemon by its recorded PID (TERM, then KILL), then forget it."""
        running = self.running(name)
        if running is not None:
            _terminate(running.pid, grace)
        for leaf in (f"{name}.pid", f"{name}.digest"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(leaf))
