"""The delay line's serving loop: bound NFQUEUE queues (`Held`), the `Server` that reads
their metadata in batches and releases them by deadline, its counters (`Stats`) and the
ready socket and JSON lines it reports through. Touches the kernel (netlink sockets).

`dataplane.delayline` is the process's entry (arguments, one worker or several);
`dataplane.delayworkers` forks workers that each run a `Server` of their own.
"""
from __future__ import annotations

import contextlib
import gc
import json
import os
import random
import select
import socket
import sys
import time
from dataclasses import dataclass, field

from . import netns, nfqueue
from .delayconfig import LineConfig, LinkDelay, parse_config
from .delayapply import RuleRemoval
from .delayreload import apply_reload, plan_reload
from .delaysched import Schedule
from .rtclock import DeadlineTimer, RealtimePolicy

COALESCE_MIN_BATCH = 4  # messages in one read: below it, traffic is sparse and reads stay immediate
MIN_HOLD_NS = 20_000
LATE_NS = 1_000_000
DRAIN_GRACE_NS = 200_000_000


# --- serving -----------------------------------------------------------------------------

@dataclass
class Held:
    """A bound queue (in namespace `netns`) and the schedule of what it holds."""

    netns: str
    sock: nfqueue.QueueSocket
    schedule: Schedule

    @property
    def key(self) -> tuple[str, int]:
        return (self.netns, self.sock.queue)


@dataclass
class Stats:
    messages: int = 0
    reads: int = 0
    releases: int = 0
    holds: int = 0
    late_releases: int = 0  # released more than 1 ms after their due time
    max_late_us: float = 0.0
    max_pending_batches: int = 0
    realtime_switches: int = 0
    reloads: int = 0
    queues: list[int] = field(default_factory=list)


def bind_queues(links: list[tuple[LinkDelay, int]], config: LineConfig) -> list[Held]:
    """Bind each (link, queue) inside the link's namespace, with its schedule."""
    rng = random.Random(config.seed)
    period = config.jitter_period_us * 1000 if config.jitter_period_us is not None else None
    held = []
    try:
        for link, queue in links:
            with netns.entered(link.netns) if link.netns else contextlib.nullcontext():
                sock = nfqueue.bind(queue)
            held.append(Held(link.netns, sock, Schedule(link.delay_us * 1000, link.jitter_us * 1000, period,
                                                        random.Random(rng.random()))))
    except BaseException:
        for entry in held:
            entry.sock.close()
        raise
    return held


