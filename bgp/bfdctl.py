"""FRR bfdd's control socket protocol (`bfdd --bfdctl PATH`), and the events vispd makes of
it. Pure: bytes in, events out (bgp/bfd_watch.py holds the socket).

Read from FRR 8.4's bfdd/bfdctl.h, control.c and config.c. A message is an 8-byte header
(payload length, 32 bits in network order; a 16-bit id that a response echoes; type;
version 1) and a payload: JSON, except a BMT_NOTIFY request, whose payload is a 64-bit
mask in the host's byte order (bfdd memcpy()s it). A client asks with BMT_NOTIFY for
BCM_NOTIFY_PEER_STATE | BCM_NOTIFY_CONFIG; bfdd answers `{"status":"ok"}`, then sends
every session's configuration and state at once, and afterwards a notification (id 0)
as each session changes state or settles its timers. A state notification:

    {"op":"status","ipv6":false,"multihop":false,"peer-address":"192.0.2.0",
     "local-address":"192.0.2.1","id":...,"state":"down","downtime":0,
     "diagnostics":1,"remote-diagnostics":0}

(`state`: up, down, init, adm-down; `diagnostics`: RFC 5880's diagnostic code, 1 when the
peer went silent). A configuration notification (`op` add, update or delete) carries the
local timers (ms) and, once negotiated, the remote ones (`remote-detect-multiplier`,
`remote-transmit-interval`, `remote-receive-interval`). bfdd sends a down notification
only for a session that was up.

The control socket was removed in FRR 10.2 (its successor is the northbound: YANG
notifications); Debian 12's FRR 8.4 has it.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass

HEADER = struct.Struct("!IHBB")   # payload length, id, type, version
VERSION = 1
BMT_RESPONSE, BMT_REQUEST_ADD, BMT_REQUEST_DEL, BMT_NOTIFY, BMT_NOTIFY_ADD, BMT_NOTIFY_DEL = range(1, 7)
NOTIFY_PEER_STATE = 1 << 0
NOTIFY_CONFIG = 1 << 1
MAX_PAYLOAD = 1 << 20             # bfdd's messages are a few hundred bytes: anything this big is garbage

ADMIN_DOWN = 7
DIAGNOSTICS = {0: "no diagnostic", 1: "control detection time expired", 2: "echo function failed",
               3: "neighbor signaled session down", 4: "forwarding plane reset", 5: "path down",
               6: "concatenated path down", 7: "administratively down", 8: "reverse concatenated path down"}


@dataclass(frozen=True)
class BfdState:
    """A BFD session's state as bfdd reports it."""

    peer: str
    state: str            # "up" | "down" | "init" | "adm-down"
    diagnostic: int = 0   # RFC 5880 section 4.1: why the session last went down
    time: float = 0.0
    remote_diagnostic: int = 0   # the peer's: ADMIN_DOWN (7) when it switched BFD off itself


@dataclass(frozen=True)
class BfdTimersSeen:
    """A session's timers (ms), with the remote ones once negotiated (None before)."""

    peer: str
    op: str                        # "add" | "update" | "delete"
    multiplier: int | None = None
    transmit_ms: int | None = None
    receive_ms: int | None = None
    remote_multiplier: int | None = None
    remote_transmit_ms: int | None = None
    remote_receive_ms: int | None = None
    time: float = 0.0


@dataclass(frozen=True)
class BfdControlLost:
    """The control socket is gone (bfdd stopped or restarted, or never started): nothing is
    known of any session until it is back."""

    reason: str
    time: float = 0.0


@dataclass(frozen=True)
class BfdControlUp:
    time: float = 0.0


def diagnostic_text(code: int) -> str:
    return DIAGNOSTICS.get(code, f"diagnostic {code}")


def subscribe_message(ident: int = 1, mask: int = NOTIFY_PEER_STATE | NOTIFY_CONFIG) -> bytes:
    """The BMT_NOTIFY request for the notifications in `mask`."""
    payload = struct.pack("=Q", mask)
    return HEADER.pack(len(payload), ident, BMT_NOTIFY, VERSION) + payload


class ProtocolError(ValueError):
    """The stream is not bfdd's control protocol (bad version or length)."""


class Decoder:
    """Splits the byte stream from bfdd into (type, id, JSON object) messages."""

    def __init__(self):
        self.buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, int, dict]]:
        self.buffer += data
        messages = []
        while len(self.buffer) >= HEADER.size:
            length, ident, kind, version = HEADER.unpack_from(self.buffer)
            if version != VERSION or length > MAX_PAYLOAD:
                raise ProtocolError(f"bad message header (version {version}, length {length})")
            if len(self.buffer) < HEADER.size + length:
                break
            payload = self.buffer[HEADER.size:HEADER.size + length]
            self.buffer = self.buffer[HEADER.size + length:]
            try:
                document = json.loads(payload.decode("utf-8", "replace").rstrip("\0"))
            except ValueError:
                document = {}
            messages.append((kind, ident, document if isinstance(document, dict) else {}))
        return messages


def _int(document: dict, key: str) -> int | None:
    value = document.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def event_of(kind: int, document: dict, now: float):
    """A notification -> BfdState | BfdTimersSeen; None for what vispd does not follow
    (responses, multihop or IPv6 sessions)."""
    if kind != BMT_NOTIFY or document.get("multihop") or document.get("ipv6"):
        return None
    peer, op = document.get("peer-address"), document.get("op")
    if not isinstance(peer, str):
        return None
    if op == "status":
        state = document.get("state")
        return BfdState(peer, state if isinstance(state, str) else "unknown", _int(document, "diagnostics") or 0, now,
                        _int(document, "remote-diagnostics") or 0)
    if op in ("add", "update", "delete"):
        return BfdTimersSeen(peer, op, _int(document, "detect-multiplier"), _int(document, "transmit-interval"),
                             _int(document, "receive-interval"), _int(document, "remote-detect-multiplier") or None,
                             _int(document, "remote-transmit-interval") or None,
                             _int(document, "remote-receive-interval") or None, now)
    return None
