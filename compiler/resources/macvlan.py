"""A sliver's interface on a link (pure data and recipe): a private-mode macvlan on the
node's device for that link, moved into the sliver, with a fixed MAC (the node's guard and
shaping know the slice by it) and ARP off (neighbours are static)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Device, DeviceRef


@dataclass(frozen=True, slots=True)
class Macvlan(Device):
    KIND: ClassVar[str] = "macvlan"
    KERNEL_KIND: ClassVar[str] = "macvlan"
    PHASE: ClassVar[int] = 2
    lower_ns: str = ""
    lower_ifname: str = ""
    mac: str = ""

    def describe(self) -> str:
        return f"macvlan {self.ns}/{self.ifname} on {self.lower_ns}/{self.lower_ifname} ({self.mac})"

    @property
    def stacked_on(self) -> DeviceRef | None:
        return (self.lower_ns, self.lower_ifname)

    def create(self, host) -> None:
        host.clear_name(self.ns, self.ifname)
        host.macvlan_create(self.ns, self.ifname, self.lower_ns, self.lower_ifname, self.mac, self.mtu)
        host.mark(self.ns, self.ifname, {"d": self.digest()}, replace=True, up=True, arp=False, mtu=self.mtu)

    def healthy(self, device) -> bool:
        # Device.healthy, not super(): dataclass(slots=True) makes a new class, which zero-argument super() misses
        return Device.healthy(self, device) and device.mac == self.mac and device.noarp
