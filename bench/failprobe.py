"""Which way a sliver's traffic leaves, every few milliseconds (I/O, root): the probe of
bench/failover.py and tests/netns/test_bfd_failover.py.

`PathProbe(ns, target, interval)` sends an ICMP echo to `target` every `interval` seconds
from namespace `ns` (raw socket, a 64-bit counter in the payload) and notes every reply;
`tap(name, ns, ifname)` notes which of its echo requests arrive on a device (an AF_PACKET
socket: it sees a frame before any ingress filter, so a provider that drops everything
still shows what was sent to it). Then: the first reply after a moment to a request that
passed a given tap, and whether the recent requests all passed one tap.

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
PACKET_OUTGOING = 4


class PathProbe:
    def __init__(self, ns: str, target: str, interval: float = 0.005):
        self.target, self.interval = target, interval
        self.ident = (id(self) >> 4) & 0xFFFF
        with netns.entered(ns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sock.setblocking(False)
        self.taps: dict[socket.socket, str] = {}
        self.sent: dict[int, float] = {}
        self.replies: list[tuple[int, float]] = []      # (counter, time), in arrival order
        self.seen: dict[str, dict[int, float]] = {}     # tap -> counter -> time
        self.counter = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.offset = time.time() - time.monotonic()
        self.thread = threading.Thread(target=self._loop, name="path-probe", daemon=True)

    def wall(self, monotonic: float) -> float:
        return monotonic + self.offset

    def tap(self, name: str, ns: str, ifname: str) -> None:
        with netns.entered(ns):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        sock.bind((ifname, ETH_P_IP))
        sock.setblocking(False)
        with self.lock:
            self.seen[name] = {}
            self.taps[sock] = name

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
        body = struct.pack("!Q", self.counter) + b"\xa5" * 48
        header = struct.pack("!BBHHH", 8, 0, 0, self.ident, self.counter & 0xFFFF)
        packet = header[:2] + struct.pack("!H", ip_checksum(header + body)) + header[4:] + body
        with self.lock:
            self.sent[self.counter] = time.monotonic()
        with contextlib.suppress(OSError):   # no route for a moment
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
                counter = self._counter(data, 0)
                if counter is not None:
                    with self.lock:
                        self.replies.append((counter, now))
            elif address[2] != PACKET_OUTGOING:
                counter = self._counter(data, 8)
                if counter is not None:
                    with self.lock:
                        self.seen[self.taps[sock]].setdefault(counter, now)

    # -- questions -------------------------------------------------------------------------
    def _replies_after(self, after: float) -> list[tuple[int, float]]:
        with self.lock:
            replies = self.replies
            i = len(replies)
            while i > 0 and replies[i - 1][1] > after:
                i -= 1
            return list(replies[i:])

    def first_reply_via(self, tap: str, after: float) -> float | None:
        """When the first reply after `after` to a request that passed `tap` arrived."""
        with self.lock:
            seen = dict(self.seen[tap])
        return next((t for c, t in self._replies_after(after) if c in seen), None)

    def first_seen_at(self, tap: str, after: float) -> float | None:
        """When the first request after `after` reached `tap` (the forward path alone)."""
        with self.lock:
            return min((t for t in self.seen[tap].values() if t > after), default=None)

    def only_via(self, tap: str, window: float = 0.2) -> bool:
        """Did the last `window` s of replies all answer requests that passed `tap` (and were
        there enough of them)?"""
        recent = [c for c, _ in self._replies_after(time.monotonic() - window)]
        with self.lock:
            via = {name for name, seen in self.seen.items() for c in recent if c in seen}
        return len(recent) >= max(3, int(window / self.interval / 2)) and via == {tap}

    def first_lost_via(self, tap: str, after: float) -> float | None:
        """When the first request after `after` that passed `tap` and was never answered
        reached it: where a drop at that tap began (to within one probe interval)."""
        with self.lock:
            answered = {c for c, _ in self.replies}
            lost = [t for c, t in self.seen[tap].items() if t > after and c not in answered]
        return min(lost, default=None)

    def lost_between(self, start: float, end: float) -> int:
        with self.lock:
            answered = {c for c, _ in self.replies}
            return sum(1 for c, t in self.sent.items() if start <= t <= end and c not in answered)
