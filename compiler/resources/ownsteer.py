"""The steering of `routing: own` slices where the node's guard is nftables (pure data,
nftables rendering and recipe; issue 14).

Where the machine runs tc BPF, the node's BPF guard steers own slices' frames
(compiler.resources.bpfguard, dataplane.bpf.programs). Where it does not (`Runtime.guard`
"nft", or $VISPD_BPF=off), this resource does the same job with nftables, in its own
table `netdev vispd_own` of the node namespace (beside the guard's `netdev vispd`, which
it never touches):

* on the node end of each own link (`own_ifname`), an ingress chain with policy drop
  rewrites whatever the slice sent to the virtual link's own pair (source = the sliver
  end's planned MAC, destination = the far end's), sets the slice's HTB class
  (skb->priority: nothing the slice set on its sockets survives) and forwards it (`fwd`)
  onto the substrate device (`lower_ifname`). A frame's slice is decided by the device it
  entered, never by what it claims: changed MACs, raw frames, broadcast, multicast, ARP,
  any protocol all leave as the slice's own pair, in the slice's class, toward its own
  peer only;
* on each substrate device that carries own links, an ingress chain that runs before the
  guard's (priority -600 < -500) hands a frame of exactly an own end's pair (the far end
  to the near end) to that own link's node end; every other frame goes on to the guard.

The script deletes and re-creates the table in one transaction (never half applied); the
namespace's `lo` marker carries `own=DIGEST`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import DeviceRef, Resource

TABLE = "vispd_own"
HTB_MAJOR = 1
STEER_PRIORITY = -600  # before the guard's ingress chains (compiler.resources.guard: -500)


@dataclass(frozen=True)
class SteeredEnd:
    """One own slice's end of a virtual link at a node: its own link's node end, the
    substrate device it rides on, its planned MAC pair and its HTB class minor there."""

    own_ifname: str
    lower_ifname: str
    mac: str
    peer_mac: str
    classid: int


@dataclass(frozen=True, slots=True)
class OwnSteering(Resource):
    """The own links of one node namespace, steered by nftables."""

    KIND: ClassVar[str] = "ownsteer"
    PHASE: ClassVar[int] = 4  # after the devices it hooks
    MODE: ClassVar[str] = "update"
    ends: tuple[SteeredEnd, ...] = ()

    def make_key(self) -> tuple:
        return (self.KIND, self.ns)

    def describe(self) -> str:
        devices = len({end.lower_ifname for end in self.ends})
        return f"own-link steering (nftables) in {self.ns}: {len(self.ends)} own links on {devices} devices"

    def bound_devices(self) -> tuple[DeviceRef, ...]:
        hooked = sorted({end.own_ifname for end in self.ends} | {end.lower_ifname for end in self.ends})
        return tuple((self.ns, device) for device in hooked)  # its chains are bound to them

    def create(self, host) -> None:
        host.run_batch(self.ns, ["nft", "-f", "-"], render(self, host.marker))
        host.mark(self.ns, "lo", {"own": self.digest()})

    def delete(self, host) -> None:
        host.run_batch(self.ns, ["nft", "-f", "-"], render_delete(), check=False)
        host.mark(self.ns, "lo", {"own": None})

    @classmethod
    def observe(cls, host, view, desired) -> list[Resource]:
        if "own" not in view.lo_tokens:
            return []
        want = desired.get((cls.KIND, view.ns))
        if (isinstance(want, cls) and view.lo_tokens["own"] == want.digest()
                and host.marker in (host.nft_table_comment(view.ns, "netdev", TABLE) or "")):
            return [want]
        return [cls(node=view.node, ns=view.ns)]  # differs: applied again, or removed


def _chain(prefix: str, device: str) -> str:
    return prefix + device.replace("-", "_")


def render(steering: OwnSteering, owner: str) -> str:
    lines = [f"add table netdev {TABLE}", f"delete table netdev {TABLE}", f"table netdev {TABLE} {{",
             f'  comment "{owner}"']
    for end in sorted(steering.ends, key=lambda e: e.own_ifname):
        lines += [
            f"  chain {_chain('own_', end.own_ifname)} {{",
            f'    type filter hook ingress device "{end.own_ifname}" priority {STEER_PRIORITY}; policy drop;',
            f"    meta priority set {HTB_MAJOR}:{end.classid:x} ether saddr set {end.mac} "
            f'ether daddr set {end.peer_mac} fwd to "{end.lower_ifname}"',
            "  }",
        ]
    for device in sorted({end.lower_ifname for end in steering.ends}):
        arriving = ", ".join(f'{end.peer_mac} . {end.mac} : "{end.own_ifname}"'
                             for end in sorted(steering.ends, key=lambda e: e.mac) if end.lower_ifname == device)
        lines += [
            f"  chain {_chain('steer_', device)} {{",
            f'    type filter hook ingress device "{device}" priority {STEER_PRIORITY}; policy accept;',
            f"    fwd to ether saddr . ether daddr map {{ {arriving} }}",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_delete() -> str:
    return f"add table netdev {TABLE}\ndelete table netdev {TABLE}\n"
