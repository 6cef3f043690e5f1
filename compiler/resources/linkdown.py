"""A substrate link taken down on purpose (`vispd link down`), one resource per end (pure
data and recipe): the device (a veth, or a borrowed interface) is administratively down;
deleting the resource brings it up."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import BORROWED_TOKEN, Resource


@dataclass(frozen=True, slots=True)
class LinkDown(Resource):
    KIND: ClassVar[str] = "linkdown"
    PHASE: ClassVar[int] = 2
    ifname: str = ""

    def make_key(self) -> tuple:
        return (self.KIND, self.ns, self.ifname)

    def describe(self) -> str:
        return f"link down {self.ns}/{self.ifname}"

    def create(self, host) -> None:
        host.mark(self.ns, self.ifname, None, up=False)

    def delete(self, host) -> None:
        if host.device_exists(self.ns, self.ifname):
            host.mark(self.ns, self.ifname, None, up=True)

    @classmethod
    def observe(cls, host, view, desired) -> list[Resource]:
        return [cls(node=view.node, ns=view.ns, ifname=d.ifname) for d in view.devices
                if (d.kind == "veth" or BORROWED_TOKEN in d.tokens) and not d.up]
