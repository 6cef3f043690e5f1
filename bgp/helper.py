"""The ExaBGP API process (`python3 -m bgp.helper --config PATH`), run by ExaBGP inside an
egress sliver's network namespace (a slice's speaker: decisions in speaker.py) or in an
egress node's namespace (the vISP's border router, config role "border": decisions in
border.py; it installs no routes). It owns the I/O loop only.

A reader thread runs the blocking `for line in sys.stdin` loop ExaBGP needs (select +
readline strands lines in Python's buffer) and queues the lines; the main thread drains the
queue, feeds the speaker, and after each burst hands the coalesced FIB changes to a FIB
writer thread (bgp/fib_worker.py), which writes them in netlink batches while the main
thread goes on. With ExaBGP started through bgp/exabgp_launch.py, received UPDATEs arrive
undecoded (`#vispd-wire` lines, decoded by bgp/wire_stream.py and bgp/wire.py, RFC 7606
included), and the border writes its routes to the slices pre-encoded (`#vispd-send` lines,
bgp/wire_encode.py) instead of `announce attributes` commands. A session change is handled at once: notice on the event socket, FIB flush,
status file. Commands go to stdout, flushed one by one; ExaBGP's `done`/`error` acks arrive
on stdin and settle the announcements. On SIGTERM/SIGINT or end of input (ExaBGP gone), the
helper withdraws every route it installed, reports the sessions down and exits.

A border whose configuration has a `bfd` section also follows bfdd's sessions
(bgp/bfd_watch.py): that thread puts BFD events on the same queue, so they are handled in
order with ExaBGP's lines, the moment they arrive."""
from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import signal
import sys
import threading
import time

