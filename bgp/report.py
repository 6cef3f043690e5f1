"""What the helper tells the outside world, and how: the log (stderr, which ExaBGP passes on,
plus the configured log file when stderr is not already that file), session notices on a
UNIX datagram socket, and the status file (JSON, replaced atomically, rate-limited).

I/O: the log, a datagram socket and the status file.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time


class Log:
    def __init__(self, tag: str, log_file: str | None):
        self.tag = tag
        self._file = None
        if log_file and not _same_file(sys.stderr, log_file):
            try:
                self._file = open(log_file, "a", buffering=1)
            except OSError as exc:
                self.write(f"cannot open log file {log_file}: {exc}")

    def write(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} vispd-bgp[{self.tag}] {message}\n"
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        if self._file is not None:
            try:
                self._file.write(line)
            except OSError:
                pass


def _same_file(stream, path: str) -> bool:
    try:
        mine = os.fstat(stream.fileno())
        theirs = os.stat(path)
    except (OSError, ValueError, AttributeError):
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


class Notifier:
    """Sends one JSON line per session event to a UNIX datagram socket; never blocks."""

    def __init__(self, path: str | None, log: Log):
        self.path, self.log = path, log
        self._sock = None
        self._warned = False
        if path:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    def send(self, notice: dict) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendto(json.dumps(notice).encode() + b"\n", self.path)
            return True
        except OSError as exc:
            if not self._warned or exc.errno not in (errno.ENOENT, errno.ECONNREFUSED):
                self.log.write(f"event socket {self.path}: {exc.strerror or exc}")
                self._warned = True
            return False


class StatusWriter:
    MIN_INTERVAL = 0.2

    def __init__(self, path: str | None):
        self.path = path
        self._last = 0.0
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def due(self, now: float, urgent: bool) -> bool:
        return bool(self.path) and (urgent or now - self._last >= self.MIN_INTERVAL)

    def write(self, document: dict, now: float) -> None:
        if not self.path:
            return
        temporary = f"{self.path}.{os.getpid()}.tmp"
        with open(temporary, "w") as handle:
            json.dump(document, handle, indent=1)
        os.replace(temporary, self.path)
        self._last = now
