"""A slice's pseudo-device (pure data and recipe): a persistent TUN or TAP owned by the
slice's uid/gid, so its programs attach without privileges."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Device


@dataclass(frozen=True, slots=True)
class TunTap(Device):
    KIND: ClassVar[str] = "tuntap"
    KERNEL_KIND: ClassVar[str] = "tun"
    PHASE: ClassVar[int] = 2
    mode: str = "tun"
    uid: int = 0
    gid: int = 0

    def create(self, host) -> None:
        host.clear_name(self.ns, self.ifname)
        host.tuntap_create(self.ns, self.ifname, self.mode, self.uid, self.gid)
        host.mark(self.ns, self.ifname, {"d": self.digest()}, replace=True, up=True, arp=True, mtu=self.mtu)
