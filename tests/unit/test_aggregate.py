"""Exact route aggregation: known cuts, and on random address sets the cover is exact (no
address outside the set, none left out) and as small as the binary-tree optimum."""
from __future__ import annotations

import random
from ipaddress import IPv4Network, collapse_addresses

from compiler.aggregate import aligned_blocks, cidr_text, exact_cover, merge_ranges


def addresses(blocks: list[tuple[int, int]]) -> list[int]:
    return [a for network, length in blocks for a in range(network, network + (1 << (32 - length)))]


def tree_optimum(members: set[int], low: int, size: int) -> int:
    """The fewest aligned blocks inside [low, low + size) whose union is exactly `members`
    there, by trying every block of the binary tree (an independent definition)."""
    inside = sum(1 for a in range(low, low + size) if a in members)
    if inside == 0:
        return 0
    if inside == size:
        return 1
    half = size // 2
    return tree_optimum(members, low, half) + tree_optimum(members, low + half, half)


def test_a_range_is_cut_into_the_largest_aligned_blocks():
    base = int(IPv4Network("10.0.0.0/24").network_address)
    assert [cidr_text(*b) for b in aligned_blocks(base + 1, base + 7)] == [
        "10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
    assert [cidr_text(*b) for b in aligned_blocks(base, base + 256)] == ["10.0.0.0/24"]
    assert aligned_blocks(5, 5) == []
    assert aligned_blocks(0, 1 << 32) == [(0, 0)]


def test_touching_and_overlapping_ranges_merge():
    assert merge_ranges([(8, 12), (0, 4), (4, 6), (10, 16), (20, 21)]) == [(0, 6), (8, 16), (20, 21)]
    assert exact_cover([(0, 4), (4, 8)]) == [(0, 29)]  # two /30s that make a /29


def test_random_sets_are_covered_exactly_and_minimally():
    rng = random.Random(5)
    for _ in range(400):
        members = {a for a in range(128) if rng.random() < rng.choice((0.2, 0.5, 0.9))}
        ranges = [(a, a + 1) for a in members]
        rng.shuffle(ranges)
        cover = exact_cover(ranges)
        covered = addresses(cover)
        assert len(covered) == len(set(covered))  # no prefix overlaps another
        assert set(covered) == members  # nothing outside the set, nothing left out
        assert len(cover) == tree_optimum(members, 0, 128)


def test_agrees_with_the_standard_library_on_subnets():
    rng = random.Random(9)
    for _ in range(100):
        subnets = [IPv4Network(f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(0, 256, 4)}/30")
                   for _ in range(rng.randint(1, 40))]
        cover = exact_cover((int(s.network_address), int(s.broadcast_address) + 1) for s in subnets)
        assert [cidr_text(*b) for b in cover] == [str(n) for n in collapse_addresses(subnets)]
