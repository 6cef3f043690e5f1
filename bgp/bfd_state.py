"""What the border router knows of each provider's BFD session, and what it should do about
it (pure). bgp/border.py asks; bgp/bfd_watch.py brings the events.

A provider's BFD session is `off` (the provider runs without BFD), `unknown` (bfdd not
heard from: not started yet, or its control socket was lost), or what bfdd says: `up`,
`down`, `init`, `adm-down`. As BGP implementations do (FRR, BIRD), only a session that was
up and goes down is a failure: BFD that never came up (a provider that does not answer
BFD) or that the provider took down itself (AdminDown, RFC 5882 section 3.2) drops
nothing; `vispd check` says so instead. A failure drops the provider's BGP session at
once. Losing bfdd makes every session `unknown` (the border is then as it is without BFD:
the hold timer decides).

The BGP session may come back while BFD is still down, and is kept: after a silent
failure it cannot come back before the path does, and once back the provider's BFD comes
up with it. Holding BGP down until BFD is up would deadlock with BIRD, which makes a new
BFD session each time its BGP session starts (measured: after a drop, BIRD's BFD stayed
Down for as long as the border kept tearing its new sessions down).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from bgp.bfdctl import ADMIN_DOWN, BfdControlLost, BfdControlUp, BfdState, BfdTimersSeen, diagnostic_text
from compiler.daemons.bfd import BfdSection

TEARDOWN_SUBCODE = 4   # Cease / Administrative Reset (RFC 4486): we reset it, it may come back


def teardown_command(address: str) -> str:
    """ExaBGP 5's API command that drops one session now (a Cease NOTIFICATION, then the
    TCP connection closes; measured: its `down` event follows within a millisecond, also
    when the peer is silent); ExaBGP then reconnects on its own."""
    return f"neighbor {address} teardown {TEARDOWN_SUBCODE}"


@dataclass
class BfdSession:
    name: str
    address: str
    interval_ms: int
    multiplier: int
    state: str = "unknown"
    since: float = 0.0
    diagnostic: int = 0
    was_up: bool = False     # up since bfdd was last heard: going down now is a failure
    failures: int = 0
    last_failure: float | None = None
    remote: dict = field(default_factory=dict)   # multiplier, transmit_ms, receive_ms once negotiated

    def detect_ms(self) -> int:
        """How long a silent provider takes to be declared down (RFC 5880 section 6.8.4:
        the remote's multiplier times the slower of our receive and its transmit interval)."""
        multiplier = self.remote.get("multiplier") or self.multiplier
        transmit = max(self.interval_ms, self.remote.get("transmit_ms") or self.interval_ms)
        return multiplier * transmit


class BfdTracker:
    """The BFD sessions of one border router, by provider address."""

    def __init__(self, section: BfdSection | None, now: float):
        self.control_socket = section.control_socket if section else None
        self.sessions = {p.address: BfdSession(p.name, p.address, p.timers.interval_ms, p.timers.multiplier,
                                               since=now) for p in (section.peers if section else ())}
        self.control_up = False
        self.control_problem = "" if section else "no BFD"

    def follows(self, address: str) -> bool:
        return address in self.sessions

    def apply(self, event, now: float) -> tuple[str, BfdSession] | None:
        """Record an event; ("failed" | "restored", session) when it is one the border must
        act on or report (restored: up again after a failure), else None."""
        if isinstance(event, BfdControlUp):
            self.control_up, self.control_problem = True, ""
            return None
        if isinstance(event, BfdControlLost):
            self.control_up, self.control_problem = False, event.reason
            for session in self.sessions.values():
                session.state, session.since, session.was_up = "unknown", now, False
            return None
        session = self.sessions.get(getattr(event, "peer", None))
        if session is None:
            return None
        if isinstance(event, BfdTimersSeen):
            if event.op != "delete" and event.remote_multiplier:
                session.remote = {"multiplier": event.remote_multiplier, "transmit_ms": event.remote_transmit_ms,
                                  "receive_ms": event.remote_receive_ms}
            return None
        if not isinstance(event, BfdState) or event.state == session.state:
            return None
        previous, session.state, session.since = session.state, event.state, now
        if event.state != "up":
            session.diagnostic = event.diagnostic
        if event.state == "up":
            session.was_up = True
            return ("restored", session) if session.failures else None
        if event.remote_diagnostic == ADMIN_DOWN:   # the provider switched BFD off: no failure (RFC 5882 3.2)
            session.was_up = False
            return None
        if previous == "up" and session.was_up and event.state in ("down", "init"):
            session.failures += 1
            session.last_failure = now
            return "failed", session
        return None

    def status(self, address: str, now: float) -> dict:
        """The provider's BFD for the border's status document."""
        session = self.sessions.get(address)
        if session is None:
            return {"state": "off"}
        entry = {"state": session.state, "since": session.since, "interval_ms": session.interval_ms,
                 "multiplier": session.multiplier, "detect_ms": session.detect_ms(),
                 "failures": session.failures,
                 "last_failure": session.last_failure, "remote": dict(session.remote)}
        if session.state != "up" and session.diagnostic:
            entry["diagnostic"] = diagnostic_text(session.diagnostic)
        if not self.control_up and self.control_problem:
            entry["problem"] = self.control_problem
        return entry
