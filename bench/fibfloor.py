"""The kernel's floor for installing a table (bench/bgp.py's `kernel` side). I/O (root).

Every receiver in the ingestion bench ends in the same place: N routes inserted into a
namespace's FIB. `KernelFloor` times that alone: a namespace of its own
(`STEM-PID-LABEL-krn`, a veth pair inside it for a gateway), the same N prefixes written
with vispd's batched netlink writer (dataplane/fib.py: packed messages, thousands per send,
one ack per batch) from this process, no BGP at all. Its time is what no receiver that
installs into a Linux FIB can beat on this machine, BIRD included (BIRD waits for an ack
per route); the ratios `*_vs_kernel_floor` say how far each receiver is above it.
"""
from __future__ import annotations

import os
import resource
import subprocess
import time

from compiler.daemons.bird import generated_prefixes
from dataplane import netns
from dataplane.fib import Fib

GATEWAY_NET, GATEWAY = "10.255.0.1/30", "10.255.0.2"   # inside the floor's own namespace only


class KernelFloor:
    def __init__(self, label: str, routes: int, stem: str = "hb"):
        self.ns = f"{stem}-{os.getpid()}-{label}-krn"
        self.ops = [(prefix, GATEWAY, 21) for prefix in generated_prefixes(routes)]
        self.fib: Fib | None = None
        self.runs: list[dict] = []

    def start(self) -> "KernelFloor":
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        for command in (["link", "add", "va", "type", "veth", "peer", "name", "vb"],
                        ["addr", "add", GATEWAY_NET, "dev", "va"],
                        ["link", "set", "va", "up"], ["link", "set", "vb", "up"]):
            subprocess.run(["ip", "-n", self.ns, *command], check=True)
        with netns.entered(self.ns):   # the socket stays in the namespace it was made in
            self.fib = Fib(78, 254, 20, metrics=(20, 40))
        return self

    def measure(self) -> dict:
        """Insert the table, time it (wall and this process's CPU), then remove it again."""
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        errors = self.fib.apply(self.ops)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        removed = self.fib.apply([(prefix, None, metric) for prefix, _, metric in self.ops])
        run = {"seconds": round(seconds, 4), "errors": len(errors) + len(removed),
               "cpu_s": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 4)}
        self.runs.append(run)
        return run

    def stop(self) -> None:
        if self.fib is not None:
            self.fib.close()
            self.fib = None
        if netns.exists(self.ns):
            subprocess.run(["ip", "netns", "del", self.ns], check=False)
