"""What `vispd check` found: per-phase results, their human lines and their JSON.

Pure.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MAX_DETAIL_LINES = 20


@dataclass
class Reach:
    slice: str
    pairs: int  # ordered pairs of slivers that must reach each other
    failures: list[dict]
    routing: str = "static"
    checked: bool = True  # False for `routing: none`: the slice's own software routes
    cut_off: list[dict] = field(default_factory=list)  # pairs failed links separate: not expected
    converged_after: float | None = None  # OSPF: seconds of retries until every pair answered

    def lines(self) -> list[str]:
        if not self.checked:
            return [f"reach {self.slice}: routing: {self.routing}: reach not checked"]
        head = f"reach {self.slice}: {self.pairs - len(self.failures)}/{self.pairs} pairs ok"
        if self.converged_after is not None and not self.failures:
            head += f" ({self.routing} converged within {self.converged_after:.1f} s)"
        if self.cut_off:
            head += f"; {len(self.cut_off)} pairs cut off by failed links: unreachable by design"
        return [head] + _capped([
            f"  unreachable: {self.slice} {f['from']} ({f['src']}) -> {f['to']} ({f['dst']}): {f['error']}"
            for f in self.failures]) + _capped([
            f"  cut off: {self.slice} {c['from']} ({c['src']}) -> {c['to']} ({c['dst']})" for c in self.cut_off])


@dataclass
class CrossPing:
    source: str
    target: str
    attempts: int
    answered: list[dict]

    def lines(self) -> list[str]:
        verdict = "FAILED" if self.answered else "ok"
        head = (f"cross-ping {self.source} -> {self.target}: {verdict} "
                f"({len(self.answered)}/{self.attempts} echoes answered)")
        return [head] + _capped([f"  answered: {self.source} {a['from']} -> {self.target} {a['dst']}"
                                 for a in self.answered])


@dataclass
class Isolation:
    source: str
    target: str
    leaks: list[dict]
    controls_seen: int
    controls_expected: int
    missing_controls: list[dict]

    @property
    def ok(self) -> bool:
        return not self.leaks and not self.missing_controls

    def lines(self) -> list[str]:
        seen = (f"{self.controls_seen} controls seen" if not self.missing_controls
                else f"{self.controls_seen}/{self.controls_expected} controls seen: inconclusive")
        head = (f"isolation {self.source} -> {self.target}: {'ok' if self.ok else 'FAILED'} "
                f"({len(self.leaks)} frames leaked, {seen})")
        return [head] + _capped([f"  leak: {leak['text']}" for leak in self.leaks]) + _capped([
            f"  control not seen: {m['slice']} {m['from']} -> {m['to']} ({m['dst']})"
            for m in self.missing_controls])


@dataclass
class EgressReach:
    slice: str
    host: str
    slivers: int  # slivers that must reach the host
    failures: list[dict]
    cut_off: list[str] = field(default_factory=list)  # nodes failed links cut off from every egress

    def lines(self) -> list[str]:
        head = f"egress {self.slice}: {self.slivers - len(self.failures)}/{self.slivers} slivers reach {self.host}"
        if self.cut_off:
            head += (f"; {len(self.cut_off)} cut off from every egress by failed links"
                     f" ({', '.join(self.cut_off)}): unreachable by design")
        return [head] + _capped([f"  no way out: {self.slice} {f['from']}: {f['error']}" for f in self.failures])


@dataclass
class SessionCheck:
    """The BGP sessions of one speaker (a slice's egress sliver, or a border router)."""

    slice: str
    node: str
    sessions: int
    down: list[dict]  # {"neighbor", "state", "reason"} of each session not Established

    @property
    def ok(self) -> bool:
        return not self.down

    def lines(self) -> list[str]:
        head = (f"bgp {self.slice}@{self.node}: {self.sessions - len(self.down)}/{self.sessions} sessions "
                f"Established")
        return [head] + _capped([f"  not Established: {d['neighbor']} ({d['state']}): {d['reason']}"
                                 for d in self.down])


@dataclass
class Report:
    topology: str
    reach: list[Reach] = field(default_factory=list)
    egress: list[EgressReach] = field(default_factory=list)
    cross: list[CrossPing] = field(default_factory=list)
    isolation: list[Isolation] = field(default_factory=list)
    spray: dict[str, dict] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failed_links: list[tuple[str, str]] = field(default_factory=list)  # `vispd link down`
    sessions: list[SessionCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (not self.errors and all(not r.failures for r in (*self.reach, *self.egress))
                and all(s.ok for s in self.sessions)
                and all(not c.answered for c in self.cross) and all(i.ok for i in self.isolation))

    def lines(self) -> list[str]:
        lines = [f"error: {e}" for e in self.errors] + [f"warning: {w}" for w in self.warnings]
        if self.failed_links:
            lines.append("links down: " + ", ".join(f"{a}-{b}" for a, b in self.failed_links)
                         + " (their virtual links are not expected to carry anything)")
        for part in (*self.sessions, *self.reach, *self.egress, *self.cross, *self.isolation):
            lines += part.lines()
        lines += [_spray_line(name, tally) for name, tally in sorted(self.spray.items())]
        lines.append(f"{self.topology}: {'ok' if self.ok else 'FAILED'}")
        return lines

    def to_json(self) -> dict:
        return {
            "topology": self.topology, "ok": self.ok, "errors": self.errors, "warnings": self.warnings,
            "failed_links": [list(link) for link in self.failed_links],
            "reach": [vars(r) for r in self.reach],
            "egress": [vars(e) for e in self.egress],
            "bgp_sessions": [{**vars(s), "ok": s.ok} for s in self.sessions],
            "cross_ping": [vars(c) for c in self.cross],
            "isolation": [{**vars(i), "ok": i.ok} for i in self.isolation],
            "spray": self.spray,
        }


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_DETAIL_LINES:
        return lines
    return lines[:MAX_DETAIL_LINES] + [f"  ... and {len(lines) - MAX_DETAIL_LINES} more (see --json)"]


def _spray_line(slice_name: str, tally: dict) -> str:
    sent = ", ".join(f"{n} {kind}" for kind, n in sorted(tally["sent"].items())) or "nothing"
    refused = ", ".join(f"{n}x {why}" for why, n in sorted(tally["errors"].items()))
    return f"spray {slice_name}: sent {sent}" + (f"; refused by the kernel: {refused}" if refused else "")
