"""An ICMP prober for bench/bgp.py's failover: an echo request every few milliseconds from a
sliver (raw socket, root), and packet taps on the providers' devices noting which way each
request went and each reply came back, so every reply is attributed to a path. I/O (root):
sockets inside namespaces, one thread.
"""
from __future__ import annotations

import contextlib
import os
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
FORWARD = ("p1", "p2")                 # taps on the providers' devices facing the vISP
RETURN = ("back-p1", "back-p2")        # taps on the Internet router's devices to the providers


class Prober:
    """An ICMP echo to `target` every `interval` s from namespace `ns` (raw socket, root),
    and taps on provider devices noting which echo requests passed there. The payload
    carries a 64-bit counter, so replies and taps are matched without seq wrap-around."""

    def __init__(self, ns: str, target: str, interval: float, size: int = 64):
        self.target, self.interval = target, interval
        self.ident = os.getpid() & 0xFFFF
        self.padding = b"\xa5" * max(0, size - 8)
        with netns.entered(ns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sock.setblocking(False)
        self.taps: dict[socket.socket, str] = {}
        self.sent: dict[int, float] = {}
        self.replies: dict[int, float] = {}
        self.reply_log: list[tuple[int, float]] = []   # (counter, time) in arrival order
        self.seen: dict[str, dict[int, float]] = {}
        self.counter = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, name="prober", daemon=True)

    def add_tap(self, name: str, ns: str, ifname: str, outgoing: bool = False) -> None:
        """Note our echo requests arriving on `ifname` (or, with `outgoing`, our echo
        replies leaving through it: those only reach ETH_P_ALL sockets)."""
        protocol = ETH_P_ALL if outgoing else ETH_P_IP
        with netns.entered(ns):
            tap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(protocol))
        tap.bind((ifname, protocol))
        tap.setblocking(False)
        with self.lock:
            self.seen[name] = {}
            self.taps[tap] = (name, outgoing)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping = True
        if self.thread.is_alive():
            self.thread.join(timeout=2)
        for sock in [self.sock, *self.taps]:
            with contextlib.suppress(OSError):
                sock.close()

    def _send(self) -> None:
        self.counter += 1
        counter = self.counter
        body = struct.pack("!Q", counter) + self.padding
        header = struct.pack("!BBHHH", 8, 0, 0, self.ident, counter & 0xFFFF)
        packet = header[:2] + struct.pack("!H", ip_checksum(header + body)) + header[4:] + body
        now = time.monotonic()
        with self.lock:
            self.sent[counter] = now
        with contextlib.suppress(OSError):   # no route yet (during up), unreachable...
            self.sock.sendto(packet, (self.target, 0))

    def _echo(self, data: bytes, want_type: int) -> int | None:
        """The counter of our echo (request 8 / reply 0) in an IP packet, else None."""
        if len(data) < 20 or data[9] != socket.IPPROTO_ICMP:
            return None
        ihl = (data[0] & 0x0F) * 4
        if len(data) < ihl + 16 or data[ihl] != want_type:
            return None
        ident, = struct.unpack_from("!H", data, ihl + 4)
        if ident != self.ident:
            return None
        counter, = struct.unpack_from("!Q", data, ihl + 8)
        return counter

    def _loop(self) -> None:
        next_send = time.monotonic()
        while not self.stopping:
            now = time.monotonic()
            if now >= next_send:
                self._send()
                next_send += self.interval
                if next_send < now:
                    next_send = now + self.interval
            with self.lock:
                sockets = [self.sock, *self.taps]
            try:
                readable, _, _ = select.select(sockets, [], [], max(0.0, next_send - time.monotonic()))
            except (OSError, ValueError):
                return
            for sock in readable:
                self._drain(sock)

    def _drain(self, sock: socket.socket) -> None:
        while True:
            try:
                data, address = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            now = time.monotonic()
            if sock is self.sock:
                counter = self._echo(data, 0)
                if counter is not None:
                    with self.lock:
                        if counter not in self.replies:
                            self.replies[counter] = now
                            self.reply_log.append((counter, now))
            else:
                name, outgoing = self.taps[sock]
                if (address[2] == PACKET_OUTGOING) != outgoing or address[1] != ETH_P_IP:
                    continue
                counter = self._echo(data, 0 if outgoing else 8)
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
            return log[i:]

    def first_reply(self, after: float = 0.0) -> float | None:
        replies = self._replies_after(after)
        return replies[0][1] if replies else None

    def first_reply_via(self, tap: str, after: float) -> float | None:
        seen = self.seen[tap]
        return next((t for c, t in self._replies_after(after) if c in seen), None)

    def last_reply_via(self, tap: str, before: float, after: float) -> float | None:
        seen = self.seen[tap]
        matches = [t for c, t in self._replies_after(after) if t <= before and c in seen]
        return matches[-1] if matches else None

    def recent_paths(self, window: float, before: float | None = None) -> tuple[int, set[str]]:
        """(replies in the `window` s up to `before` (now), the taps their packets passed)."""
        end = time.monotonic() if before is None else before
        recent = [(c, t) for c, t in self._replies_after(end - window) if t <= end]
        with self.lock:
            paths = {name for name, seen in self.seen.items() for c, _ in recent if c in seen}
        return len(recent), paths

    def lost_between(self, start: float, end: float) -> int:
        with self.lock:
            return sum(1 for c, t in self.sent.items() if start <= t <= end and c not in self.replies)

    def only_via(self, tap: str, window: float = 0.2) -> bool:
        """Did the requests of the last `window` s all pass `tap` (and enough got replies)?"""
        count, paths = self.recent_paths(window)
        return count >= max(3, int(window / self.interval / 2)) and {p for p in paths if p in FORWARD} == {tap}


