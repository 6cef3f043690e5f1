"""Exact route aggregation (pure integer arithmetic on IPv4 addresses).

A sliver routes a set of addresses toward each neighbour (loopbacks, pseudo-device /30s,
access pools). `exact_cover` turns such a set, given as half-open ranges of addresses
[low, high) as integers, into the fewest CIDR prefixes whose union is *exactly* that set:
overlapping and touching ranges are merged first, then each maximal range is cut from
the left into the largest aligned blocks that fit. A prefix never covers an address
outside the set, so no route ever leads traffic for unused space anywhere (no loops
through addresses nobody holds), and the addresses each neighbour gets are the same as
with one route per target. Cutting a range greedily into aligned blocks is minimal: no
block may straddle a gap, and within a range each cut takes the largest block allowed.
"""
from __future__ import annotations

from collections.abc import Iterable

ADDRESS_BITS = 32


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint, non-touching ranges covering exactly the union of `ranges`."""
    merged: list[list[int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return [(low, high) for low, high in merged]


def aligned_blocks(low: int, high: int) -> list[tuple[int, int]]:
    """The fewest aligned power-of-two blocks covering exactly [low, high), as
    (network address, prefix length), in address order."""
    blocks = []
    while low < high:
        size = 1 << ((high - low).bit_length() - 1)  # the largest power of two that fits
        if low:
            size = min(size, low & -low)  # ... and keeps the block aligned
        blocks.append((low, ADDRESS_BITS + 1 - size.bit_length()))
        low += size
    return blocks


def exact_cover(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The fewest (network, prefix length) prefixes whose union is exactly the union of `ranges`."""
    return [block for low, high in merge_ranges(ranges) for block in aligned_blocks(low, high)]


def cidr_text(network: int, length: int) -> str:
    """'a.b.c.d/len' of an integer address (faster than ipaddress for many prefixes)."""
    return f"{network >> 24}.{(network >> 16) & 255}.{(network >> 8) & 255}.{network & 255}/{length}"
