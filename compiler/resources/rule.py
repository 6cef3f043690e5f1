"""A policy routing rule vispd places in a namespace (pure data and recipe): packets that
arrive on `iif` are routed by table `table` — the border router sends what a slice hands to
a provider's next hop to that provider's table — or, with `blackhole`, dropped (what a slice
sends to the border itself for forwarding: it may only leave by a provider's next hop).
Marked by rule protocol `VISPD_RTPROTO`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Resource


@dataclass(frozen=True, slots=True)
class RoutingRule(Resource):
    KIND: ClassVar[str] = "rule"
    PHASE: ClassVar[int] = 5
    iif: str = ""
    table: int = 0
    priority: int = 0
    blackhole: bool = False  # drop instead of looking up `table` (which is then 0)

    def make_key(self) -> tuple:
        return (self.KIND, self.ns, self.iif, self.table, self.priority, self.blackhole)

    @property
    def on_device(self):
        return None  # a rule names its device but outlives it (the kernel keeps it)

    def describe(self) -> str:
        action = "blackhole" if self.blackhole else f"lookup {self.table}"
        return f"rule iif {self.iif} {action} (priority {self.priority}) in {self.ns}"

    def create(self, host) -> None:
        host.rule_add(self.ns, self.iif, self.table, self.priority, self.blackhole)

    def delete(self, host) -> None:
        host.rule_delete(self.ns, self.iif, self.table, self.priority, self.blackhole)

    @classmethod
    def observe(cls, host, view, desired) -> list[Resource]:
        return [cls(node=view.node, ns=view.ns, iif=iif, table=table, priority=priority, blackhole=blackhole)
                for iif, table, priority, blackhole in view.rules]
