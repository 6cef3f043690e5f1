"""The kernel's floor for installing a table (bench/bgp.py's `kernel` side). I/O (root).

Every receiver in the ingestion bench ends in the same place: N routes inserted into a
namespace's FIB. `KernelFloor` times that alone: a namespace of its own
(`STEM-PID-LABEL-krn`, a veth pair inside it for a gateway), the same N prefixes written
with vispd's batched netlink writer (dataplane/fib.py: packed messages, thousands per send,
one ack per batch) from this process, no BGP at all. Its time is what no receiver that
installs into a Linux FIB can beat on this machine, BIRD included (BIRD waits for an ack
per route); the ratios `*_vs_kernel_floor` say how far each receiver is above it.

Through the border the table goes into every egressing slice's FIB, each written by its
own helper process. `measure_fibs` times that too: `fibs` namespaces (`...-krnK`), one
forked writer each, all released at once; the time is from the first writer's start to
the last one's end. The kernel serialises route changes (the RTNL lock is one for the
machine, not per namespace), so two FIBs take well over one FIB's time even on two cores:
the border path's floor.
"""
from __future__ import annotations

import multiprocessing
import os
import resource
import subprocess
import time

from compiler.daemons.bird import generated_prefixes
from dataplane import netns
from dataplane.fib import Fib

GATEWAY_NET, GATEWAY = "10.255.0.1/30", "10.255.0.2"   # inside the floor's own namespace only


def _cpu_s(before, after) -> float:
    return round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 4)


def _timed_insert(fib: Fib, ops: list) -> dict:
    """Insert the table through `fib`: start and end (CLOCK_MONOTONIC, the same in every
    process), this process's CPU, the kernel's refusals."""
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    errors = fib.apply(ops)
    ended = time.perf_counter()
    return {"start": started, "end": ended, "cpu_s": _cpu_s(before, resource.getrusage(resource.RUSAGE_SELF)),
            "errors": len(errors)}


def _writer(fib: Fib, ops: list, go, results) -> None:
    """A forked writer of measure_fibs: waits for the start, inserts, reports."""
    go.wait()
    results.send(_timed_insert(fib, ops))
    results.close()


class KernelFloor:
    def __init__(self, label: str, routes: int, stem: str = "hb", fibs: int = 2):
        self.ns = f"{stem}-{os.getpid()}-{label}-krn"
        self.namespaces = [self.ns] + [f"{self.ns}{k}" for k in range(2, fibs + 1)]
        self.ops = [(prefix, GATEWAY, 21) for prefix in generated_prefixes(routes)]
        self.fibs: list[Fib] = []
        self.runs: list[dict] = []        # one FIB
        self.fibs_runs: list[dict] = []   # every FIB at once

    @property
    def fib(self) -> Fib | None:
        return self.fibs[0] if self.fibs else None

    def start(self) -> "KernelFloor":
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "add", ns], check=True)
            for command in (["link", "add", "va", "type", "veth", "peer", "name", "vb"],
                            ["addr", "add", GATEWAY_NET, "dev", "va"],
                            ["link", "set", "va", "up"], ["link", "set", "vb", "up"]):
                subprocess.run(["ip", "-n", ns, *command], check=True)
            with netns.entered(ns):   # the socket stays in the namespace it was made in
                self.fibs.append(Fib(78, 254, 20, metrics=(20, 40)))
        return self

    def _remove(self, fib: Fib) -> int:
        return len(fib.apply([(prefix, None, metric) for prefix, _, metric in self.ops]))

    def measure(self) -> dict:
        """Insert the table into one FIB, time it (wall and this process's CPU), then remove it again."""
        one = _timed_insert(self.fib, self.ops)
        run = {"seconds": round(one["end"] - one["start"], 4), "errors": one["errors"] + self._remove(self.fib),
               "cpu_s": one["cpu_s"]}
        self.runs.append(run)
        return run

    def measure_fibs(self) -> dict:
        """Insert the table into every FIB at once, a forked writer each; then remove it."""
        context = multiprocessing.get_context("fork")
        go = context.Event()
        pipes = [context.Pipe(duplex=False) for _ in self.fibs]
        writers = [context.Process(target=_writer, args=(fib, self.ops, go, sending), daemon=True)
                   for fib, (_, sending) in zip(self.fibs, pipes)]
        for writer in writers:
            writer.start()
        time.sleep(0.2)   # every writer is waiting
        go.set()
        each = [receiving.recv() for receiving, _ in pipes]
        for writer in writers:
            writer.join(timeout=10)
        run = {"seconds": round(max(w["end"] for w in each) - min(w["start"] for w in each), 4),
               "each_s": [round(w["end"] - w["start"], 4) for w in each],
               "cpu_s": round(sum(w["cpu_s"] for w in each), 4),
               "errors": sum(w["errors"] for w in each) + sum(self._remove(fib) for fib in self.fibs)}
        self.fibs_runs.append(run)
        return run

    def stop(self) -> None:
        for fib in self.fibs:
            fib.close()
        self.fibs = []
        for ns in self.namespaces:
            netns.remove(ns)   # a namespace already gone is no error
