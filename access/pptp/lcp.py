"""LCP, the Link Control Protocol (RFC 1661): what both ends of the PPP link agree on.

Owns the LCP options this engine speaks: MRU (1), ACCM (2, RFC 1662), Authentication-
Protocol (3; CHAP with MS-CHAPv2, RFC 2759, or MD5, RFC 1994), Magic-Number (5), and
accepts PFC (7) and ACFC (8) (we always receive both forms; we never send compressed
headers). Everything else is rejected. Also Echo-Request/Reply (a keepalive with a retry
limit), Discard-Request, Protocol-Reject, and Terminate through `fsm.Automaton`.

The authenticator (server) asks for its preferred method and falls back along its list
when the peer Naks; the peer (client) acks a method it accepts and Naks with its own
first choice otherwise. Pure: time is passed in.
"""
from __future__ import annotations

import os
import struct

from . import fsm

PROTOCOL = 0xC021
MRU, ACCM, AUTH, MAGIC, PFC, ACFC = 1, 2, 3, 5, 7, 8
CHAP = 0xC223
PAP = 0xC023
ALGORITHMS = {"mschapv2": 0x81, "chap-md5": 0x05}
DEFAULT_MRU = 1500
MIN_MRU = 128


def auth_value(method: str) -> bytes:
    return struct.pack("!HB", CHAP, ALGORITHMS[method])


def parse_auth(value: bytes) -> str | None:
    """The method named by an Authentication-Protocol option's value, if we know it."""
    if len(value) == 3 and struct.unpack("!H", value[:2])[0] == CHAP:
        for name, algorithm in ALGORITHMS.items():
            if value[2] == algorithm:
                return name
    return None


def random_magic() -> int:
    while True:
        magic = struct.unpack("!I", os.urandom(4))[0]
        if magic:
            return magic


