"""A static route vispd places (pure data and recipe): in a sliver's main table, or in a
node namespace (the border router's routes toward the slices' prefixes, and its per-provider
policy tables). Marked by route protocol `VISPD_RTPROTO`, so nothing else's routes are read or
touched. Routes of one namespace, source address and table are written together in one
netlink batch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Resource

VISPD_RTPROTO = 77  # route protocol number that marks vispd's static routes
MAIN_TABLE = 254


class RouteBatchError(OSError):
    """The kernel refused a route of a batch (the step that failed is `step`)."""

    def __init__(self, step, error) -> None:
        super().__init__(error.errno, str(error))
        self.step = step


@dataclass(frozen=True, slots=True)
class Route(Resource):
    KIND: ClassVar[str] = "route"
    PHASE: ClassVar[int] = 5
    MODE: ClassVar[str] = "update"
    dst: str = ""
    gateway: str = ""
    ifname: str = ""
    prefsrc: str = ""
    table: int = MAIN_TABLE

    def make_key(self) -> tuple:
        return (self.KIND, self.ns, self.dst) + (() if self.table == MAIN_TABLE else (self.table,))

    def describe(self) -> str:
        table = "" if self.table == MAIN_TABLE else f" table {self.table}"
        return f"route {self.dst} via {self.gateway} dev {self.ifname} in {self.ns}{table}"

    @classmethod
    def batched(cls, action: str) -> bool:
        return True  # additions, changes and removals: one netlink batch per namespace and source

    def batch_key(self) -> tuple:
        return (self.ns, self.prefsrc, self.table)

    @classmethod
    def apply_batch(cls, host, steps) -> None:
        first = steps[0].resource
        errors = host.routes_apply(first.ns, first.prefsrc,
                                   [(s.resource.dst, None if s.action == "delete" else s.resource.gateway)
                                    for s in steps], first.table)
        if errors:
            failed = next(s for s in steps if s.resource.dst == errors[0].prefix)
            raise RouteBatchError(failed, errors[0])

    def create(self, host) -> None:
        type(self).apply_batch(host, [_Step("create", self)])

    def delete(self, host) -> None:
        type(self).apply_batch(host, [_Step("delete", self)])

    @classmethod
    def observe(cls, host, view, desired) -> list[Resource]:
        found: list[Resource] = []
        for table, dst, gateway in view.routes:
            key = ("route", view.ns, dst) + (() if table == MAIN_TABLE else (table,))
            want = desired.get(key)
            if want is not None and want.gateway == gateway:
                found.append(want)
            else:
                found.append(cls(node=view.node, ns=view.ns, dst=dst, gateway=gateway, ifname="?", table=table))
        return found


@dataclass(frozen=True)
class _Step:
    action: str
    resource: Route
