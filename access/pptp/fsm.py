"""The option negotiation automaton that LCP and IPCP share (RFC 1661 sections 4 and 5).

Owns: the control packet format (code, identifier, length, data), the option list format
(type, length, value), and a compact version of RFC 1661's automaton: Configure-Request
with restart timer and retry limits, Ack/Nak/Reject of the peer's request, Terminate
exchange, Code-Reject. A protocol (LCP, IPCP) subclasses `Automaton` and supplies the
options it asks for and how it judges the peer's.

Pure: time is passed in (`now`, seconds), packets come in as bytes and go out through
`self.out` as (protocol, packet) pairs that the session frames. Layer events are
appended to `self.events`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

CONF_REQ, CONF_ACK, CONF_NAK, CONF_REJ = 1, 2, 3, 4
TERM_REQ, TERM_ACK, CODE_REJ, PROTO_REJ = 5, 6, 7, 8
ECHO_REQ, ECHO_REP, DISCARD_REQ = 9, 10, 11

# states (RFC 1661 names; Closed/Stopped are folded into FINISHED with a reason)
INITIAL, REQ_SENT, ACK_RCVD, ACK_SENT, OPENED, CLOSING, FINISHED = (
    "initial", "req-sent", "ack-rcvd", "ack-sent", "opened", "closing", "finished")

Option = tuple[int, bytes]


def pack_packet(code: int, ident: int, data: bytes = b"") -> bytes:
    return struct.pack("!BBH", code, ident & 0xFF, 4 + len(data)) + data


def unpack_packet(packet: bytes) -> tuple[int, int, bytes] | None:
    """(code, identifier, data) or None if malformed; octets past Length are padding."""
    if len(packet) < 4:
        return None
    code, ident, length = struct.unpack_from("!BBH", packet)
    if length < 4 or length > len(packet):
        return None
    return code, ident, packet[4:length]


def pack_options(options: list[Option]) -> bytes:
    return b"".join(struct.pack("!BB", kind, 2 + len(value)) + value for kind, value in options)


def unpack_options(data: bytes) -> list[Option] | None:
    """The option list, or None if an option's length runs past the data or is below 2."""
    options, at = [], 0
    while at < len(data):
        if at + 2 > len(data):
            return None
        kind, length = data[at], data[at + 1]
        if length < 2 or at + length > len(data):
            return None
        options.append((kind, data[at + 2:at + length]))
        at += length
    return options


@dataclass
class Verdict:
    """How we answer a peer's Configure-Request: Reject wins over Nak wins over Ack."""
    rejected: list[Option] = field(default_factory=list)
    naked: list[Option] = field(default_factory=list)


