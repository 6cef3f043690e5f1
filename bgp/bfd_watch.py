"""Follows bfdd's sessions on its control socket, in a thread of the border's helper (I/O).

`BfdWatcher(path, deliver).start()` connects to bfdd's control socket, asks for session
state and timer notifications (bgp/bfdctl.py) and hands each event to `deliver` the moment
it arrives (the helper's queue, which its main loop is blocked on, so a BFD failure is
acted on within microseconds of bfdd declaring it). While the socket cannot be reached
(bfdd not started yet, restarting, stopped) it retries every `retry` seconds; losing it
delivers one BfdControlLost, getting it back one BfdControlUp followed by every session's
current state.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

from bgp.bfdctl import BfdControlLost, BfdControlUp, Decoder, ProtocolError, event_of, subscribe_message

RETRY = 0.2   # seconds between attempts to reach bfdd


class BfdWatcher:
    def __init__(self, path: str, deliver: Callable[[object], None], retry: float = RETRY):
        self.path, self.deliver, self.retry = path, deliver, retry
        self.stopping = threading.Event()
        self.connected = False
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="bfd-watch", daemon=True)

    def start(self) -> "BfdWatcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=2)

    def _run(self) -> None:
        lost_reported = False
        while not self.stopping.is_set():
            try:
                self._session()
                reason = "bfdd closed its control socket"
            except (OSError, ProtocolError) as exc:
                reason = f"bfdd's control socket {self.path}: {exc}"
            if self.stopping.is_set():
                return
            if self.connected or not lost_reported:
                self.deliver(BfdControlLost(reason, time.time()))
                lost_reported = True
            self.connected = False
            self.stopping.wait(self.retry)

    def _session(self) -> None:
        """Connect, subscribe and deliver events until the socket closes."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = sock
        try:
            sock.connect(self.path)
            sock.sendall(subscribe_message())
            self.connected = True
            self.deliver(BfdControlUp(time.time()))
            decoder = Decoder()
            while not self.stopping.is_set():
                data = sock.recv(65536)
                if not data:
                    return
                now = time.time()
                for kind, _, document in decoder.feed(data):
                    event = event_of(kind, document, now)
                    if event is not None:
                        self.deliver(event)
        finally:
            self._sock = None
            sock.close()
