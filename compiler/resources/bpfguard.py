"""The node's guard and slice classifier as tc BPF programs (pure data and recipe).

Where the machine runs tc BPF (`Runtime.guard` "bpf-tcx" or "bpf-clsact"), this resource
takes the place of the nftables guard (`IsolationFilter`) and of the u32 filters of the
node's shaping: per node namespace, per guarded device,

* a substrate or public-side device (`ends`): an egress program admits only the planned
  (far end, near end) MAC pairs of one slice and writes the slice's HTB class to
  skb->priority (HTB takes it before any filter); with `ingress`, an ingress program
  judges arriving frames too, where the far end is not a node that guards its egress;
* a border's link to a slice (`sources`, BCP 38): an ingress program admits only IPv4
  packets from the slice's own prefixes;
* a border's access link to a provider (`source_classes`): an egress program puts each
  slice's packets, by source prefix, into its HTB class.

The programs are assembled and loaded by the backend (`dataplane.bpf`, through the Host
port's `bpf_guard_*` verbs); their names carry the digest of what they hold (the
ownership marker: only such names are ever touched), and the namespace's `lo` marker
carries `bpf=DIGEST` of this resource. An end of a `routing: own` slice (issue 14) names
the node end of its own link (`own_ifname`, compiler/guards.py): the backend attaches a
program there that pins the end's MAC pair and class on whatever the slice sends and
steers it onto the device, and the device's ingress program hands arriving frames of the
pair straight into the sliver (dataplane.bpf.programs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import DeviceRef, Resource

HOOKS = ("tcx", "clsact")


@dataclass(frozen=True)
class GuardedEnd:
    """One slice's end of a virtual link on a guarded device: its frames leave with source
    `mac` toward `peer_mac` (and arrive the other way round) in HTB class 1:`classid`."""

    mac: str
    peer_mac: str
    classid: int
    label: str = ""
    own_ifname: str = ""  # routing: own (issue 14): the node end of the slice's veth


@dataclass(frozen=True)
class GuardedDevice:
    ifname: str
    ends: tuple[GuardedEnd, ...] = ()
    ingress: bool = False  # judge arriving frames too (the far end guards nothing)
    sources: tuple[str, ...] = ()  # BCP 38: the prefixes packets entering may come from
    source_classes: tuple[tuple[str, int], ...] = ()  # (source prefix, class minor) leaving


@dataclass(frozen=True, slots=True)
class BpfGuard(Resource):
    """The BPF programs of one node namespace, on `hook` ("tcx" or "clsact")."""

    KIND: ClassVar[str] = "bpfguard"
    PHASE: ClassVar[int] = 4
    MODE: ClassVar[str] = "update"
    hook: str = "tcx"
    devices: tuple[GuardedDevice, ...] = ()

    def make_key(self) -> tuple:
        return (self.KIND, self.ns)

    def describe(self) -> str:
        pairs = sum(len(d.ends) for d in self.devices)
        sources = sum(1 for d in self.devices if d.sources)
        classes = sum(1 for d in self.devices if d.source_classes)
        extra = (f", source guard on {sources}" if sources else "") + (f", classes by source on {classes}"
                                                                        if classes else "")
        return f"BPF guard ({self.hook}) in {self.ns} on {len(self.devices)} devices ({pairs} MAC pairs){extra}"

    def bound_devices(self) -> tuple[DeviceRef, ...]:
        own = [end.own_ifname for device in self.devices for end in device.ends if end.own_ifname]
        return tuple((self.ns, ifname) for ifname in [d.ifname for d in self.devices] + own)  # its programs sit on them

    def create(self, host) -> None:
        host.bpf_guard_apply(self.ns, self.hook, self.devices)
        host.mark(self.ns, "lo", {"bpf": self.digest()})

    def delete(self, host) -> None:
        host.bpf_guard_delete(self.ns)
        host.mark(self.ns, "lo", {"bpf": None})

    @classmethod
    def observe(cls, host, view, desired) -> list[Resource]:
        if "bpf" not in view.lo_tokens:
            return []
        want = desired.get((cls.KIND, view.ns))
        if (isinstance(want, cls) and view.lo_tokens["bpf"] == want.digest()
                and not host.bpf_guard_pending(view.ns, want.hook, want.devices)):
            return [want]
        return [cls(node=view.node, ns=view.ns, hook="")]  # differs: applied again, or removed
