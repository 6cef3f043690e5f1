"""Units of a link's delay, jitter and loss as topology files write them (pure).

Durations need a unit (`12ms`, `500us`, `0.5ms`, `1s`; `µs` is accepted for `us`) and are
returned in whole microseconds; loss is a percentage with its `%` (`0.1%`) returned as a
fraction in [0, 1). As in units.py, a bare number is refused: `12` could be ms or s.
Messages are written to follow "FIELD: " (the loader prefixes the key name).
"""
from __future__ import annotations

import re

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|ms|us|µs|ns)$")
_LOSS = re.compile(r"^(\d+(?:\.\d+)?)\s*%$")
_US_PER = {"s": 1_000_000, "ms": 1000, "us": 1, "µs": 1, "ns": 0.001}
MAX_DELAY_US = 10_000_000  # 10 s one way: beyond any terrestrial or geostationary path


def parse_duration_us(text: object) -> int:
    """'12ms' -> 12000, '0.5ms' -> 500, '250us' -> 250; ValueError otherwise."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"must be a duration with a unit such as '12ms', got {text!r}")
    stripped = str(text).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", stripped):
        raise ValueError(f"{stripped!r} has no unit: write e.g. '{stripped}ms' (s, ms, us)")
    match = _DURATION.match(stripped)
    if not match:
        raise ValueError(f"{stripped!r} is not a duration: write a number and s, ms or us "
                         "(e.g. '12ms', '500us')")
    value = float(match.group(1)) * _US_PER[match.group(2)]
    micros = round(value)
    if micros > MAX_DELAY_US:
        raise ValueError(f"{stripped!r} is above the maximum of 10s")
    if value and not micros:
        raise ValueError(f"{stripped!r} is below the resolution of 1us")
    return micros


def parse_loss(text: object) -> float:
    """'0.1%' -> 0.001; a percentage below 100 with its '%'; ValueError otherwise."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"must be a percentage such as '0.1%', got {text!r}")
    stripped = str(text).strip()
    match = _LOSS.match(stripped)
    if not match:
        raise ValueError(f"{stripped!r} is not a loss rate: write a percentage such as '0.1%'")
    percent = float(match.group(1))
    if percent >= 100:
        raise ValueError(f"{stripped!r} would drop every packet: loss must be below 100%")
    return percent / 100


def format_duration_us(micros: int) -> str:
    """Inverse of parse_duration_us for display: 12000 -> '12ms', 500 -> '500us'."""
    if micros and micros % 1000 == 0:
        return f"{micros // 1000}ms"
    if micros >= 1000:
        return f"{micros / 1000:g}ms"
    return f"{micros}us"
