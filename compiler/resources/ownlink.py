"""A `routing: own` slice's end of one virtual link (pure data and recipe): a veth pair from
the node namespace (`ov` + hash, the node end) into the slice's sliver (`v-PEER`, the
slice's interface, with the virtual link's planned MAC), instead of the macvlan an ordinary
slice gets.

Why a veth and not a macvlan: a slice that is root in its sliver can change its MACs and
send raw frames with any addresses. On a macvlan such a frame would leave on the substrate
as whatever it claims to be; here every frame it sends enters the node on a device of its
own, where the node's BPF program (dataplane.bpf: `own_ingress`, attached by the node's
guard, which lists this link's node end as the slice end's `own_ifname`) pins the virtual
link's own MAC pair on it, sets the slice's HTB class and steers it onto the substrate
device `lower_ifname`; the far node hands it (bpf_redirect_peer) straight to the far end of
the same virtual link. Under the nftables guard the node namespace's `OwnSteering`
(compiler.resources.ownsteer) does the same with netdev chains and `fwd`. A frame's slice
is decided by where it entered, never by what it claims.

The node end is ours alone: marked `k=ownlink` (so no other veth kind claims it), no ARP,
no address; until its program (or chain) is attached nothing it receives goes anywhere (the node
namespace does not forward, and answers no ARP on it). The sliver end is the slice's: vispd
marks it as the pair's peer and gives it its MAC, MTU and address (which `up` puts back if
it is removed); whatever else the slice does with it is its own business (a MAC it changes
only means frames from its peer, addressed to the planned MAC, no longer reach it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import KIND_TOKEN, Device, DeviceRef


@dataclass(frozen=True)
class OwnLink(Device):
    KIND: ClassVar[str] = "ownlink"
    KERNEL_KIND: ClassVar[str] = "veth"
    PHASE: ClassVar[int] = 2  # with the macvlans: after namespaces and substrate links
    sliver_ns: str = ""
    sliver_ifname: str = ""
    mac: str = ""  # the sliver end's: the virtual link's planned MAC of this end
    lower_ifname: str = ""  # the substrate device (in `ns`) its frames are steered onto

    def describe(self) -> str:
        return (f"own link {self.ns}/{self.ifname} <-> {self.sliver_ns}/{self.sliver_ifname} ({self.mac}, "
                f"steered onto {self.lower_ifname})")

    @property
    def carries(self) -> tuple[DeviceRef, ...]:
        return ((self.sliver_ns, self.sliver_ifname),)

    def create(self, host) -> None:
        host.clear_name(self.ns, self.ifname)
        host.clear_name(self.sliver_ns, self.sliver_ifname)
        host.veth_create(self.ns, self.ifname, self.sliver_ns, self.sliver_ifname, self.mtu, "", self.mac)
        host.mark(self.ns, self.ifname, {KIND_TOKEN: self.KIND, "d": self.digest(),
                                         "peer": f"{self.sliver_ns}/{self.sliver_ifname}"},
                  replace=True, up=True, arp=False, mtu=self.mtu)
        host.mark(self.sliver_ns, self.sliver_ifname, {"role": "peer"}, replace=True, up=True, arp=True,
                  mtu=self.mtu)

    def healthy(self, device) -> bool:
        return super().healthy(device) and device.noarp

    @classmethod
    def claims(cls, device) -> bool:
        return device.kind == cls.KERNEL_KIND and device.tokens.get(KIND_TOKEN) == cls.KIND
