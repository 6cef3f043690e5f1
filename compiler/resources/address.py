"""An IPv4 address on a device vispd owns (pure data and recipe); it goes with its device."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Resource


@dataclass(frozen=True, slots=True)
class Address(Resource):
    KIND: ClassVar[str] = "address"
    PHASE: ClassVar[int] = 3
    ifname: str = ""
    cidr: str = ""

    def make_key(self) -> tuple:
        return (self.KIND, self.ns, self.ifname, self.cidr)

    def describe(self) -> str:
        return f"address {self.cidr} on {self.ns}/{self.ifname}"

    def create(self, host) -> None:
        host.address_replace(self.ns, self.ifname, self.cidr)

    def delete(self, host) -> None:
        host.address_delete(self.ns, self.ifname, self.cidr)

    @classmethod
    def observe(cls, host, view, desired) -> list[Resource]:
        return [cls(node=view.node, ns=view.ns, ifname=ifname, cidr=cidr) for ifname, cidr in view.addresses
                if not (ifname == "lo" and cidr.startswith("127."))]
