"""A three-namespace path a -- r -- b with r forwarding, and the delay line on r, for the
delay line's tests and bench/delay.py. Touches the kernel (namespaces, veths, processes).

Namespaces are `hd-TAG-a`, `hd-TAG-r`, `hd-TAG-b` (TAG unique per run, so concurrent runs
never meet); `close()` stops every process started here by PID and removes exactly those
namespaces. Addresses are benchmarking space (198.18.0.0/15) and exist only inside them.
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid

from dataplane import netns

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A_ADDR, R_A_ADDR = "198.19.1.1", "198.19.1.2"
B_ADDR, R_B_ADDR = "198.19.2.1", "198.19.2.2"


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


class DelayLineProcess:
    """A running `python3 -m dataplane.delayline` (inside a namespace), stopped by PID."""

    def __init__(self, ns: str, args: list[str], ready_timeout: float = 15.0):
        self.argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "dataplane.delayline", *args]
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.ready = self.read_line("ready", ready_timeout)
        self.stats: list[dict] = []

    def read_line(self, key: str, timeout: float = 10.0) -> dict:
        """The value of the next stdout line carrying `key` (e.g. "ready", "reloaded")."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = self.proc.stdout.readline()
            if not line:
                break
            data = json.loads(line)
            if key in data:
                return data[key]
        self.kill()
        raise RuntimeError(f"delay line gave no {key!r} line: {self.proc.stderr.read().strip()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait for a clean exit; returns the exit code (stats in self.stats)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self.stats = [json.loads(line)["stats"] for line in out.splitlines() if "\"stats\"" in line]
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class DelayPath:
    """a -- r -- b; devices a-r/r-a and r-b/b-r; r forwards."""

    def __init__(self, tag: str | None = None):
        self.tag = tag or uuid.uuid4().hex[:6]
        self.a, self.r, self.b = (f"hd-{self.tag}-{x}" for x in "arb")
        self.procs: list[subprocess.Popen] = []
        self.lines: list[DelayLineProcess] = []

    def __enter__(self) -> "DelayPath":
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def build(self) -> None:
        for ns in (self.a, self.r, self.b):
            netns.create(ns)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        self._veth(self.a, "a-r", A_ADDR, self.r, "r-a", R_A_ADDR)
        self._veth(self.b, "b-r", B_ADDR, self.r, "r-b", R_B_ADDR)
        run(["ip", "-n", self.a, "route", "add", "default", "via", R_A_ADDR])
        run(["ip", "-n", self.b, "route", "add", "default", "via", R_B_ADDR])
        run(["ip", "netns", "exec", self.r, "sysctl", "-qw", "net.ipv4.ip_forward=1"])

    @staticmethod
    def _veth(ns1: str, if1: str, addr1: str, ns2: str, if2: str, addr2: str) -> None:
        run(["ip", "-n", ns1, "link", "add", if1, "type", "veth", "peer", "name", if2, "netns", ns2])
        for ns, ifname, addr in ((ns1, if1, addr1), (ns2, if2, addr2)):
            run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", ifname])
            run(["ip", "-n", ns, "link", "set", ifname, "up"])

    def popen(self, ns: str, argv: list[str], **kwargs) -> subprocess.Popen:
        """A background process in `ns`, stopped by PID at close()."""
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kwargs)
        self.procs.append(proc)
        return proc

    def exec(self, ns: str, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                              timeout=timeout)

    def delay_line(self, *args: str) -> DelayLineProcess:
        line = DelayLineProcess(self.r, list(args))
        self.lines.append(line)
        return line

    def stop_line(self, line: DelayLineProcess) -> int:
        """Stop a delay line started here (its stats land in line.stats); its exit code."""
        self.lines.remove(line)
        return line.stop()

    def rules(self) -> str:
        """r's raw and mangle tables as iptables-save prints them."""
        return "".join(self.exec(self.r, ["iptables-save", "-t", t]).stdout for t in ("raw", "mangle"))

    def close(self) -> None:
        for line in self.lines:
            with contextlib.suppress(Exception):
                line.stop(timeout=5)
            line.kill()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for ns in (self.a, self.r, self.b):
            if netns.exists(ns):
                netns.remove(ns)
