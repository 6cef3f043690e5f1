"""A model of the kernel's routing tables for the scheduling tests (pure): routes per
namespace and table, looked up by longest-prefix match, changed one step at a time in the
order a schedule gives, and the check that no address routed before and after a change is
ever without its route — or forwarded by a route that is neither its old nor its new one.

Addresses are checked exhaustively: the prefixes of the old and new tables cut the address
space into intervals on which the set of matching prefixes is constant, so one address per
interval stands for all of them."""
from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_network

from compiler.diff import Step
from compiler.resources import Route

Table = tuple[str, int]  # (namespace, routing table)
Way = tuple[str, str]  # (gateway, device)


def _prefix(dst: str) -> tuple[int, int]:
    network = ip_network(dst)
    return int(network.network_address), network.prefixlen


@dataclass
class Fib:
    """Each table: (network as an integer, prefix length) -> the way out."""

    tables: dict[Table, dict[tuple[int, int], Way]] = field(default_factory=dict)

    @classmethod
    def of(cls, routes) -> "Fib":
        fib = cls()
        for route in routes:
            if isinstance(route, Route):
                fib.place(route)
        return fib

    def place(self, route: Route) -> None:
        self.tables.setdefault((route.ns, route.table), {})[_prefix(route.dst)] = (route.gateway, route.ifname)

    def remove(self, route: Route) -> None:
        self.tables.get((route.ns, route.table), {}).pop(_prefix(route.dst), None)

    def apply(self, step: Step) -> Table | None:
        """Carry out one step (routes only; the others leave the FIB alone); the table it touched."""
        if not isinstance(step.resource, Route):
            return None
        if step.action == "delete":
            self.remove(step.resource)
        else:
            self.place(step.resource)
        return step.resource.ns, step.resource.table

    def lookup(self, table: Table, address: int) -> Way | None:
        routes = self.tables.get(table, {})
        for length in range(32, -1, -1):
            network = address & (((1 << length) - 1) << (32 - length)) if length else 0
            way = routes.get((network, length))
            if way is not None:
                return way
        return None


def probe_addresses(before: Fib, after: Fib, table: Table) -> list[int]:
    """One address per interval on which the prefixes of both tables that match are constant."""
    cuts: set[int] = set()
    for fib in (before, after):
        for network, length in fib.tables.get(table, {}):
            cuts.update((network, network + (1 << (32 - length))))
    return sorted(c for c in cuts if c < 1 << 32)


@dataclass
class Violation:
    table: Table
    address: int
    old: Way | None
    new: Way | None
    seen: Way | None
    after_step: str

    def __str__(self) -> str:
        a = self.address
        text = f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}"
        return (f"{self.table[0]} (table {self.table[1]}) {text}: old {self.old}, new {self.new}, "
                f"but {self.seen} after '{self.after_step}'")


def replay(before_routes, after_routes, batches: list[tuple[str, list[Step]]]) -> list[Violation]:
    """Apply the batches step by step to the FIB of `before_routes`; every moment at which an
    address that both FIBs route is forwarded neither its old way nor its new one, or goes
    back from its new way to its old one. The batches must end in the FIB of `after_routes`."""
    before, after = Fib.of(before_routes), Fib.of(after_routes)
    fib = Fib.of(before_routes)
    tables = set(before.tables) | set(after.tables)
    probes = {t: probe_addresses(before, after, t) for t in tables}
    expected = {t: {a: (before.lookup(t, a), after.lookup(t, a)) for a in probes[t]} for t in tables}
    switched: set[tuple[Table, int]] = set()
    violations: list[Violation] = []
    for _, steps in batches:
        for step in steps:
            table = fib.apply(step)
            if table is None:
                continue
            for address, (old, new) in expected[table].items():
                if old is None or new is None:
                    continue  # not routed before, or not after: nothing to keep
                seen = fib.lookup(table, address)
                if seen == new:
                    switched.add((table, address))
                elif seen != old or (table, address) in switched:
                    violations.append(Violation(table, address, old, new, seen, step.describe()))
    for table in tables:
        assert fib.tables.get(table, {}) == after.tables.get(table, {}), f"{table}: not the new FIB at the end"
    return violations
