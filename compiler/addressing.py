"""Deterministic address allocation (pure).

Slice prefixes: an explicit `prefix` is used as written; otherwise an aligned block of
`prefix-length` in `address-space`, searched from a position derived from the slice's
*name* (so removing or reordering other slices does not move it), skipping blocks that
overlap explicit prefixes or slices allocated before it.

Inside a slice prefix the layout is fixed by the prefix size alone, and addresses are
indexed by the *topology-wide* position of the node or link, so adding nodes or links never
renumbers what already exists (append new links at the end of `links:` to keep that):

    [ loopbacks: first quarter, one /32 per node | links: middle half, one /31 per link |
      last quarter: /30s for pseudo-devices and local sockets (its lower half), then /28
      client pools for remote access points (its upper half) ]
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from model.schema import Topology

from .access_types import ACCESS_TYPES


def name_hash(name: str) -> int:
    """A stable 32-bit hash of a name (crc32: the same in every Python run)."""
    return zlib.crc32(name.encode())


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
            count = 2 ** (sl.prefix_length - space.prefixlen)
            size = 2 ** (32 - sl.prefix_length)
            start = name_hash(sl.name) % count
            for step in range(count):
                base = space.network_address + ((start + step) % count) * size
                candidate = IPv4Network(f"{base}/{sl.prefix_length}")
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
    pseudo_device_count: int  # TUN/TAP pseudo-devices and local-socket relays: a /30 each
    pool_count: int = 0  # remote-access client pools: a /28 each

    POOL_SIZE = 16

    @property
    def loopback_block(self) -> int:
        return self.prefix.num_addresses // 4

    @property
    def link_block(self) -> int:
        return self.prefix.num_addresses // 2

    @property
    def needed(self) -> int:
        """Addresses this prefix size would need for the counts (each block has a quarter/half)."""
        quarters = max(self.node_count, self.link_count, self.pseudo_device_count * 8,
                       self.pool_count * self.POOL_SIZE * 2)
        return 4 * quarters

    def fits(self) -> bool:
        eighth = self.prefix.num_addresses // 8
        return (self.node_count <= self.loopback_block
                and 2 * self.link_count <= self.link_block
                and 4 * self.pseudo_device_count <= eighth
                and self.POOL_SIZE * self.pool_count <= eighth)

    def loopback(self, node_index: int) -> IPv4Address:
        return self.prefix.network_address + node_index

    def link_pair(self, link_index: int) -> tuple[IPv4Interface, IPv4Interface]:
        """(lower-named end, higher-named end) addresses of a link's /31."""
        base = self.prefix.network_address + self.loopback_block + 2 * link_index
        return IPv4Interface(f"{base}/31"), IPv4Interface(f"{base + 1}/31")

    def pseudo_device_subnet(self, index: int) -> IPv4Network:
        base = self.prefix.network_address + self.loopback_block + self.link_block + 4 * index
        return IPv4Network(f"{base}/30")

    def access_pool(self, index: int) -> IPv4Network:
        """The index-th client pool (/28) of the slice's remote access points."""
        base = (self.prefix.network_address + self.loopback_block + self.link_block
                + self.prefix.num_addresses // 8 + self.POOL_SIZE * index)
        return IPv4Network(f"{base}/28")


def access_points(topology: Topology, slice_name: str) -> list[tuple[int, object, str]]:
    """(entry index, access entry, node) for each of a slice's access points, in file order."""
    points = []
    members = topology.slice_nodes(topology.slice(slice_name))
    for index, entry in enumerate(topology.access):
        if entry.slice != slice_name:
            continue
        nodes = members if entry.nodes == "all" else [n for n in members if n in entry.nodes]
        points.extend((index, entry, node) for node in nodes)
    return points


def slice_addressing(topology: Topology, slice_name: str, prefix: IPv4Network) -> SliceAddressing:
    sl = topology.slice(slice_name)
    points = access_points(topology, slice_name)
    return SliceAddressing(
        prefix=prefix,
        node_count=len(topology.nodes),
        link_count=len(topology.links),
        pseudo_device_count=len(sl.pseudo_devices) + sum(1 for _, e, _ in points if _takes_socket_subnet(e)),
        pool_count=sum(1 for _, e, _ in points if not _takes_socket_subnet(e) and e.pool is None),
    )


def _takes_socket_subnet(entry) -> bool:
    return ACCESS_TYPES[entry.type].SUBNET == "socket"


def access_subnets(topo: Topology, slice_name: str, layout: SliceAddressing) -> list[tuple[str, str, IPv4Network]]:
    """(node, type, subnet) of each access point of a slice: socket-like types take /30s
    after the pseudo-devices, remote ones their `pool` or the next /28 pool."""
    sl = topo.slice(slice_name)
    result = []
    next_socket, next_pool = len(sl.pseudo_devices), 0
    for _, entry, node in access_points(topo, slice_name):
        if _takes_socket_subnet(entry):
            result.append((node, entry.type, layout.pseudo_device_subnet(next_socket)))
            next_socket += 1
        elif entry.pool is not None:
            result.append((node, entry.type, entry.pool))
        else:
            result.append((node, entry.type, layout.access_pool(next_pool)))
            next_pool += 1
    return result
