"""IPCP, the IP Control Protocol (RFC 1332, DNS options RFC 1877): the addresses of the link.

Owns the IP-Address option (3) and the DNS options (129 primary, 131 secondary); NBNS
(130, 132), IP-Compression (2, Van Jacobson) and anything else are rejected.

Server: asks for its own address (`local`) and Naks the client's request until it asks
for exactly the address assigned from the pool (`assign`); answers DNS requests with the
configured servers (Nak) or rejects them when there are none.
Client: asks for 0.0.0.0 (or a wanted address) and takes what the server Naks back;
accepts any non-zero address the server gives for itself.
Pure: no I/O.
"""
from __future__ import annotations

import ipaddress

from . import fsm

PROTOCOL = 0x8021
IP_ADDRESS, DNS1, DNS2 = 3, 129, 131
ZERO = ipaddress.IPv4Address(0)


def _addr(value: bytes) -> ipaddress.IPv4Address | None:
    return ipaddress.IPv4Address(value) if len(value) == 4 else None


class Ipcp(fsm.Automaton):
    protocol = PROTOCOL
    name = "IPCP"

    def __init__(self, *, local: str | None = None, assign: str | None = None,
                 dns: list[str] | None = None, **timers) -> None:
        super().__init__(**timers)
        self.server = assign is not None
        self.local = ipaddress.IPv4Address(local) if local else ZERO
        self.assign = ipaddress.IPv4Address(assign) if assign else None
        self.dns = [ipaddress.IPv4Address(a) for a in (dns or [])][:2]
        self.peer: ipaddress.IPv4Address | None = self.assign
        self._ask_address = True

    def request_options(self) -> list[fsm.Option]:
        return [(IP_ADDRESS, self.local.packed)] if self._ask_address else []

    def naked(self, options: list[fsm.Option]) -> None:
        for kind, value in options:
            if kind == IP_ADDRESS and not self.server:
                offered = _addr(value)
                if offered is None or offered == ZERO:
                    self.give_up("server offered no address")
                    return
                self.local = offered
            elif kind == IP_ADDRESS:
                self.give_up("peer refuses our address " + str(self.local))
                return

    def rejected(self, options: list[fsm.Option]) -> None:
        for kind, _ in options:
            if kind == IP_ADDRESS:
                if not self.server:
                    self.give_up("server will not negotiate an address")
                    return
                self._ask_address = False  # the peer learns ours some other way

    def judge(self, options: list[fsm.Option]) -> fsm.Verdict:
        verdict = fsm.Verdict()
        for kind, value in options:
            address = _addr(value)
            if kind == IP_ADDRESS and address is not None:
                if self.server:
                    if address != self.assign:
                        verdict.naked.append((IP_ADDRESS, self.assign.packed))
                elif address == ZERO:
                    verdict.rejected.append((kind, value))  # we have nothing to give
            elif kind in (DNS1, DNS2) and address is not None and self.server and self.dns:
                wanted = self.dns[0] if kind == DNS1 or len(self.dns) == 1 else self.dns[1]
                if address != wanted:
                    verdict.naked.append((kind, wanted.packed))
            else:
                verdict.rejected.append((kind, value))
        return verdict

    def peer_acked(self, options: list[fsm.Option]) -> None:
        for kind, value in options:
            if kind == IP_ADDRESS:
                self.peer = _addr(value)
