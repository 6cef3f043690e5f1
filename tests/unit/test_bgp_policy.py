"""Announcement safety (compiler.policy): only the slice's allocation, nothing longer than /24, at
most 5 prepends and 5 communities, each refusal with a reason naming the rule."""
from __future__ import annotations

import pytest

from compiler.daemons.speaker_config import Announcement
from compiler.policy import refusal_reason, screen

ALLOCATION = ["198.18.0.0/22"]


def reason(prefix: str, prepend=0, communities=(), allowed=ALLOCATION):
    return refusal_reason(Announcement(prefix, prepend, tuple(communities)), allowed)


@pytest.mark.parametrize("prefix", ["198.18.0.0/22", "198.18.0.0/23", "198.18.3.0/24", "198.18.2.0/24"])
def test_prefixes_inside_the_allocation_up_to_24_are_accepted(prefix):
    assert reason(prefix) is None


@pytest.mark.parametrize("prefix, expected", [
    ("10.0.0.0/24", "10.0.0.0/24 is outside the slice's allocation (198.18.0.0/22)"),
    ("198.18.0.0/21", "outside the slice's allocation"),          # a supernet of the allocation
    ("198.18.4.0/24", "outside the slice's allocation"),          # the neighbouring block
    ("0.0.0.0/0", "outside the slice's allocation"),
    ("198.18.0.0/25", "198.18.0.0/25 is longer than /24"),
    ("198.18.0.1/32", "longer than /24"),
    ("198.18.0.1/22", "host bits set (the network is 198.18.0.0/22)"),
    ("198.18.0.0", "has no prefix length"),
    ("banana", "is not an IP prefix"),
    ("2001:db8::/32", "is not IPv4"),
])
def test_unsafe_prefixes_are_refused_with_the_rule(prefix, expected):
    assert expected in reason(prefix)


def test_no_allocation_means_nothing_may_be_announced():
    assert "outside the slice's allocation (none)" in reason("198.18.0.0/24", allowed=[])


def test_any_of_several_allocations_will_do():
    assert reason("203.0.113.0/24", allowed=["198.18.0.0/22", "203.0.113.0/24"]) is None


def test_prepend_limit():
    assert reason("198.18.0.0/24", prepend=5) is None
    assert reason("198.18.0.0/24", prepend=6) == "prepend 6 exceeds the limit of 5"
    assert "not a non-negative integer" in reason("198.18.0.0/24", prepend=-1)
    assert "not a non-negative integer" in reason("198.18.0.0/24", prepend="2")
    assert "not a non-negative integer" in reason("198.18.0.0/24", prepend=True)


def test_community_limit_and_form():
    five = [f"64512:{i}" for i in range(5)]
    assert reason("198.18.0.0/24", communities=five) is None
    assert reason("198.18.0.0/24", communities=five + ["64512:9"]) == "6 communities exceed the limit of 5"
    assert "not of the form ASN:VALUE" in reason("198.18.0.0/24", communities=["no-export"])
    assert "not of the form ASN:VALUE" in reason("198.18.0.0/24", communities=["1:2:3"])
    assert "outside 0..65535" in reason("198.18.0.0/24", communities=["70000:1"])


def test_screen_splits_and_refuses_duplicates():
    announcements = [Announcement("198.18.0.0/22"), Announcement("10.0.0.0/8"),
                     Announcement("198.18.0.0/22", prepend=1), Announcement("198.18.1.0/24", prepend=9)]
    accepted, refused = screen(announcements, ALLOCATION)
    assert accepted == [Announcement("198.18.0.0/22")]
    assert [r.announcement.prefix for r in refused] == ["10.0.0.0/8", "198.18.0.0/22", "198.18.1.0/24"]
    assert "announced twice" in refused[1].reason
    assert refused[2].as_dict() == {"prefix": "198.18.1.0/24", "prepend": 9, "communities": [],
                                    "reason": "prepend 9 exceeds the limit of 5"}
