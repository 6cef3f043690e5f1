"""One PPP link's life (RFC 1661 phases): Establish (LCP), Authenticate (CHAP), Network
(IPCP), Running, Terminate. Pure: the engine feeds it decoded frames and the time, and
takes back wire bytes (HDLC-encoded), events and, at the end, an exit status.

Owns the PPP frame header (address 0xFF, control 0x03, protocol; PFC/ACFC-compressed
headers are accepted on receive), the dispatch of frames to LCP, CHAP, IPCP or the IP
path, Protocol-Reject of everything else (CCP, IPv6CP, ...), and the escaping rule that
LCP frames always use the default ACCM. There is no MPPE: `up` is reported with
`encrypted=False` and the engine says so in its log.
"""
from __future__ import annotations

import os
import struct
from typing import Callable

from . import auth, fsm, hdlc, ipcp, lcp

IP = 0x0021
HEADER = b"\xff\x03"
IP_HEADER = b"\xff\x03\x00\x21"

EXIT_OK, EXIT_CONFIG, EXIT_AUTH, EXIT_NEGOTIATION, EXIT_LINK = 0, 1, 2, 3, 4

DEAD, ESTABLISH, AUTHENTICATE, NETWORK, RUNNING, TERMINATE = (
    "dead", "establish", "authenticate", "network", "running", "terminate")


def split_frame(frame: bytes) -> tuple[int, bytes] | None:
    """(protocol, information) of a frame without FCS; accepts ACFC and PFC."""
    if frame[:2] == HEADER:
        frame = frame[2:]
    if not frame:
        return None
    if frame[0] & 1:  # a compressed (one-octet) protocol field
        return frame[0], frame[1:]
    if len(frame) < 2:
        return None
    return struct.unpack_from("!H", frame)[0], frame[2:]


