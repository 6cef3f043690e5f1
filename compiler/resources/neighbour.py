"""A permanent neighbour entry (pure data and recipe): ARP is off on virtual links, so a
sliver knows its peers' MACs from the plan."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Resource


@dataclass(frozen=True, slots=True)
class Neighbour(Resource):
    KIND: ClassVar[str] = "neighbour"
    PHASE: ClassVar[int] = 3
    MODE: ClassVar[str] = "update"
    ifname: str = ""
    ip: str = ""
    mac: str = ""

    def make_key(self) -> tuple:
        return (self.KIND, self.ns, self.ifname, self.ip)

    def describe(self) -> str:
        return f"neighbour {self.ip} lladdr {self.mac} on {self.ns}/{self.ifname}"

    def create(self, host) -> None:
        host.neighbour_replace(self.ns, self.ifname, self.ip, self.mac)

    def delete(self, host) -> None:
        host.neighbour_delete(self.ns, self.ifname, self.ip)

    @classmethod
    def observe(cls, host, view, desired) -> list[Resource]:
        return [cls(node=view.node, ns=view.ns, ifname=ifname, ip=ip, mac=mac)
                for ifname, ip, mac in view.neighbours]
