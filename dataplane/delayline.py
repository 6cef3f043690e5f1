"""The delay line: a process that holds packets in the kernel's NFQUEUE queues and releases
them after a fixed one-way delay (plus optional jitter). Touches the kernel (netlink
sockets, iptables rules in the namespaces it serves); its configuration is the pure
`dataplane.delayconfig`.

    python3 -m dataplane.delayline --config FILE
    python3 -m dataplane.delayline --queue 0 --delay 37ms [--jitter 1ms] [--loss 0.1%]
                                   [--device r-a --direction in] [--netns NS]

Packets stay in the kernel: the process reads metadata-only messages in batches
(`dataplane.nfqueue`), keeps one (due time, last id) pair per batch (`delaysched`), and
at each deadline (`rtclock.DeadlineTimer`, released `early` ahead to absorb the wake-up)
sends one verdict accepting every id up to the last one due. Loss is dropped by the
kernel before queueing (the rules of `delayrules`), never here.

Under load (a read of at least 4 messages) the loop pauses up to `coalesce` (200 us, never
past the next release) before reading again, so the next batch is larger: about 25-40%
less CPU per packet at 100-150k packets/s (bench figures in the report). Packets read
after a pause are stamped mid-pause: their delay is exact within +-coalesce/2. Sparse
traffic (pings) is read at once.

One process serves any number of (namespace, device, direction) links: sockets and rules
are made inside each link's named namespace. A link may spread over several queues
(`--queue-balance`, chosen by the kernel per flow, so a flow keeps its order); with
`workers` > 1 the queues are shared round-robin among forked processes, one per core.

Life cycle: bind every queue, install the rules (when the config names the device),
listen on the `ready-socket` if the config names one, print one JSON line
`{"ready": ...}`; on SIGHUP re-read the config file and apply only the
difference, live (`delayreload`: no packet passes undelayed or is lost meanwhile), then
print `{"reloaded": ...}`; on SIGTERM/SIGINT remove the rules, release what is held when
it is due, unbind, print `{"stats": ...}` and exit 0 (the ready socket is closed as soon
as stopping begins).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import select
import signal
import socket
import sys
import time
from dataclasses import asdict, dataclass, field

from model.linkprops import parse_duration_us, parse_loss
from . import netns, nfqueue
from .delayconfig import DEFAULT_COALESCE_US, DEFAULT_EARLY_US, LineConfig, LinkDelay, parse_config
from .delayapply import RuleRemoval, install_rules
from .delayreload import apply_reload, plan_reload
from .delaysched import Schedule
from .rtclock import DeadlineTimer, RealtimePolicy, set_timer_slack_ns

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


def run(config: LineConfig, config_path: str = "") -> int:
    """Serve `config` in this process (one worker) or in forked workers; returns an exit code."""
    set_timer_slack_ns(1)
    assignments = [(link, q) for link in config.links for q in link.queues]
    if config.workers <= 1:
        server = Server(bind_queues(assignments, config), config, config_path)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, server.request_stop)
        signal.signal(signal.SIGHUP, server.request_reload if config_path else ignore_reload)
        install_rules(config)
        server.ready = listen_ready(config.ready_socket)
        emit("ready", {"pid": os.getpid(), "queues": server.stats.queues})
        try:
            emit("stats", asdict(server.serve()))
        finally:
            close_ready(server.ready, config.ready_socket)
        return 0
    from .delayworkers import run_workers  # only multi-worker runs need fork management
    return run_workers(config, assignments)


def _args_config(args: argparse.Namespace) -> LineConfig:
    low, _, high = args.queue.partition("-")
    queues = tuple(range(int(low), int(high or low) + 1))
    link = LinkDelay(queues=queues, delay_us=parse_duration_us(args.delay),
                     jitter_us=parse_duration_us(args.jitter), loss=parse_loss(args.loss),
                     netns=args.netns, device=args.device, direction=args.direction)
    return LineConfig(links=(link,), early_us=parse_duration_us(args.early),
                      coalesce_us=parse_duration_us(args.coalesce), realtime=args.realtime,
                      workers=args.workers, owner=args.owner, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m dataplane.delayline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="JSON config (several links); or describe one link with the options below")
    parser.add_argument("--queue", default="0", help="queue number, or a range A-B (--queue-balance)")
    parser.add_argument("--delay", help="one-way delay, e.g. 37ms")
    parser.add_argument("--jitter", default="0us")
    parser.add_argument("--loss", default="0%")
    parser.add_argument("--netns", default="", help="named namespace of the queue and rules")
    parser.add_argument("--device", default="", help="install rules matching this device")
    parser.add_argument("--direction", default="in", choices=("in", "forward"))
    parser.add_argument("--early", default=f"{DEFAULT_EARLY_US}us", help="release this much ahead")
    parser.add_argument("--coalesce", default=f"{DEFAULT_COALESCE_US}us",
                        help="under load, let reads gather this long (0us: read at once)")
    parser.add_argument("--realtime", default="auto", choices=("on", "off", "auto"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--owner", default="")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    try:
        if args.config:
            with open(args.config) as handle:
                config = parse_config(handle.read())
        elif args.delay:
            config = _args_config(args)
        else:
            parser.error("give --config FILE or --delay")
    except (ValueError, KeyError) as error:
        print(f"delayline: bad configuration: {error}", file=sys.stderr)
        return 2
    try:
        return run(config, args.config or "")
    except (OSError, RuntimeError) as error:
        print(f"delayline: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
