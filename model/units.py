"""Explicit units in topology files: bandwidths such as `1G`, `100M`, `512k`, `2.5Gbit`.

Bandwidth is always bits per second, decimal prefixes (as tc and carriers use them).
A bare number is rejected: the unit must be written. An optional `bit`, `bps`, `b` and
`/s` may follow the prefix (`1Gb/s` is 1 Gbit/s); an upper-case `B` means bytes and is
rejected with the equivalent in bits, since a factor of 8 is too easy to get wrong.
The value is computed exactly (no float: a number with hundreds of digits is an error, not
an overflow) and must lie between 1k and `MAX_BANDWIDTH` (10T), which tc's 64-bit HTB
rates carry exactly (they go wrong only past about 1.8e19 bit/s).

Pure.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal

from .errors import describe_value, quote

_BANDWIDTH = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKmMgGtT])(?:bit|bps|b)?(?:/s)?$")
_BYTES = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKmMgGtT])(?:B|Bps|B/s|byte|bytes)$")
_FACTOR = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
MIN_BANDWIDTH = 1000
MAX_BANDWIDTH = 10 * 10**12  # 10T: faster than any link of today, far below what tc can carry
_MAX_DIGITS = 16  # of the number before the unit: more cannot be a bandwidth below MAX_BANDWIDTH


def parse_bandwidth(text: object) -> int:
    """Return bits/s for '1G', '100M', '2.5Gbit', '512k', '1Gb/s'; raise ValueError otherwise.

    The messages are written to follow "FIELD: " (the loader prefixes the key name).
    """
    if isinstance(text, bool) or not isinstance(text, (str, int, float)) or \
            isinstance(text, float) and not math.isfinite(text):
        raise ValueError(f"must be a rate with a unit such as '1G' or '100M', got "
                         f"{describe_value(text)}")
    if not isinstance(text, str):
        raise ValueError(_no_unit(describe_value(text)))
    stripped = text.strip()
    shown = quote(text)
    if stripped.startswith("-"):
        raise ValueError(f"{shown} is negative: a bandwidth must be positive")
    match = _BANDWIDTH.match(stripped)
    if not match:
        raise ValueError(_not_a_bandwidth(stripped, shown))
    if len(match.group(1).split(".")[0].lstrip("0")) > _MAX_DIGITS:
        raise ValueError(f"{shown} is above the maximum of 10T (10 Tbit/s)")
    if len(match.group(1)) > 2 * _MAX_DIGITS:
        raise ValueError(f"{shown} has more digits than a bandwidth needs (at most {2 * _MAX_DIGITS})")
    value = int(Decimal(match.group(1)) * _FACTOR[match.group(2).lower()])
    if value < MIN_BANDWIDTH:
        raise ValueError(f"{shown} is below the minimum of 1k (1 kbit/s)")
    if value > MAX_BANDWIDTH:
        raise ValueError(f"{shown} is above the maximum of 10T (10 Tbit/s)")
    return value


def _not_a_bandwidth(stripped: str, shown: str) -> str:
    as_bytes = _BYTES.match(stripped)
    if as_bytes and len(as_bytes.group(1)) <= 2 * _MAX_DIGITS:
        bits = Decimal(as_bytes.group(1)) * 8
        return (f"{shown} is in bytes (B): write bits, e.g. "
                f"'{bits.normalize():f}{as_bytes.group(2).upper().replace('K', 'k')}'")
    if re.fullmatch(r"\d+(?:\.\d+)?", stripped):
        number = stripped if len(stripped) <= 20 else "100"
        return f"{shown} has no unit: write e.g. '{number}M' (k, M, G, T = 10^3.. bits/s)"
    return f"{shown} is not a bandwidth: write a number and a unit k, M, G or T (e.g. '1G', '100M')"


def _no_unit(number: str) -> str:
    return (f"{number} has no unit: write e.g. '{number}M' "
            "(k, M, G, T: 10^3, 10^6, 10^9, 10^12 bits/s)")


def format_bandwidth(bits_per_second: int) -> str:
    """Inverse of parse_bandwidth for display: 1000000000 -> '1G'."""
    for suffix, factor in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if bits_per_second >= factor and bits_per_second % factor == 0:
            return f"{bits_per_second // factor}{suffix}"
    for suffix, factor in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if bits_per_second >= factor:
            return f"{bits_per_second / factor:g}{suffix}"
    return f"{bits_per_second}bit"
