"""Bandwidth units: explicit, decimal, bits per second."""
from __future__ import annotations

import pytest

from model.units import format_bandwidth, parse_bandwidth


@pytest.mark.parametrize("text, bits", [
    ("1G", 10**9), ("1g", 10**9), ("100M", 10**8), ("512k", 512_000), ("2.5Gbit", 2_500_000_000),
    ("1Gb/s", 10**9), ("10Mbit/s", 10**7), ("1Gbps", 10**9), ("100 M", 10**8), ("1T", 10**12),
    ("1k", 1000),
])
def test_accepted(text, bits):
    assert parse_bandwidth(text) == bits


@pytest.mark.parametrize("value, fragment", [
    ("fast", "is not a bandwidth"),
    ("1000", "has no unit"),
    (1000, "has no unit: write e.g. '1000M'"),
    (1.5, "has no unit"),
    ("-1G", "is negative"),
    ("100MB", "in bytes (B): write bits, e.g. '800M'"),
    ("1.5GB", "e.g. '12G'"),
    ("0G", "below the minimum"),
    ("999", "has no unit"),
    ("0.5k", "below the minimum"),
    (True, "got true"),
    (None, "got nothing (null)"),
    ([1], "got a list"),
    ("1 G G", "is not a bandwidth"),
])
def test_rejected(value, fragment):
    with pytest.raises(ValueError) as caught:
        parse_bandwidth(value)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("bits, text", [
    (10**9, "1G"), (5 * 10**8, "500M"), (1_200_000_000, "1200M"), (2_500_000_000, "2500M"),
    (1500, "1.5k"), (1000, "1k"), (1234, "1.234k"), (999, "999bit"),
])
def test_format(bits, text):
    assert format_bandwidth(bits) == text


@pytest.mark.parametrize("text", ["1G", "500M", "1234k", "2.5G", "10T"])
def test_format_round_trips(text):
    assert parse_bandwidth(format_bandwidth(parse_bandwidth(text))) == parse_bandwidth(text)