class Automaton:
    """One control protocol's negotiation. Subclasses override the hooks below."""

    protocol = 0
    name = "?"
    extra_codes: frozenset[int] = frozenset()  # codes handled by `handle_extra`

    def __init__(self, restart: float = 1.0, max_configure: int = 10, max_failure: int = 5,
                 max_terminate: int = 2) -> None:
        self.restart, self.max_configure = restart, max_configure
        self.max_failure, self.max_terminate = max_failure, max_terminate
        self.state = INITIAL
        self.out: list[tuple[int, bytes]] = []
        self.events: list[tuple] = []
        self.finish_reason = ""
        self._ident = 0
        self._req_ident = -1
        self._deadline: float | None = None
        self._retries = 0
        self._naks_sent = 0
        self._term_ident = -1
        self._now = 0.0

    # ---- hooks -----------------------------------------------------------------------
    def request_options(self) -> list[Option]:
        """The options of our next Configure-Request."""
        return []

    def judge(self, options: list[Option]) -> Verdict:
        """Judge the peer's request; empty verdict means Ack."""
        return Verdict(rejected=list(options))

    def acked(self, options: list[Option]) -> None:
        """Our request was acknowledged (the options are ours, as sent)."""

    def naked(self, options: list[Option]) -> None:
        """The peer suggests other values: adjust the next request."""

    def rejected(self, options: list[Option]) -> None:
        """The peer refuses these options: stop asking for them."""

    def peer_acked(self, options: list[Option]) -> None:
        """We acknowledged the peer's request: these are its settings from now on."""

    def handle_extra(self, code: int, ident: int, data: bytes, now: float) -> None:
        """Protocol-specific codes (LCP echo, discard, protocol reject)."""

    def give_up(self, reason: str) -> None:
        """For hooks: negotiation cannot succeed; terminate the layer."""
        self.close(self._now, reason)

    def layer_up(self) -> None:
        self.events.append(("up", self.name))

    def layer_down(self) -> None:
        self.events.append(("down", self.name))

    # ---- driver ----------------------------------------------------------------------
    def next_ident(self) -> int:
        self._ident = (self._ident + 1) & 0xFF
        return self._ident

    def send(self, code: int, ident: int, data: bytes = b"") -> None:
        self.out.append((self.protocol, pack_packet(code, ident, data)))

    def open(self, now: float) -> None:
        self._retries = self.max_configure
        self._send_request(now)
        self.state = REQ_SENT

    def close(self, now: float, reason: str) -> None:
        """Terminate the layer (Terminate-Request, retried, then finished)."""
        if self.state in (FINISHED, CLOSING):
            return
        if self.state == OPENED:
            self.layer_down()
        self.finish_reason = reason
        self._retries = self.max_terminate
        self._term_ident = self.next_ident()
        self.send(TERM_REQ, self._term_ident, reason.encode()[:200])
        self.state = CLOSING
        self._deadline = now + self.restart

    def _finish(self, reason: str) -> None:
        if self.state == OPENED:
            self.layer_down()
        self.state = FINISHED
        self._deadline = None
        self.finish_reason = self.finish_reason or reason
        self.events.append(("finished", self.name, self.finish_reason))

    def _send_request(self, now: float) -> None:
        self._req_ident = self.next_ident()
        self.send(CONF_REQ, self._req_ident, pack_options(self.request_options()))
        self._retries -= 1
        self._deadline = now + self.restart

    def deadline(self) -> float | None:
        return self._deadline

    def tick(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return
        if self.state in (REQ_SENT, ACK_RCVD, ACK_SENT):
            if self._retries <= 0:
                self._finish(f"{self.name}: no answer to Configure-Request")
                return
            if self.state == ACK_RCVD:
                self.state = REQ_SENT
            self._send_request(now)
        elif self.state == CLOSING:
            if self._retries <= 0:
                self._finish(self.finish_reason)
                return
            self._retries -= 1
            self.send(TERM_REQ, self._term_ident, self.finish_reason.encode()[:200])
            self._deadline = now + self.restart
        else:
            self._deadline = None

    def receive(self, packet: bytes, now: float) -> None:
        self._now = now
        parsed = unpack_packet(packet)
        if parsed is None or self.state in (INITIAL, FINISHED):
            return
        code, ident, data = parsed
        if code == CONF_REQ:
            self._on_request(ident, data, now)
        elif code in (CONF_ACK, CONF_NAK, CONF_REJ):
            self._on_reply(code, ident, data, now)
        elif code == TERM_REQ:
            self.send(TERM_ACK, ident)
            if self.state != CLOSING:
                self.finish_reason = "peer terminated: " + data.decode("utf-8", "replace")
                self._finish(self.finish_reason)
        elif code == TERM_ACK:
            if self.state == CLOSING:
                self._finish(self.finish_reason)
            elif self.state == OPENED:  # RFC 1661: renegotiate
                self.layer_down()
                self.open(now)
        elif code == CODE_REJ:
            pass  # we only send codes every implementation knows
        elif code in self.extra_codes:
            self.handle_extra(code, ident, data, now)
        else:
            self.send(CODE_REJ, self.next_ident(), packet[:4 + len(data)])

    def _on_request(self, ident: int, data: bytes, now: float) -> None:
        if self.state == CLOSING:
            return
        options = unpack_options(data)
        if options is None:
            return  # malformed: silently discard
        verdict = self.judge(options)
        if self.state in (FINISHED, CLOSING):  # the hook gave up
            return
        if verdict.naked and self._naks_sent >= self.max_failure:
            verdict = Verdict(rejected=verdict.rejected or [
                o for o in options if o[0] in {k for k, _ in verdict.naked}])
        if self.state == OPENED:  # peer renegotiates: so do we
            self.layer_down()
            self._retries = self.max_configure
            self._send_request(now)
            self.state = REQ_SENT
        if verdict.rejected:
            self.send(CONF_REJ, ident, pack_options(verdict.rejected))
            self._not_acked()
        elif verdict.naked:
            self._naks_sent += 1
            self.send(CONF_NAK, ident, pack_options(verdict.naked))
            self._not_acked()
        else:
            self._naks_sent = 0
            self.send(CONF_ACK, ident, data)
            self.peer_acked(options)
            if self.state == ACK_RCVD:
                self.state = OPENED
                self._deadline = None
                self.layer_up()
            elif self.state == REQ_SENT:
                self.state = ACK_SENT

    def _not_acked(self) -> None:
        if self.state == ACK_SENT:
            self.state = REQ_SENT

    def _on_reply(self, code: int, ident: int, data: bytes, now: float) -> None:
        if ident != self._req_ident or self.state not in (REQ_SENT, ACK_RCVD, ACK_SENT, OPENED):
            return  # stale or unsolicited
        options = unpack_options(data)
        if options is None:
            return
        if code == CONF_ACK:
            if data != pack_options(self.request_options()):
                return  # an Ack must repeat our request exactly
            self.acked(options)
            if self.state == REQ_SENT:
                self.state = ACK_RCVD
                self._retries = self.max_configure
            elif self.state == ACK_SENT:
                self.state = OPENED
                self._deadline = None
                self.layer_up()
            elif self.state == OPENED:
                self.layer_down()
                self._send_request(now)
                self.state = REQ_SENT
            return
        if code == CONF_NAK:
            self.naked(options)
        else:
            self.rejected(options)
        if self.state in (FINISHED, CLOSING):  # a hook gave up (`give_up`)
            return
        if self.state == OPENED:
            self.layer_down()
            self.state = REQ_SENT
        elif self.state == ACK_RCVD:
            self.state = REQ_SENT
        self._send_request(now)
