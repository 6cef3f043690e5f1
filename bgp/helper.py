"""The ExaBGP API process (`python3 -m bgp.helper --config PATH`), run by ExaBGP inside an
egress sliver's network namespace (a slice's speaker: decisions in speaker.py) or in an
egress node's namespace (the vISP's border router, config role "border": decisions in
border.py; it installs no routes). It owns the I/O loop only.

A reader thread runs the blocking `for line in sys.stdin` loop ExaBGP needs (select +
readline strands lines in Python's buffer) and queues the lines; the main thread drains the
queue, feeds the speaker, and after each burst writes the coalesced FIB changes in one
netlink batch. A session change is handled at once: notice on the event socket, FIB flush,
status file. Commands go to stdout, flushed one by one; ExaBGP's `done`/`error` acks arrive
on stdin and settle the announcements. On SIGTERM/SIGINT or end of input (ExaBGP gone), the
helper withdraws every route it installed, reports the sessions down and exits.

A border whose configuration has a `bfd` section also follows bfdd's sessions
(bgp/bfd_watch.py): that thread puts BFD events on the same queue, so they are handled in
order with ExaBGP's lines, the moment they arrive."""
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
from bgp.bfd_watch import BfdWatcher
from bgp.border import Border
from bgp.report import Log, Notifier, StatusWriter
from bgp.speaker import PREFERENCE_CODES, Speaker
from compiler.daemons.bfd import parse_border_section
from compiler.daemons.border_config import BorderConfig, load_any_config
from compiler.daemons.speaker_config import read_raw
from dataplane.fib import Fib

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
        self.config = load_any_config(config_path)
        self.log = Log(f"{self.config.slice}/{self.config.node}", self.config.log_file)
        self.border = isinstance(self.config, BorderConfig)
        self.bfd = None
        self.watcher = None
        if self.border:
            self.bfd = parse_border_section(read_raw(config_path).get("bfd"))
            self.speaker = Border(self.config, time.time(), self.bfd)
            self.fib = None
        else:
            self.speaker = Speaker(self.config, time.time())
            metric = self.config.metric
            self.fib = Fib(self.config.rt_proto, self.config.table, metric, prefsrc=self.config.prefsrc,
                           metrics=(metric, metric + PREFERENCE_CODES))
        self.notifier = Notifier(self.config.event_socket, self.log)
        self.status = StatusWriter(self.config.status_file)
        self.stopping = False

    # -- effects -----------------------------------------------------------------------
    def _command(self, command: str) -> None:
        sys.stdout.write(command + "\n")
        sys.stdout.flush()

    def _effects(self, effects) -> None:
        for command in effects.commands:
            self._command(command)
        for notice in effects.notices:
            self.notifier.send(notice)
        for line in effects.logs:
            self.log.write(line)

    def _flush_fib(self) -> None:
        if self.fib is None:
            return
        ops = self.speaker.take_fib_ops()
        if not ops:
            return
        started = time.monotonic()
        try:
            errors = self.fib.apply(ops)
        except OSError as exc:
            self.log.write(f"FIB: netlink failed ({exc}); resynchronising from the kernel")
            self.speaker.resync(self.fib.entries())
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
        if self.border:
            respawned = self._predecessor_died()
            self._effects(self.speaker.startup(respawned))
            self._write_status(urgent=True)
            return
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
        if self.bfd is not None:
            self.watcher = BfdWatcher(self.bfd.control_socket, lines.put).start()
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
                    event = parse(line) if isinstance(line, str) else line   # else a BFD event
                    if isinstance(event, api.Shutdown):
                        eof = True
                        break
                    effects = handle(event, time.time()) if event is not None else None
                except Exception as exc:   # one bad line must not take the sessions' FIB down
                    self.log.write(f"could not handle a line from ExaBGP ({exc!r}): {str(line)[:200]!r}")
                    effects = None
                if effects is not None:
                    if effects.notices or effects.logs or effects.commands:
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
            if self.border:
                ticked = speaker.tick(time.time())
                self._effects(ticked)
                self._write_status(urgent or ticked.urgent)
                continue
            with_routes = self._neighbors_with_routes()
            self._flush_fib()
            self._tell_route_changes(with_routes)
            self._write_status(urgent)

    def _neighbors_with_routes(self) -> set[str]:
        """Names of the sessions whose routes are in the kernel (behind a border: "border"
        while any provider's path has routes installed)."""
        counts = self.speaker.installed_by
        if self.config.paths:
            return {n.name for n in self.config.neighbors} if any(counts.values()) else set()
        return {n.name for n in self.config.neighbors if counts.get(n.address)}

    def _tell_route_changes(self, before: set[str]) -> None:
        """A session whose first routes just reached the kernel makes its egress live, one
        whose last routes just left makes it dead: write the status at once and tell the
        egress manager, which would otherwise notice only at its next periodic read (0.25 s)
        and keep the defaults where they were until then."""
        after = self._neighbors_with_routes()
        if after == before:
            return
        self._write_status(urgent=True)
        now = time.time()
        for name in sorted(after - before):
            self.notifier.send({"slice": self.config.slice, "node": self.config.node, "neighbor": name,
                                "state": "routes", "time": now})
        up = {n.name for n in self.config.neighbors if self.speaker.sessions[n.address].state == "up"}
        for name in sorted((before - after) & up):   # a session that went down said so itself
            self.notifier.send({"slice": self.config.slice, "node": self.config.node, "neighbor": name,
                                "state": "down", "reason": "no routes", "time": now})

    def stop(self, reason: str) -> None:
        self.stopping = True
        if self.watcher is not None:
            self.watcher.stop()
        effects = self.speaker.stop(time.time(), reason)
        self._effects(effects)
        try:
            self._flush_fib()
        finally:
            self._write_status(urgent=True)
            if self.fib is not None:
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