class Lcp(fsm.Automaton):
    protocol = PROTOCOL
    name = "LCP"
    extra_codes = frozenset({fsm.PROTO_REJ, fsm.ECHO_REQ, fsm.ECHO_REP, fsm.DISCARD_REQ})

    def __init__(self, *, mru: int = DEFAULT_MRU, auth_offer: list[str] | None = None,
                 auth_accept: list[str] | None = None, magic: int | None = None,
                 echo_interval: float = 10.0, echo_failures: int = 4, **timers) -> None:
        super().__init__(**timers)
        self.mru = mru                       # what we receive (we ask the peer to respect it)
        self.auth_offer = list(auth_offer or [])   # authenticator: methods we demand, in order
        self.auth_accept = list(auth_accept or [])  # peer: methods we are willing to do
        self.magic = magic if magic is not None else random_magic()
        self.echo_interval, self.echo_failures = echo_interval, echo_failures
        self._ask = {MRU: mru != DEFAULT_MRU, ACCM: True, MAGIC: True, AUTH: bool(self.auth_offer)}
        self._accm_request = 0
        self.auth: str | None = self.auth_offer[0] if self.auth_offer else None
        # the peer's settings, once we acked its request
        self.peer_mru = DEFAULT_MRU
        self.send_accm = 0xFFFFFFFF
        self.peer_magic = 0
        self._echo_due: float | None = None
        self._echo_missed = 0

    # ---- our request -----------------------------------------------------------------
    def request_options(self) -> list[fsm.Option]:
        options = []
        if self._ask[MRU]:
            options.append((MRU, struct.pack("!H", self.mru)))
        if self._ask[ACCM]:
            options.append((ACCM, struct.pack("!I", self._accm_request)))
        if self._ask[AUTH] and self.auth:
            options.append((AUTH, auth_value(self.auth)))
        if self._ask[MAGIC]:
            options.append((MAGIC, struct.pack("!I", self.magic)))
        return options

    def naked(self, options: list[fsm.Option]) -> None:
        for kind, value in options:
            if kind == MRU and len(value) == 2:
                self.mru = max(MIN_MRU, struct.unpack("!H", value)[0])
                self._ask[MRU] = self.mru != DEFAULT_MRU
            elif kind == ACCM and len(value) == 4:
                self._accm_request |= struct.unpack("!I", value)[0]
            elif kind == MAGIC:
                self.magic = random_magic()
            elif kind == AUTH and self.auth_offer:
                self._next_auth(parse_auth(value))

    def _next_auth(self, suggested: str | None) -> None:
        if suggested in self.auth_offer:
            self.auth = suggested
            return
        remaining = self.auth_offer[self.auth_offer.index(self.auth) + 1:] if self.auth else []
        if not remaining:
            self.give_up("no common authentication protocol")
            return
        self.auth = remaining[0]

    def rejected(self, options: list[fsm.Option]) -> None:
        for kind, _ in options:
            if kind == AUTH and self.auth_offer:
                self.give_up("peer refuses to authenticate")
                return
            if kind in self._ask:
                self._ask[kind] = False
                if kind == MRU:
                    self.mru = DEFAULT_MRU

    # ---- the peer's request ----------------------------------------------------------
    def judge(self, options: list[fsm.Option]) -> fsm.Verdict:
        verdict = fsm.Verdict()
        for kind, value in options:
            if kind == MRU and len(value) == 2:
                if struct.unpack("!H", value)[0] < MIN_MRU:
                    verdict.naked.append((MRU, struct.pack("!H", MIN_MRU)))
            elif kind == ACCM and len(value) == 4:
                pass
            elif kind == MAGIC and len(value) == 4:
                magic = struct.unpack("!I", value)[0]
                if magic == self.magic:  # looped back (or the peer chose ours): pick again
                    verdict.naked.append((MAGIC, struct.pack("!I", random_magic())))
            elif kind in (PFC, ACFC) and not value:
                pass
            elif kind == AUTH and not self.auth_offer and self.auth_accept:
                if parse_auth(value) not in self.auth_accept:
                    verdict.naked.append((AUTH, auth_value(self.auth_accept[0])))
            else:
                verdict.rejected.append((kind, value))
        return verdict

    def peer_acked(self, options: list[fsm.Option]) -> None:
        self.peer_mru, self.send_accm, self.peer_magic = DEFAULT_MRU, 0xFFFFFFFF, 0
        if not self.auth_offer:
            self.auth = None
        for kind, value in options:
            if kind == MRU:
                self.peer_mru = struct.unpack("!H", value)[0]
            elif kind == ACCM:
                self.send_accm = struct.unpack("!I", value)[0]
            elif kind == MAGIC:
                self.peer_magic = struct.unpack("!I", value)[0]
            elif kind == AUTH and not self.auth_offer:
                self.auth = parse_auth(value)

    # ---- echo, discard, protocol reject ------------------------------------------------
    def handle_extra(self, code: int, ident: int, data: bytes, now: float) -> None:
        if self.state != fsm.OPENED:
            return
        if code == fsm.ECHO_REQ:
            self.send(fsm.ECHO_REP, ident, struct.pack("!I", self.magic) + data[4:])
        elif code == fsm.ECHO_REP:
            self._echo_missed = 0
        elif code == fsm.PROTO_REJ and len(data) >= 2:
            self.events.append(("protocol-rejected", struct.unpack("!H", data[:2])[0]))

    def reject_protocol(self, protocol: int, information: bytes) -> None:
        """Tell the peer we do not speak `protocol` (only once LCP is open)."""
        if self.state == fsm.OPENED:
            body = struct.pack("!H", protocol) + information
            self.send(fsm.PROTO_REJ, self.next_ident(), body[:self.peer_mru - 4])

    def layer_up(self) -> None:
        super().layer_up()
        self._echo_missed = 0
        self._echo_due = self._now + self.echo_interval if self.echo_interval > 0 else None

    def layer_down(self) -> None:
        super().layer_down()
        self._echo_due = None

    def deadline(self) -> float | None:
        own = super().deadline()
        if self.state == fsm.OPENED and self._echo_due is not None:
            return self._echo_due if own is None else min(own, self._echo_due)
        return own

    def tick(self, now: float) -> None:
        super().tick(now)
        if self.state == fsm.OPENED and self._echo_due is not None and now >= self._echo_due:
            if self._echo_missed >= self.echo_failures:
                self._now = now
                self.give_up(f"peer did not answer {self._echo_missed} LCP echo requests")
                return
            self._echo_missed += 1
            self.send(fsm.ECHO_REQ, self.next_ident(), struct.pack("!I", self.magic))
            self._echo_due = now + self.echo_interval
