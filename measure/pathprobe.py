"""Which way a sliver's traffic goes, every few milliseconds (I/O, root): the probe of the
failover benches (bench/bgp.py, bench/failover.py) and tests/netns/test_bfd_failover.py.

`PathProbe(ns, target, interval)` sends an ICMP echo to `target` every `interval` seconds
from namespace `ns` (raw socket, a 64-bit counter in the payload, so replies and taps match
without sequence wrap-around) and notes every reply. `tap(name, ns, ifname)` notes which of
its echo requests arrive on a device (an AF_PACKET socket: it sees a frame before any
ingress filter, so a provider that drops everything still shows what was sent to it);
`tap(..., outgoing=True)` notes its echo replies leaving through a device instead (the way
back; those frames only reach ETH_P_ALL sockets). Then the questions: the first reply after
a moment, or to a request that passed a given tap, whether the recent requests all passed
one tap, what was lost in between.

Times are time.monotonic(); `wall()` converts one to time.time() (the status files' clock).
"""
from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time

from dataplane import netns
from dataplane.probe import ip_checksum

ETH_P_IP = 0x0800
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
ECHO_REQUEST, ECHO_REPLY = 8, 0


class PathProbe:
    def __init__(self, ns: str, target: str, interval: float = 0.005, size: int = 56):
        self.target, self.interval = target, interval
        self.ident = (id(self) >> 4) & 0xFFFF        # two probes in one process stay apart
        self.padding = b"\xa5" * max(0, size - 8)
        with netns.entered(ns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sock.setblocking(False)
        self.taps: dict[socket.socket, tuple[str, bool]] = {}   # socket -> (name, outgoing)
        self.sent: dict[int, float] = {}
        self.replies: dict[int, float] = {}
        self.reply_log: list[tuple[int, float]] = []    # (counter, time), in arrival order
        self.seen: dict[str, dict[int, float]] = {}     # tap -> counter -> time
        self.counter = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.offset = time.time() - time.monotonic()
        self.thread = threading.Thread(target=self._loop, name="path-probe", daemon=True)

    def wall(self, monotonic: float) -> float:
        return monotonic + self.offset

    def tap(self, name: str, ns: str, ifname: str, outgoing: bool = False) -> None:
        protocol = ETH_P_ALL if outgoing else ETH_P_IP
        with netns.entered(ns):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(protocol))
        sock.bind((ifname, protocol))
        sock.setblocking(False)
        with self.lock:
            self.seen[name] = {}
            self.taps[sock] = (name, outgoing)

    def start(self) -> "PathProbe":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping = True
        if self.thread.is_alive():
            self.thread.join(timeout=2)
        for sock in [self.sock, *self.taps]:
            with contextlib.suppress(OSError):
                sock.close()

    # -- the loop --------------------------------------------------------------------------
    def _send(self) -> None:
        self.counter += 1
        body = struct.pack("!Q", self.counter) + self.padding
        header = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, self.ident, self.counter & 0xFFFF)
        packet = header[:2] + struct.pack("!H", ip_checksum(header + body)) + header[4:] + body
        with self.lock:
            self.sent[self.counter] = time.monotonic()
        with contextlib.suppress(OSError):   # no route for a moment (during up, a failover)
            self.sock.sendto(packet, (self.target, 0))

    def _loop(self) -> None:
        next_send = time.monotonic()
        while not self.stopping:
            now = time.monotonic()
            if now >= next_send:
                self._send()
                next_send = max(next_send + self.interval, now)
            with self.lock:
                sockets = [self.sock, *self.taps]
            try:
                readable, _, _ = select.select(sockets, [], [], max(0.0, next_send - time.monotonic()))
            except (OSError, ValueError):
                return
            for sock in readable:
                self._drain(sock)

    def _counter(self, data: bytes, icmp_type: int) -> int | None:
        """The counter of our echo of `icmp_type` in an IP packet, else None."""
        if len(data) < 20 or data[9] != socket.IPPROTO_ICMP:
            return None
        ihl = (data[0] & 0x0F) * 4
        if len(data) < ihl + 16 or data[ihl] != icmp_type or struct.unpack_from("!H", data, ihl + 4)[0] != self.ident:
            return None
        return struct.unpack_from("!Q", data, ihl + 8)[0]

    def _drain(self, sock: socket.socket) -> None:
        while True:
            try:
                data, address = sock.recvfrom(2048)
            except OSError:
                return
            now = time.monotonic()
            if sock is self.sock:
                counter = self._counter(data, ECHO_REPLY)
                if counter is not None:
                    with self.lock:
                        if counter not in self.replies:
                            self.replies[counter] = now
                            self.reply_log.append((counter, now))
                continue
            name, outgoing = self.taps[sock]
            if (address[2] == PACKET_OUTGOING) != outgoing or address[1] != ETH_P_IP:
                continue
            counter = self._counter(data, ECHO_REPLY if outgoing else ECHO_REQUEST)
            if counter is not None:
                with self.lock:
                    self.seen[name].setdefault(counter, now)

    # -- questions (the logs are in time order: scan back from the end) ----------------------
    def _replies_after(self, after: float) -> list[tuple[int, float]]:
        with self.lock:
            log = self.reply_log
            i = len(log)
            while i > 0 and log[i - 1][1] > after:
                i -= 1
            return list(log[i:])

    def _seen(self, tap: str) -> dict[int, float]:
        with self.lock:
            return dict(self.seen[tap])

    def first_reply(self, after: float = 0.0) -> float | None:
        replies = self._replies_after(after)
        return replies[0][1] if replies else None

    def first_reply_via(self, tap: str, after: float) -> float | None:
        """When the first reply after `after` to a request that passed `tap` arrived."""
        seen = self._seen(tap)
        return next((t for c, t in self._replies_after(after) if c in seen), None)

    def last_reply_via(self, tap: str, before: float, after: float) -> float | None:
        seen = self._seen(tap)
        matches = [t for c, t in self._replies_after(after) if t <= before and c in seen]
        return matches[-1] if matches else None

    def first_seen_at(self, tap: str, after: float) -> float | None:
        """When the first request after `after` reached `tap` (the forward path alone)."""
        with self.lock:
            return min((t for t in self.seen[tap].values() if t > after), default=None)

    def first_lost_via(self, tap: str, after: float) -> float | None:
        """When the first request after `after` that passed `tap` and was never answered
        reached it: where a drop at that tap began (to within one probe interval)."""
        with self.lock:
            lost = [t for c, t in self.seen[tap].items() if t > after and c not in self.replies]
        return min(lost, default=None)

    def recent_paths(self, window: float, before: float | None = None) -> tuple[int, set[str]]:
        """(replies in the `window` s up to `before` (now), the taps their packets passed)."""
        end = time.monotonic() if before is None else before
        recent = [c for c, t in self._replies_after(end - window) if t <= end]
        with self.lock:
            paths = {name for name, seen in self.seen.items() for c in recent if c in seen}
        return len(recent), paths

    def only_via(self, tap: str, window: float = 0.2) -> bool:
        """Did the replies of the last `window` s all answer requests that passed `tap`
        among the forward taps (and were there enough of them)?"""
        with self.lock:
            forward = {name for name, outgoing in self.taps.values() if not outgoing}
        count, paths = self.recent_paths(window)
        return count >= max(3, int(window / self.interval / 2)) and paths & forward == {tap}

    def lost_between(self, start: float, end: float) -> int:
        with self.lock:
            return sum(1 for c, t in self.sent.items() if start <= t <= end and c not in self.replies)
