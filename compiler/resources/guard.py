"""The node's isolation guard (pure data, nftables rendering and recipe).

In each node namespace, table `netdev vispd` has a set of admitted (source MAC, destination
MAC) pairs (both ends of one slice's virtual link) and, per guarded device, an ingress
chain with policy drop that accepts only those pairs. Broadcast, multicast and frames
between different slices are dropped before macvlan demultiplexing sees them. On a border
router's link to a slice, a source guard (BCP 38) admits only IPv4 packets from the slice's
own prefixes, so no slice can send with another's addresses. The script
deletes and re-creates the table in one transaction, so an update is never half-applied;
the namespace's `lo` marker carries `nft=DIGEST`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import DeviceRef, Resource

TABLE = "vispd"


@dataclass(frozen=True, slots=True)
class IsolationFilter(Resource):
    """On each guarded device, admit only frames whose source and destination MAC belong to
    the same slice (drops broadcast, multicast, cross-slice)."""

    KIND: ClassVar[str] = "filter"
    PHASE: ClassVar[int] = 4
    MODE: ClassVar[str] = "update"
    devices: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()
    sources: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (device, prefixes its packets may come from)

    def make_key(self) -> tuple:
        return (self.KIND, self.ns)

    def describe(self) -> str:
        sources = f", source guard on {len(self.sources)}" if self.sources else ""
        return f"isolation filter in {self.ns} on {len(self.devices)} devices ({len(self.pairs)} MAC pairs){sources}"

    def bound_devices(self) -> tuple[DeviceRef, ...]:
        hooked = list(self.devices) + [device for device, _ in self.sources]
        return tuple((self.ns, device) for device in hooked)  # its hooks are bound to them

    def create(self, host) -> None:
        host.run_batch(self.ns, ["nft", "-f", "-"], render(self, host.marker))
        host.mark(self.ns, "lo", {"nft": self.digest()})

    def delete(self, host) -> None:
        host.run_batch(self.ns, ["nft", "-f", "-"], render_delete(), check=False)
        host.mark(self.ns, "lo", {"nft": None})

    @classmethod
    def observe(cls, host, view, desired) -> list[Resource]:
        if "nft" not in view.lo_tokens:
            return []
        want = desired.get(("filter", view.ns))
        if (want is not None and view.lo_tokens["nft"] == want.digest()
                and host.marker in (host.nft_table_comment(view.ns, "netdev", TABLE) or "")):
            return [want]
        return [cls(node=view.node, ns=view.ns)]


def _chain_name(device: str) -> str:
    return "in_" + device.replace("-", "_")


def render(guard: IsolationFilter, owner: str) -> str:
    lines = [
        f"add table netdev {TABLE}",
        f"delete table netdev {TABLE}",
        f"table netdev {TABLE} {{",
        f'  comment "{owner}"',
        "  set pairs {",
        "    type ether_addr . ether_addr",
    ]
    if guard.pairs:
        elements = ", ".join(f"{src} . {dst}" for src, dst in guard.pairs)
        lines.append(f"    elements = {{ {elements} }}")
    lines.append("  }")
    for device in guard.devices:
        lines += [
            f"  chain {_chain_name(device)} {{",
            f'    type filter hook ingress device "{device}" priority -500; policy drop;',
            "    ether saddr . ether daddr @pairs accept",
            "  }",
        ]
    for device, prefixes in guard.sources:
        lines += [
            f"  chain {_chain_name(device)} {{",
            f'    type filter hook ingress device "{device}" priority -500; policy drop;',
            f"    meta protocol ip ip saddr {{ {', '.join(prefixes)} }} accept",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_delete() -> str:
    return f"add table netdev {TABLE}\ndelete table netdev {TABLE}\n"
