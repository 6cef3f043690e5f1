"""A minimal client of BIRD's control socket (what `birdc` speaks), for commands that must
be cheap enough to send often: no process per command.

The protocol: BIRD greets with `0001 BIRD x.y ready.`; each command is one line; a reply is
lines of a 4-digit code followed by `-` (more follows) or a space (last line), or lines
starting with a space (continuations). Codes 8000 and up are errors.

I/O: one UNIX socket connection per command.
"""
from __future__ import annotations

import re
import socket

_LAST = re.compile(rb"^(\d{4}) ", re.M)


class BirdError(RuntimeError):
    pass


def command(socket_path: str, text: str, timeout: float = 2.0) -> list[str]:
    """Send one command and return the reply's lines (codes stripped); raises BirdError on
    an error reply and OSError when BIRD is not there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        _read_reply(sock)  # the greeting
        sock.sendall(text.encode() + b"\n")
        return _read_reply(sock)


def _read_reply(sock: socket.socket) -> list[str]:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise BirdError(f"BIRD closed the control socket (got {data[-200:]!r})")
        data += chunk
        last = None
        for match in _LAST.finditer(data):
            last = match
        if last is not None and data.endswith(b"\n"):
            break
    lines = []
    for raw in data.decode(errors="replace").splitlines():
        code, text = raw[:4], raw[5:]
        if code.isdigit() and int(code) >= 8000:
            raise BirdError(text.strip() or raw)
        lines.append(text if code.isdigit() else raw[1:])
    return lines


def set_protocol(socket_path: str, protocol: str, enabled: bool) -> None:
    """`enable`/`disable` a protocol; already in that state is fine."""
    command(socket_path, f"{'enable' if enabled else 'disable'} {protocol}")
