"""HTB shaping of substrate devices, rendered as a `tc -batch` script (render is pure).

Per device: root HTB `1:` (default class `1:ffff` for anything unclassified), class `1:1`
at the link capacity, one class per slice with its guarantee as rate and the capacity as
ceiling, and u32 filters that classify by the source MAC of the slice's macvlan (matched
at offset -8 from the network header, i.e. the Ethernet source address).
"""
from __future__ import annotations

from compiler.plan import Shaping

DEFAULT_CLASS = 0xFFFF
DEFAULT_RATE = 8000  # bits/s: what no slice owns gets next to nothing guaranteed


def _quantum(rate_bits: int) -> int:
    # HTB's quantum = rate/r2q; keep it within the range HTB accepts without warnings.
    return max(1514, min(rate_bits // 8 // 10, 200000))


def _mac_match(mac: str) -> str:
    octets = mac.split(":")
    high = "".join(octets[:4])
    low = "".join(octets[4:6])
    return f"match u32 0x{high} 0xffffffff at -8 match u16 0x{low} 0xffff at -4"


def render(shaping: Shaping) -> list[str]:
    """tc batch lines that (re)build the shaping of one device from scratch."""
    dev = shaping.ifname
    cap = shaping.capacity
    lines = [
        f"qdisc replace dev {dev} root handle 1: htb default {DEFAULT_CLASS:x}",
        f"class replace dev {dev} parent 1: classid 1:1 htb rate {cap}bit ceil {cap}bit quantum {_quantum(cap)}",
        f"class replace dev {dev} parent 1:1 classid 1:{DEFAULT_CLASS:x} htb rate {DEFAULT_RATE}bit ceil {cap}bit quantum 1514",
    ]
    for cls in shaping.classes:
        lines.append(
            f"class replace dev {dev} parent 1:1 classid 1:{cls.classid:x} htb rate {cls.rate}bit "
            f"ceil {cls.ceil}bit quantum {_quantum(cls.rate)}"
        )
    for cls in shaping.classes:
        for mac in cls.macs:
            lines.append(
                f"filter add dev {dev} parent 1: protocol all prio 1 u32 {_mac_match(mac)} flowid 1:{cls.classid:x}"
            )
    return lines


def render_delete(ifname: str) -> list[str]:
    return [f"qdisc del dev {ifname} root"]