from bgp import api, wire_encode, wire_stream
from bgp.bfd_watch import BfdWatcher
from bgp.fib_worker import FibWorker
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
COALESCE_S = 0.003         # wait this long for more routes before installing / passing on what is pending
COALESCE_MAX_S = 0.02      # ... but never hold a burst's first routes longer than this
HOOK_ENV = "VISPD_EXABGP_HOOK"   # ExaBGP runs with vispd's hook (bgp/exabgp_hook.py sets it)
SEND_PREFIX, REFRESH_PREFIX = "#vispd-send", "#vispd-refresh"
OUT_LINE_BYTES = 1 << 18   # encoded UPDATEs per line to ExaBGP, at most (its API takes lines up to 1 MiB)
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
        self.fib_worker = None   # started once the stale routes are flushed (start)
        self.wire = {"lines": 0, "updates": 0, "errors": 0, "rfc7606": 0, "sent_commands": 0}   # the hook's bulk path, counted
        self.ibgp_peers = frozenset(n.address for n in self.config.neighbors if n.peer_as == self.config.local_as)
        # the border encodes its routes to the slices itself when ExaBGP has the hook
        self.wire_out = self.border and os.environ.get(HOOK_ENV) == "1"
        if self.border:
            self.speaker.encodes_paths = self.wire_out
        self._out: dict[str, list] = {}   # neighbor -> [bytearray of UPDATEs, commands they stand for]
        self.notifier = Notifier(self.config.event_socket, self.log)
        self.status = StatusWriter(self.config.status_file)
        self.stopping = False

    # -- effects -----------------------------------------------------------------------
    def _command(self, command: str) -> None:
        if isinstance(command, api.PathRoutes):
            self._encode(command)
            return
        self._flush_out()   # what was encoded before this command goes before it
        sys.stdout.write(command + "\n")
        sys.stdout.flush()

    def _encode(self, command: api.PathRoutes) -> None:
        if command.as_path is None:
            data = wire_encode.withdraw(command.prefixes, command.path_id)
        else:
            data = wire_encode.announce(command.prefixes, command.next_hop, command.as_path, command.local_pref,
                                        command.path_id)
        pending = self._out.setdefault(command.neighbor, [bytearray(), 0])
        pending[0] += data
        self.wire["sent_commands"] += 1
        if len(pending[0]) >= OUT_LINE_BYTES:
            self._flush_out()

    def _flush_out(self) -> None:
        """The encoded UPDATEs, one line per neighbor, for the hook to write on its session
        (0: no command of ExaBGP's to acknowledge for them)."""
        if not self._out:
            return
        for neighbor, (data, _commands) in self._out.items():
            sys.stdout.write(f"{SEND_PREFIX} {neighbor} 0 {base64.b64encode(data).decode('ascii')}\n")
        self._out = {}
        sys.stdout.flush()

    def _effects(self, effects) -> None:
        for command in effects.commands:
            self._command(command)
        for notice in effects.notices:
            self.notifier.send(notice)
        for line in effects.logs:
            self.log.write(line)

    def _flush_fib(self) -> None:
        """Hand the pending FIB changes to the writer thread; take in what it has written."""
        if self.fib is None:
            return
        self._fib_results()
        ops = self.speaker.take_fib_ops()
        if not ops:
            return
        self.fib_worker.submit(ops, self.speaker.fib_taken(ops))
        if len(ops) >= LOG_BATCHES_FROM:
            self.log.write(f"FIB: {len(ops)} changes queued, {len(self.speaker.installed)} routes installed")

    def _fib_results(self) -> None:
        resync = False
        for ops, before, errors, exception in self.fib_worker.results():
            self.speaker.fib_answered(len(ops))
            if exception is not None:
                self.log.write(f"FIB: netlink failed ({exception!r}); resynchronising from the kernel")
                resync = True
            elif errors:
                for line in self.speaker.fib_failed(ops, errors, before):
                    self.log.write(line)
        if resync:
            self.fib_worker.idle()
            self.fib_worker.results()   # superseded by the kernel's word
            self.speaker.resync(self.fib.entries())

    def _write_status(self, urgent: bool) -> None:
        now = time.time()
        if self.status.due(now, urgent):
            document = self.speaker.status(now)
            document["pid"] = os.getpid()
            document["exabgp_pid"] = os.getppid()
            document["running"] = not self.stopping
            document["wire"] = dict(self.wire)
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
        self.fib_worker = FibWorker(self.fib)
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
        speaker, handle = self.speaker, self.speaker.handle
        eof = False
        while not self.stopping and not eof:
            try:
                line = lines.get(timeout=IDLE_TICK)
            except queue.Empty:
                line = None
            urgent = False
            burst_started = time.monotonic()
            while line is not None:
                if line is _EOF:
                    eof = True
                    break
                eof, urgent = self._handle(line, handle)
                if eof or urgent or speaker.pending_count() >= FLUSH_AT:
                    break
                line = self._next_line(lines, burst_started)
            if self.border:
                ticked = speaker.tick(time.time())
                self._effects(ticked)
                self._flush_out()
                self._write_status(urgent or ticked.urgent)
                continue
            with_routes = self._neighbors_with_routes()
            self._flush_fib()
            self._tell_route_changes(with_routes)
            self._write_status(urgent)

    def _next_line(self, lines: queue.SimpleQueue, burst_started: float):
        """The next line of this burst, or None to end it. A table arrives in many small
        lines when the sender paces it: with routes waiting to be installed (or encoded for
        the slices), wait up to COALESCE_S for more, within COALESCE_MAX_S of the burst's
        start, so that the kernel and the slices get them in batches, not one by one."""
        try:
            return lines.get_nowait()
        except queue.Empty:
            pass
        waiting = self._out if self.border else self.speaker.pending_count()
        if not waiting or time.monotonic() - burst_started >= COALESCE_MAX_S:
            return None
        try:
            return lines.get(timeout=COALESCE_S)
        except queue.Empty:
            return None

    def _events(self, line) -> list:
        """A line from ExaBGP (JSON, an ack, or the hook's run of UPDATEs) or a BFD event -> events."""
        if wire_stream.is_wire_line(line):
            events, errors = wire_stream.decode_line(line, self.ibgp_peers, time.time())
            self.wire["lines"] += 1
            self.wire["updates"] += len(events)
            self.wire["errors"] += len(errors)
            for error in errors:
                self.log.write(f"RFC 7606: {error}")
            for event in events:
                if event.notes:
                    self.wire["rfc7606"] += 1
                    self.log.write(f"RFC 7606: from {event.peer}: {'; '.join(event.notes)}")
            return events
        if isinstance(line, str) and line.startswith(REFRESH_PREFIX):
            # only the routes we encoded ourselves are missing from ExaBGP's adj-RIB-out
            return [api.RefreshRequest(line.split()[1])] if self.wire_out else []
        event = api.parse_line(line) if isinstance(line, str) else line   # else a BFD event
        return [] if event is None else [event]

    def _handle(self, line, handle) -> tuple[bool, bool]:
        """Feed one line's events to the speaker: (end of input, urgent)."""
        urgent = False
        try:
            events = self._events(line)
        except Exception as exc:   # one bad line must not take the sessions' FIB down
            self.log.write(f"could not read a line from ExaBGP ({exc!r}): {str(line)[:200]!r}")
            return False, False
        for event in events:
            if isinstance(event, api.Shutdown):
                return True, urgent
            try:
                effects = handle(event, time.time())
            except Exception as exc:
                self.log.write(f"could not handle a line from ExaBGP ({exc!r}): {str(line)[:200]!r}")
                continue
            if effects is not None:
                if effects.notices or effects.logs or effects.commands:
                    self._effects(effects)
                urgent = urgent or effects.urgent
        return False, urgent

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
        try:
            self._effects(effects)
            self._flush_out()
        except OSError:   # ExaBGP is gone
            pass
        try:
            if self.fib_worker is not None:
                self._flush_fib()
                self.fib_worker.idle()
                self._fib_results()
                self.fib_worker.stop()
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