class Session:
    """role "server": authenticates the peer (`methods`, `lookup`) and assigns `assign`;
    role "client": authenticates as `user`/`password` and takes the address it is given."""

    def __init__(self, role: str, *, mru: int = 1500, methods: list[str] | None = None,
                 lookup: Callable[[str], str | None] | None = None, local: str | None = None,
                 assign: str | None = None, dns: list[str] | None = None,
                 user: str = "", password: str = "", restart: float = 1.0,
                 echo_interval: float = 10.0, echo_failures: int = 4, auth_timeout: float = 15.0,
                 magic: int | None = None, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        if role not in ("server", "client"):
            raise ValueError(role)
        self.role = role
        self.server = role == "server"
        self.methods = list(methods or auth.METHODS)
        self.lookup, self.user, self.password = lookup, user, password
        self.restart, self.auth_timeout, self.random_bytes = restart, auth_timeout, random_bytes
        timers = {"restart": restart}
        self.lcp = lcp.Lcp(mru=mru, auth_offer=self.methods if self.server else None,
                           auth_accept=None if self.server else self.methods, magic=magic,
                           echo_interval=echo_interval, echo_failures=echo_failures, **timers)
        # IPCP starts on each side when that side sees authentication succeed: the server's
        # requests may go unanswered while the client still waits for a lost Success
        ipcp_timers = {**timers, "max_configure": 20, "max_failure": 10}
        self._ipcp_args = dict(local=local, assign=assign, dns=dns, **ipcp_timers) if self.server else \
            dict(local=local, **ipcp_timers)
        self.ipcp = ipcp.Ipcp(**self._ipcp_args)
        self.auth: auth.Authenticator | auth.Peer | None = None
        self.phase = DEAD
        self.events: list[tuple] = []
        self.result: tuple[int, str] | None = None
        self.authenticated_user: str | None = None
        self.ip_in: list[bytes] = []
        self._wire: list[bytes] = []
        self._auth_deadline: float | None = None
        self._addresses: tuple[str, str | None] | None = None  # once IPCP first opened
        self._send_escaped = hdlc.escaped_set(hdlc.DEFAULT_ACCM)
        self._lcp_escaped = hdlc.escaped_set(hdlc.DEFAULT_ACCM)

    # ---- driving -----------------------------------------------------------------------
    def start(self, now: float) -> None:
        self.phase = ESTABLISH
        self.lcp.open(now)
        self._settle(now)

    def close(self, now: float, reason: str, code: int = EXIT_OK) -> None:
        if self.result is None:
            self.result = (code, reason)
        if self.phase in (DEAD,):
            return
        self.phase = TERMINATE
        if self.lcp.state in (fsm.INITIAL, fsm.FINISHED):
            self._dead(reason)
        else:
            self.lcp.close(now, reason)
        self._settle(now)

    def receive(self, frame: bytes, now: float) -> None:
        """One decoded frame (without FCS)."""
        parsed = split_frame(frame)
        if parsed is None:
            return
        protocol, info = parsed
        if protocol == lcp.PROTOCOL:
            self.lcp.receive(info, now)
        elif protocol == auth.PROTOCOL:
            if self.auth is not None:
                self.auth.receive(info, now)
        elif protocol == ipcp.PROTOCOL:
            if self.phase in (NETWORK, RUNNING):
                self.ipcp.receive(info, now)
        elif protocol == IP:
            if self.phase == RUNNING:
                self.ip_in.append(info)
        elif self.lcp.state == fsm.OPENED:
            self.lcp.reject_protocol(protocol, info)
        self._settle(now)

    def deadline(self) -> float | None:
        times = [t for t in (self.lcp.deadline(), self.ipcp.deadline(), self._auth_deadline,
                             self.auth.deadline() if self.auth else None) if t is not None]
        return min(times) if times else None

    def tick(self, now: float) -> None:
        self.lcp.tick(now)
        self.ipcp.tick(now)
        if self.auth is not None:
            self.auth.tick(now)
        if self._auth_deadline is not None and now >= self._auth_deadline:
            self._auth_deadline = None
            self.close(now, "authentication did not complete in time", EXIT_AUTH)
        self._settle(now)

    # ---- output ------------------------------------------------------------------------
    def take_wire(self) -> bytes:
        """The HDLC bytes to write to the pty since the last call."""
        data = b"".join(self._wire)
        self._wire.clear()
        return data

    def encode_ip(self, packet: bytes) -> bytes:
        return hdlc.encode_frame(IP_HEADER + packet, self._send_escaped)

    @property
    def ip_escaped(self) -> bytes:
        """The escape set for data frames (the peer's ACCM), for batch encoders."""
        return self._send_escaped

    @property
    def mtu(self) -> int:
        """The largest IP packet both ends accept: our MRU and the peer's."""
        return min(self.lcp.mru, self.lcp.peer_mru)

    # ---- phases ------------------------------------------------------------------------
    def _emit(self, source) -> None:
        for protocol, packet in source.out:
            escaped = self._lcp_escaped if protocol == lcp.PROTOCOL else self._send_escaped
            self._wire.append(hdlc.encode_frame(HEADER + struct.pack("!H", protocol) + packet, escaped))
        source.out.clear()

    def _settle(self, now: float) -> None:
        """Move output to the wire and act on the layers' events until nothing changes."""
        for _ in range(8):
            events = []
            for source in (self.lcp, self.auth, self.ipcp):
                if source is None:
                    continue
                self._emit(source)
                events.extend(source.events)
                source.events.clear()
            if not events:
                return
            for event in events:
                self._on_event(event, now)

    def _on_event(self, event: tuple, now: float) -> None:
        kind = event[0]
        if kind == "up" and event[1] == "LCP":
            self._send_escaped = hdlc.escaped_set(self.lcp.send_accm)
            self.events.append(("lcp-up", self.lcp.auth))
            self._authenticate(now)
        elif kind == "up" and event[1] == "IPCP":
            addresses = (str(self.ipcp.local), str(self.ipcp.peer) if self.ipcp.peer else None)
            if self._addresses is None:
                self._addresses = addresses
                self.events.append(("up", *addresses, self.mtu, self.authenticated_user))
            elif addresses != self._addresses:  # renegotiated to something else: not supported
                self.close(now, f"IPCP renegotiated other addresses {addresses}", EXIT_NEGOTIATION)
                return
            self.phase = RUNNING
        elif kind == "down":
            if self.lcp.state in (fsm.CLOSING, fsm.FINISHED) or self.ipcp.state in (fsm.CLOSING, fsm.FINISHED):
                pass  # terminating, not renegotiating: "finished" follows
            elif event[1] == "LCP" and self.phase in (AUTHENTICATE, NETWORK) and self.result is None:
                self._renegotiate()  # e.g. our Ack was lost and the peer asked again
            elif event[1] == "IPCP" and self.result is None:
                self.phase = NETWORK  # IP waits until IPCP is open again (same addresses)
            elif self.phase in (NETWORK, RUNNING, AUTHENTICATE) and self.result is None:
                self.close(now, f"{event[1]} went down (peer renegotiates): closing", EXIT_LINK)
        elif kind == "finished" and event[1] == "LCP":
            self._dead(event[2])
        elif kind == "finished" and event[1] == "IPCP":
            if self.phase != TERMINATE:
                self.close(now, event[2], EXIT_NEGOTIATION)
        elif kind == "auth-ok":
            self._auth_deadline = None
            self.authenticated_user = event[1]
            self.events.append(("auth-ok", event[1]))
            self.phase = NETWORK
            self.ipcp.open(now)
        elif kind == "auth-failed":
            self._auth_deadline = None
            self.events.append(("auth-failed", event[1], event[2]))
            who = f" for {event[1]!r}" if event[1] else ""
            self.close(now, f"authentication failed{who}: {event[2]}", EXIT_AUTH)
        elif kind == "protocol-rejected":
            if event[1] in (ipcp.PROTOCOL, IP):
                self.close(now, "peer rejects IP", EXIT_NEGOTIATION)

    def _renegotiate(self) -> None:
        """LCP reopens before the link runs: back to Establish; authenticate again after."""
        self.phase = ESTABLISH
        self.auth = None
        self._auth_deadline = None
        self.authenticated_user = None
        self.ipcp = ipcp.Ipcp(**self._ipcp_args)

    def _authenticate(self, now: float) -> None:
        method = self.lcp.auth
        if self.server:
            self.phase = AUTHENTICATE
            self.auth = auth.Authenticator(method, self.lookup or (lambda user: None),
                                           restart=self.restart, random_bytes=self.random_bytes)
            self.auth.start(now)
        elif method is None:  # the server does not ask us to authenticate
            self.events.append(("auth-ok", None))
            self.phase = NETWORK
            self.ipcp.open(now)
        else:
            self.phase = AUTHENTICATE
            self.auth = auth.Peer(method, self.user, self.password, restart=self.restart,
                                  random_bytes=self.random_bytes)
            self._auth_deadline = now + self.auth_timeout

    def _dead(self, reason: str) -> None:
        if self.result is None:
            codes = {ESTABLISH: EXIT_NEGOTIATION, AUTHENTICATE: EXIT_AUTH, NETWORK: EXIT_NEGOTIATION,
                     RUNNING: EXIT_OK if self.server else EXIT_LINK}  # a client ends a server's link
            self.result = (codes.get(self.phase, EXIT_OK), reason)
        self.phase = DEAD
        self.events.append(("dead",) + self.result)
