"""Running `dataplane.probe` programs inside slivers for `vispd check`: one process per
sliver and phase, as the slice's user (or root for sniffers), all in parallel, each
bounded by a deadline and killed by PID when its phase ends; their JSON results read
back without blocking on any one of them.

I/O: processes in slivers, stopped by PID.
"""
from __future__ import annotations

import json
import os
import selectors
import shutil
import stat
import subprocess
import sys
import time

from .execute import sliver_command
from compiler.plan import SliverInfo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def probe_python() -> str:
    """An interpreter the slice users can run: ours, unless a directory on its way is closed
    to them (root's pyenv, say); then the system's python3 (the probe needs only the stdlib)."""
    if _open_to_everyone(os.path.realpath(sys.executable)):
        return sys.executable
    return shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or "python3"


def _open_to_everyone(path: str) -> bool:
    if not os.stat(path).st_mode & stat.S_IXOTH:
        return False
    directory = os.path.dirname(path)
    while True:
        if not os.stat(directory).st_mode & stat.S_IXOTH:
            return False
        if directory == os.path.dirname(directory):
            return True
        directory = os.path.dirname(directory)


def _probe_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": REPO,
            "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8"}


class Probe:
    """One `dataplane.probe` process in a sliver, and everything it has printed so far."""

    def __init__(self, info: SliverInfo, args: list[str], as_root: bool = False, stdin: bool = False):
        self.info = info
        self.name = args[0]
        argv = sliver_command(info.ns, info.uid, info.gid,
                              [probe_python(), "-m", "dataplane.probe", *args], as_root=as_root)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
                                     cwd=REPO, env=_probe_env())
        self.out = bytearray()
        self.err = bytearray()
        self.error: str | None = None

    def ready(self) -> bool:
        return b"\n" in self.out or self.proc.stdout.closed

    def drained(self) -> bool:
        return self.proc.stdout.closed and self.proc.stderr.closed

    def stop(self) -> None:
        """Kill the process (by PID) if it still runs, and release its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()

    def fail(self, why: str) -> None:
        tail = self.err.decode(errors="replace").strip().splitlines()[-1:]
        self.error = f"{self.name} probe in {self.info.ns}: {why}" + (f": {tail[0]}" if tail else "")

    def result(self) -> dict | None:
        """The probe's JSON (its last line of output), or None with `error` set."""
        if self.error is None and self.proc.returncode != 0:
            self.fail(f"exited {self.proc.returncode}")
        if self.error is not None:
            return None
        try:
            return json.loads(self.out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.fail("printed no JSON")
            return None


def pump(probes: list[Probe], deadline: float, done) -> None:
    """Read every probe's stdout and stderr until `done(probe)` holds for all, or the deadline."""
    selector = selectors.DefaultSelector()
    for probe in probes:
        for stream, buffer in ((probe.proc.stdout, probe.out), (probe.proc.stderr, probe.err)):
            if not stream.closed:
                selector.register(stream, selectors.EVENT_READ, buffer)
    try:
        while not all(done(p) for p in probes) and time.monotonic() < deadline:
            for key, _ in selector.select(deadline - time.monotonic()):
                chunk = os.read(key.fd, 65536)
                key.data.extend(chunk)
                if not chunk:
                    selector.unregister(key.fileobj)
                    key.fileobj.close()
    finally:
        selector.close()


def wait_ready(probes: list[Probe], deadline: float) -> None:
    pump(probes, deadline, Probe.ready)
    for probe in probes:
        if not probe.out.startswith(b"ready"):
            probe.fail("did not become ready")


def collect(probes: list[Probe], deadline: float) -> None:
    """Wait until every probe has exited (killing those past the deadline)."""
    pump(probes, deadline, Probe.drained)
    for probe in probes:
        try:
            probe.proc.wait(timeout=max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            probe.fail("timed out")
        probe.stop()


class Probes:
    """Every probe started in a phase; leaving the block kills whatever still runs."""

    def __init__(self) -> None:
        self.started: list[Probe] = []

    def start(self, *args, **kwargs) -> Probe:
        probe = Probe(*args, **kwargs)
        self.started.append(probe)
        return probe

    def __enter__(self) -> "Probes":
        return self

    def __exit__(self, *exc) -> None:
        for probe in self.started:
            probe.stop()
