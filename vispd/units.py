"""Explicit units in topology files: bandwidths such as `1G`, `100M`, `512k`, `2.5Gbit`.

Bandwidth is always bits per second, decimal prefixes (as tc and carriers use them).
A bare number is rejected: the unit must be written.
"""
from __future__ import annotations

import re

_BANDWIDTH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT])(?:bit|bps|b)?(?:/s)?\s*$")
_FACTOR = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_bandwidth(text: object) -> int:
    """Return bits/s for '1G', '100M', '2.5Gbit', '512k'; raise ValueError otherwise."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(
            f"bandwidth must be a string with a unit such as '1G' or '100M', got {text!r}"
        )
    match = _BANDWIDTH.match(text)
    if not match:
        raise ValueError(
            f"bad bandwidth {text!r}: write a number and a unit k, M, G or T (e.g. '1G', '100M')"
        )
    value = float(match.group(1)) * _FACTOR[match.group(2).lower()]
    if value < 1000:
        raise ValueError(f"bandwidth {text!r} is below 1 kbit/s")
    return int(value)


def format_bandwidth(bits_per_second: int) -> str:
    """Inverse of parse_bandwidth for display: 1000000000 -> '1G'."""
    for suffix, factor in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if bits_per_second >= factor and bits_per_second % factor == 0:
            return f"{bits_per_second // factor}{suffix}"
    for suffix, factor in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if bits_per_second >= factor:
            return f"{bits_per_second / factor:g}{suffix}"
    return f"{bits_per_second}bit"
