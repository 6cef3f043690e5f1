"""Deterministic address allocation (pure).

Slice prefixes: an explicit `prefix` is used as written; otherwise the first aligned block
of `prefix-length` in `address-space` that overlaps no other slice's, in declaration order.

Inside a slice prefix, addresses are indexed by the *topology-wide* position of the node or
link, so adding a node or a link to a slice never renumbers what already exists:

    [ loopbacks: one /32 per topology node | links: one /31 per topology link | pseudo-devices: one /30 each ]

Each block is a power of two, aligned, in that order from the start of the prefix.
"""
from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from .model import Topology


def _pow2(n: int) -> int:
    size = 1
    while size < n:
        size *= 2
    return size


def allocate_slice_prefixes(topology: Topology) -> dict[str, IPv4Network | None]:
    """Map slice name → its prefix (None when no room was left in the address space)."""
    taken = [s.prefix for s in topology.slices if s.prefix is not None]
    result: dict[str, IPv4Network | None] = {}
    for sl in topology.slices:
        if sl.prefix is not None:
            result[sl.name] = sl.prefix
            continue
        chosen = None
        for space in topology.address_space:
            if sl.prefix_length < space.prefixlen:
                continue
            for candidate in space.subnets(new_prefix=sl.prefix_length):
                if not any(candidate.overlaps(t) for t in taken):
                    chosen = candidate
                    break
            if chosen:
                break
        if chosen is not None:
            taken.append(chosen)
        result[sl.name] = chosen
    return result


@dataclass(frozen=True)
class SliceAddressing:
    """The address layout of one slice's prefix."""

    prefix: IPv4Network
    node_count: int
    link_count: int
    pseudo_device_count: int

    @property
    def loopback_block(self) -> int:
        return _pow2(max(self.node_count, 1))

    @property
    def link_block(self) -> int:
        return _pow2(max(self.link_count, 1)) * 2

    @property
    def needed(self) -> int:
        return self.loopback_block + self.link_block + 4 * self.pseudo_device_count

    def fits(self) -> bool:
        return self.needed <= self.prefix.num_addresses

    def loopback(self, node_index: int) -> IPv4Address:
        return self.prefix.network_address + node_index

    def link_pair(self, link_index: int) -> tuple[IPv4Interface, IPv4Interface]:
        """(lower-named end, higher-named end) addresses of a link's /31."""
        base = self.prefix.network_address + self.loopback_block + 2 * link_index
        return IPv4Interface(f"{base}/31"), IPv4Interface(f"{base + 1}/31")

    def pseudo_device_subnet(self, index: int) -> IPv4Network:
        base = self.prefix.network_address + self.loopback_block + self.link_block + 4 * index
        return IPv4Network(f"{base}/30")


def slice_addressing(topology: Topology, slice_name: str, prefix: IPv4Network) -> SliceAddressing:
    sl = topology.slice(slice_name)
    return SliceAddressing(
        prefix=prefix,
        node_count=len(topology.nodes),
        link_count=len(topology.links),
        pseudo_device_count=len(sl.pseudo_devices),
    )
