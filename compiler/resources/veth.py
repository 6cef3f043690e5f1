"""Veth pairs: a substrate link between two node namespaces, or an access link to a lab
host (pure data and recipe). One resource stands for both ends: one request makes the pair
(the Mininet backend makes it a Mininet link instead), and deleting one end deletes both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from model.naming import parse_ns

from .base import Device, DeviceRef


def _sliver(ns: str) -> bool:
    parsed = parse_ns(ns)
    return parsed is not None and parsed[2] is not None


@dataclass(frozen=True, slots=True)
class Veth(Device):
    """One link: a veth pair between two namespaces (this end and the peer)."""

    KIND: ClassVar[str] = "veth"
    KERNEL_KIND: ClassVar[str] = "veth"
    PHASE: ClassVar[int] = 1
    peer_ns: str = ""
    peer_ifname: str = ""
    mac: str = ""  # fixed MACs where others keep static neighbours toward an end
    peer_mac: str = ""
    arp: bool = True

    def describe(self) -> str:
        return f"veth {self.ns}/{self.ifname} <-> {self.peer_ns}/{self.peer_ifname}"

    @property
    def substrate(self) -> bool:
        """Between node and lab namespaces it is laid with them; a veth into a sliver (a
        slice's link to its border router) belongs to that node's part of the plan."""
        return not (_sliver(self.ns) or _sliver(self.peer_ns))

    @property
    def carries(self) -> tuple[DeviceRef, ...]:
        return ((self.peer_ns, self.peer_ifname),)

    def create(self, host) -> None:
        host.clear_name(self.ns, self.ifname)
        host.clear_name(self.peer_ns, self.peer_ifname)
        host.veth_create(self.ns, self.ifname, self.peer_ns, self.peer_ifname, self.mtu,
                         self.mac, self.peer_mac)
        # Both ends are marked; only this end carries the digest, the peer says it is one.
        host.mark(self.ns, self.ifname, {"peer": f"{self.peer_ns}/{self.peer_ifname}", "d": self.digest()},
                  replace=True, up=True, arp=self.arp, mtu=self.mtu)
        host.mark(self.peer_ns, self.peer_ifname, {"role": "peer"}, replace=True, up=True, arp=self.arp,
                  mtu=self.mtu)

    def healthy(self, device) -> bool:
        # a veth's administrative state is LinkDown's business
        return device.tokens.get("d") == self.digest() and device.mtu == self.mtu

    @classmethod
    def broken(cls, node, ns, device) -> "Veth":
        peer_ns, _, peer_if = device.tokens.get("peer", "/").partition("/")
        return cls(node=node, ns=ns, ifname=device.ifname, mtu=-1, peer_ns=peer_ns, peer_ifname=peer_if)
