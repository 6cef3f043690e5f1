"""The delay line over several processes: one forked worker per share of the queues (one
per core), the parent owning the rules. Touches the kernel (fork, signals, iptables).

The parent forks the workers; each binds its queues and reports on a pipe ("ok" or the
error). Only when every worker is bound does the parent install the rules (until then no
packet is queued), listen on the ready socket and print `{"ready": ...}`. On SIGTERM/SIGINT
the parent closes the ready socket and removes the rules first (the workers keep releasing
meanwhile), then stops each worker by PID; each worker releases what it holds when due and
prints its own `{"stats": ...}` line. SIGHUP is ignored here (with a message): a
configuration change needs a restart.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import time

from . import delayserver
from .delayapply import RuleRemoval, install_rules

READY_TIMEOUT_S = 10


def _worker(group, config, report_fd: int) -> int:
    own = dataclasses.replace(config, links=tuple(dataclasses.replace(link, device="")
                                                  for link in config.links))
    try:
        server = delayserver.Server(delayserver.bind_queues(group, own), own)
    except OSError as error:
        os.write(report_fd, f"error {error}\n".encode())
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, server.request_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the parent answers it
    os.write(report_fd, b"ok\n")
    os.close(report_fd)
    stats = server.serve()
    delayserver.emit("stats", dataclasses.asdict(stats))
    return 0


def _fork(group, config) -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        code = 1
        try:
            code = _worker(group, config, write_fd)
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _report(read_fd: int) -> str:
    with os.fdopen(read_fd) as handle:
        return handle.readline().strip() or "error: worker exited"


def _stop(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def run_workers(config, assignments) -> int:
    groups = [g for g in (assignments[i::config.workers] for i in range(config.workers)) if g]
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    signal.signal(signal.SIGHUP, delayserver.ignore_reload)  # reloading workers: not supported
    children = [_fork(group, config) for group in groups]
    pids = [pid for pid, _ in children]
    reports = [_report(fd) for _, fd in children]
    failed = [r for r in reports if r != "ok"]
    if failed:
        print(f"delayline: {failed[0]}", file=sys.stderr)
        _stop(pids)
        return 1
    try:
        install_rules(config)
    except RuntimeError as error:
        print(f"delayline: {error}", file=sys.stderr)
        _stop(pids)
        return 1
    ready = delayserver.listen_ready(config.ready_socket)
    delayserver.emit("ready", {"pid": os.getpid(), "workers": pids, "queues": [q for _, q in assignments]})
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    if not stop:  # a signal that came before the mask was handled; later ones wait here
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    delayserver.close_ready(ready, config.ready_socket)
    removal = RuleRemoval(config)
    while not removal.done():
        time.sleep(0.01)
    _stop(pids)
    return 0
