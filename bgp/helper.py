"""The ExaBGP API process (`python3 -m bgp.helper --config PATH`), run by ExaBGP inside the
egress sliver's network namespace. It owns the I/O loop only; decisions are speaker.py's.

A reader thread runs the blocking `for line in sys.stdin` loop ExaBGP needs (select +
readline strands lines in Python's buffer) and queues the lines; the main thread drains the
queue, feeds the speaker, and after each burst writes the coalesced FIB changes in one
netlink batch. A session change is handled at once: notice on the event socket, FIB flush,
status file. Commands go to stdout, flushed one by one; ExaBGP's `done`/`error` acks arrive
on stdin and settle the announcements. On SIGTERM/SIGINT or end of input (ExaBGP gone), the
helper withdraws every route it installed, reports the sessions down and exits."""
from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import sys
import threading
import time

from bgp import api
from compiler.daemons.speaker_config import load_config
from dataplane.fib import Fib
from bgp.report import Log, Notifier, StatusWriter
from bgp.speaker import Speaker

CONFIG_ENV = "VISPD_BGP_CONFIG"
FLUSH_AT = 4096            # pending FIB changes that force a flush mid-burst
LOG_BATCHES_FROM = 10000   # log the size and time of FIB batches at least this large
IDLE_TICK = 0.1            # seconds between checks for signals and due status writes
_EOF = object()


def _read_stdin(lines: queue.SimpleQueue) -> None:
    try:
        for line in sys.stdin:
            lines.put(line)
    finally:
        lines.put(_EOF)


class Helper:
    def __init__(self, config_path: str):
        self.config = load_config(config_path)
        self.log = Log(f"{self.config.slice}/{self.config.node}", self.config.log_file)
        self.speaker = Speaker(self.config, time.time())
        self.notifier = Notifier(self.config.event_socket, self.log)
        self.status = StatusWriter(self.config.status_file)
        self.fib = Fib(self.config.rt_proto, self.config.table, self.config.metric,
                       prefsrc=self.config.prefsrc)
        self.stopping = False

    # -- effects -----------------------------------------------------------------------
    def _command(self, command: str) -> None:
        sys.stdout.write(command + "\n")
        sys.stdout.flush()

    def _effects(self, effects) -> None:
        for notice in effects.notices:
            self.notifier.send(notice)
        for line in effects.logs:
            self.log.write(line)

    def _flush_fib(self) -> None:
        ops = self.speaker.take_fib_ops()
        if not ops:
            return
        started = time.monotonic()
        try:
            errors = self.fib.apply(ops)
        except OSError as exc:
            self.log.write(f"FIB: netlink failed ({exc}); resynchronising from the kernel")
            self.speaker.resync(self.fib.routes())
            return
        for line in self.speaker.fib_applied(ops, errors):
            self.log.write(line)
        if len(ops) >= LOG_BATCHES_FROM:
            self.log.write(f"FIB: {len(ops)} changes in {time.monotonic() - started:.3f} s, "
                           f"{len(self.speaker.installed)} routes installed")

    def _write_status(self, urgent: bool) -> None:
        now = time.time()
        if self.status.due(now, urgent):
            document = self.speaker.status(now)
            document["pid"] = os.getpid()
            document["exabgp_pid"] = os.getppid()
            document["running"] = not self.stopping
            try:
                self.status.write(document, now)
            except OSError as exc:
                self.log.write(f"status file {self.status.path}: {exc}")

    # -- life cycle --------------------------------------------------------------------
    def start(self) -> None:
        removed = self.fib.flush()
        self.speaker.stale_routes_removed = removed
        if removed:
            self.log.write(f"removed {removed} stale routes of protocol {self.config.rt_proto}")
        respawned = self._predecessor_died()
        if respawned:
            self.log.write("the previous helper of this ExaBGP died: asking the providers to resend")
        commands, logs = self.speaker.startup(respawned)
        for line in logs:
            self.log.write(line)
        for command in commands:
            self._command(command)
        self._write_status(urgent=True)

    def _predecessor_died(self) -> bool:
        """Did a helper of this same ExaBGP process die without stopping cleanly?"""
        try:
            with open(self.config.status_file) as handle:
                previous = json.load(handle)
        except (OSError, TypeError, ValueError):
            return False
        return bool(previous.get("running")) and previous.get("exabgp_pid") == os.getppid() \
            and previous.get("pid") != os.getpid()

    def run(self) -> None:
        lines: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=_read_stdin, args=(lines,), daemon=True, name="stdin").start()
        speaker, handle, parse = self.speaker, self.speaker.handle, api.parse_line
        eof = False
        while not self.stopping and not eof:
            try:
                line = lines.get(timeout=IDLE_TICK)
            except queue.Empty:
                line = None
            urgent = False
            while line is not None:
                if line is _EOF:
                    eof = True
                    break
                try:
                    event = parse(line)
                    if isinstance(event, api.Shutdown):
                        eof = True
                        break
                    effects = handle(event, time.time()) if event is not None else None
                except Exception as exc:   # one bad line must not take the sessions' FIB down
                    self.log.write(f"could not handle a line from ExaBGP ({exc!r}): {line[:200]!r}")
                    effects = None
                if effects is not None:
                    if effects.notices or effects.logs:
                        self._effects(effects)
                    if effects.urgent:
                        urgent = True
                        break
                if speaker.pending_count() >= FLUSH_AT:
                    break
                try:
                    line = lines.get_nowait()
                except queue.Empty:
                    line = None
            with_routes = self._gateways_with_routes()
            self._flush_fib()
            self._announce_first_routes(with_routes)
            self._write_status(urgent)

    def _gateways_with_routes(self) -> set[str]:
        return {gateway for gateway, count in self.speaker.installed_by.items() if count}

    def _announce_first_routes(self, before: set[str]) -> None:
        """A provider whose first routes just reached the kernel makes its egress live: write
        the status at once and tell the egress manager, which would otherwise notice only at
        its next periodic read (0.25 s) and keep the defaults on the backup until then."""
        fresh = self._gateways_with_routes() - before
        if not fresh:
            return
        self._write_status(urgent=True)
        names = {n.address: n.name for n in self.config.neighbors}
        for gateway in sorted(fresh):
            self.notifier.send({"slice": self.config.slice, "node": self.config.node,
                                "neighbor": names.get(gateway, gateway), "state": "routes",
                                "time": time.time()})

    def stop(self, reason: str) -> None:
        self.stopping = True
        effects = self.speaker.stop(time.time(), reason)
        self._effects(effects)
        try:
            self._flush_fib()
        finally:
            self._write_status(urgent=True)
            self.fib.close()
        self.log.write(f"stopped ({reason})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bgp.helper", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=os.environ.get(CONFIG_ENV),
                        help=f"the speaker's JSON config (default: ${CONFIG_ENV})")
    args = parser.parse_args(argv)
    if not args.config:
        parser.error("--config is required")
    helper = Helper(args.config)
    reason = "end of input from ExaBGP"

    def on_signal(number, _frame):
        nonlocal reason
        reason = f"signal {signal.Signals(number).name}"
        helper.stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    helper.start()
    try:
        helper.run()
    finally:
        helper.stop(reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