class Server:
    """The epoll loop of one process over its queues, a deadline timer and a signal pipe
    (SIGTERM/SIGINT: stop; SIGHUP: re-read `config_path`)."""

    def __init__(self, held: list[Held], config: LineConfig, config_path: str = ""):
        self.config, self.config_path = config, config_path
        self.timer = DeadlineTimer()
        self.policy = RealtimePolicy(config.realtime)
        self.stats = Stats()
        self.signal_read, self.signal_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.poller = select.epoll()
        for fd in (self.timer.fd, self.signal_read):
            self.poller.register(fd, select.EPOLLIN)
        self.held: list[Held] = []
        self._by_fd: dict[int, Held] = {}
        self.add_queues(held)
        self.reconfigure(config)
        self.stopping_since: int | None = None
        self.removal: RuleRemoval | None = None
        self.ready: socket.socket | None = None  # see listen_ready

    # --- the set of queues, changed by a reload ---
    def add_queues(self, held: list[Held]) -> None:
        for entry in held:
            self.held.append(entry)
            self._by_fd[entry.sock.fd] = entry
            self.poller.register(entry.sock.fd, select.EPOLLIN)
        self.stats.queues = [h.sock.queue for h in self.held]

    def queue(self, key: tuple[str, int]) -> Held:
        return next(h for h in self.held if h.key == key)

    def drop_queue(self, key: tuple[str, int]) -> Held:
        entry = self.queue(key)
        self.held.remove(entry)
        del self._by_fd[entry.sock.fd]
        self.poller.unregister(entry.sock.fd)
        self.stats.queues = [h.sock.queue for h in self.held]
        return entry

    def reconfigure(self, config: LineConfig) -> None:
        self.config = config
        self.early_ns = config.early_us * 1000
        self.coalesce_ns = config.coalesce_us * 1000
        self.policy.mode = config.realtime

    # --- signals ---
    def request_stop(self, *_args) -> None:
        with contextlib.suppress(OSError):
            os.write(self.signal_write, b"s")

    def request_reload(self, *_args) -> None:
        with contextlib.suppress(OSError):
            os.write(self.signal_write, b"h")

    def _on_signal(self) -> None:
        with contextlib.suppress(OSError):
            received = os.read(self.signal_read, 64)
        if b"s" in received and self.stopping_since is None:
            self.stopping_since = time.monotonic_ns()
            close_ready(self.ready, self.config.ready_socket)
            self.ready = None
            self.removal = RuleRemoval(self.config)
        elif b"h" in received and self.stopping_since is None:
            self._reload()

    def _reload(self) -> None:
        try:
            with open(self.config_path) as handle:
                new = parse_config(handle.read())
            apply_reload(self, new, plan_reload(self.config, new), bind_queues)
            self.stats.reloads += 1
            emit("reloaded", {"queues": self.stats.queues})
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            print(f"delayline: reload refused, configuration kept: {error}", file=sys.stderr, flush=True)

    # --- the loop ---
    def _release_due(self) -> None:
        now = time.monotonic_ns()
        for entry in self.held:
            released = entry.schedule.release(now + self.early_ns)
            if released is None:
                continue
            last_id, due = released
            entry.sock.accept_through(last_id)
            self.stats.releases += 1
            late = now - due
            if late > LATE_NS:
                self.stats.late_releases += 1
            self.stats.max_late_us = max(self.stats.max_late_us, late / 1000)

    def _read(self, entry: Held, stamp: int) -> int:
        count, last_id = entry.sock.read_batch()
        if last_id is not None:
            entry.schedule.arrive(stamp, last_id)
            self.stats.messages += count
            self.stats.reads += 1
            self.stats.max_pending_batches = max(self.stats.max_pending_batches, len(entry.schedule))
        return count

    def _hold_reads(self) -> int:
        """Under load, let the next batch grow for `coalesce` (never past the next release):
        fewer, larger reads and verdicts for the same packets. Returns the pause taken."""
        now = time.monotonic_ns()
        pause = self.coalesce_ns
        if self.timer.armed_at is not None:
            pause = min(pause, self.timer.armed_at - now)
        if pause < MIN_HOLD_NS:
            return 0
        time.sleep(pause / 1e9)
        self.stats.holds += 1
        return pause

    def _arm(self) -> None:
        dues = [d for d in (h.schedule.next_due() for h in self.held) if d is not None]
        if dues:
            self.timer.arm(min(dues) - self.early_ns)
        else:
            self.timer.disarm()

    def _drained(self, now: int) -> bool:
        if self.removal is not None and not self.removal.done():
            return False
        idle = all(len(h.schedule) == 0 for h in self.held)
        return idle and now - self.stopping_since > DRAIN_GRACE_NS

    def serve(self) -> Stats:
        self.policy.start()
        gc.disable()  # the loop makes no reference cycles: no collector pause before a release
        held_ns = 0
        while True:
            events = self.poller.poll(-1 if self.stopping_since is None else 0.05)
            now = time.monotonic_ns()
            self._release_due()
            largest = 0
            for fd, _ in events:
                if fd == self.timer.fd:
                    self.timer.clear()
                elif fd == self.signal_read:
                    self._on_signal()
                elif fd in self._by_fd:  # read after a hold: the packets came during it, stamp mid-hold
                    largest = max(largest, self._read(self._by_fd[fd], now - held_ns // 2))
            self._release_due()
            self._arm()
            if now >= self.policy.next_check_ns:
                self.policy.check(now)
            if self.stopping_since is not None and self._drained(now):
                break
            busy = largest >= COALESCE_MIN_BATCH and self.stopping_since is None
            held_ns = self._hold_reads() if busy and self.coalesce_ns else 0
        self._finish()
        return self.stats

    def _finish(self) -> None:
        for entry in self.held:  # anything read after the last schedule entry
            if entry.schedule.last_seen_id is not None:
                entry.sock.accept_through(entry.schedule.last_seen_id)
            entry.sock.close()
        self.poller.close()
        self.timer.close()
        self.stats.realtime_switches = self.policy.switches


def listen_ready(path: str) -> socket.socket | None:
    """Listen on the UNIX socket `path` (never accepting): the sign, for vispd, that the
    queues are bound and the rules installed. A stale file of a killed predecessor goes first."""
    if not path:
        return None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.bind(path)
    sock.listen(1)
    return sock


def close_ready(sock: socket.socket | None, path: str) -> None:
    if sock is not None:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def emit(key: str, value) -> None:
    """One JSON line on stdout in a single write (workers share the pipe)."""
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), (json.dumps({key: value}) + "\n").encode())


def ignore_reload(*_args) -> None:
    print("delayline: SIGHUP ignored: reloading needs --config FILE and one worker", file=sys.stderr,
          flush=True)
