"""HTB shaping of a substrate or access device (pure data, `tc -batch` rendering and recipe).

Per device: root HTB `1:` (default class `1:ffff` for anything unclassified), class `1:1`
at the link capacity, one class per slice with its guarantee as rate and the capacity as
ceiling, and u32 filters that classify by the source MAC of the slice's macvlan (matched
at offset -8 from the network header, i.e. the Ethernet source address) or, on a border's
access link where every frame has the node's MAC, by the slice's source prefix. All shaping of a
namespace is written in one `tc -batch`; the device's marker carries `tc=DIGEST`.

A class may carry a `Netem` (on kernels that have netem, compiler.delay plans one per slice
class of a delayed link): a netem qdisc as the class's leaf (handle CLASSID:), so HTB shapes
and netem then delays, drops and jitters — with a pfifo inside when there is jitter, so that
packets keep their order (tc-netem(8)). Netem orphans the packet, so TCP small queues do not
throttle the sender. When every class of a device carries the same netem (the link's), the
default class 1:ffff gets it too: whatever crosses the link is delayed alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Resource

DEFAULT_CLASS = 0xFFFF
DEFAULT_RATE = 8000  # bits/s: what no slice owns gets next to nothing guaranteed
NETEM_MIN_LIMIT = 1000  # netem's own default queue length, in packets
MTU_BYTES = 1500


@dataclass(frozen=True)
class Netem:
    """A netem leaf under an HTB class: one-way delay, jitter (FIFO kept), loss, queue length."""

    delay_us: int
    jitter_us: int = 0
    loss: float = 0.0  # fraction
    limit: int = NETEM_MIN_LIMIT  # packets

    def describe(self) -> str:
        extra = (f" jitter {self.jitter_us}us" if self.jitter_us else "") + (f" loss {_percent(self.loss)}%"
                                                                              if self.loss else "")
        return f"netem {self.delay_us}us{extra}"


def netem_limit(capacity_bits: int, delay_us: int, jitter_us: int = 0) -> int:
    """Packets netem must be able to hold: twice the link's bandwidth-delay product in
    full-size packets, and never less than netem's own default of 1000."""
    in_flight = capacity_bits * (delay_us + jitter_us) / 1e6 / 8 / MTU_BYTES
    return max(NETEM_MIN_LIMIT, int(2 * in_flight) + 1)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.10f}".rstrip("0").rstrip(".")


def render_netem(device: str, classid: int, netem: Netem) -> list[str]:
    """tc batch lines for a netem leaf under HTB class 1:CLASSID of DEVICE (handle
    CLASSID:), with a pfifo inside when there is jitter (FIFO order kept)."""
    if classid in (0, 1):
        raise ValueError("netem goes under a slice's class, not under HTB's root or 1:1")
    line = (f"qdisc replace dev {device} parent 1:{classid:x} handle {classid:x}: netem limit {netem.limit} "
            f"delay {netem.delay_us}us")
    if netem.jitter_us:
        line += f" {netem.jitter_us}us"
    if netem.loss > 0:
        line += f" loss {_percent(netem.loss)}%"
    lines = [line]
    if netem.jitter_us:
        lines.append(f"qdisc replace dev {device} parent {classid:x}:1 pfifo limit {netem.limit}")
    return lines


@dataclass(frozen=True)
class ShapingClass:
    classid: int  # minor number under 1:
    rate: int  # bits/s guaranteed
    ceil: int  # bits/s ceiling
    macs: tuple[str, ...]  # source MACs classified into this class
    label: str = ""
    sources: tuple[str, ...] = ()  # source prefixes classified into this class (access links)
    netem: Netem | None = None  # delay, jitter, loss after the shaping (kernels with netem)


@dataclass(frozen=True, slots=True)
class Shaping(Resource):
    """HTB on a device: the link capacity, one class per slice (guarantee, ceiling)."""

    KIND: ClassVar[str] = "shaping"
    PHASE: ClassVar[int] = 4
    MODE: ClassVar[str] = "update"
    ifname: str = ""
    capacity: int = 0
    classes: tuple[ShapingClass, ...] = ()

    def make_key(self) -> tuple:
        return (self.KIND, self.ns, self.ifname)

    @property
    def link_netem(self) -> Netem | None:
        """The netem every class carries alike (the link's), which the default class gets too."""
        netems = {c.netem for c in self.classes}
        return netems.pop() if len(netems) == 1 else None

    def describe(self) -> str:
        slices = ", ".join(f"{c.label} {c.rate}" for c in self.classes)
        netems = sorted({c.netem.describe() for c in self.classes if c.netem})
        return f"shaping {self.ns}/{self.ifname} capacity {self.capacity} [{slices}]" + "".join(
            f" {n}" for n in netems)

    @classmethod
    def batched(cls, action: str) -> bool:
        return action != "delete"

    @classmethod
    def apply_batch(cls, host, steps) -> None:
        ns = steps[0].resource.ns
        # u32 filters are appended: clear old ones by replacing the root qdisc first.
        prelude = [f"qdisc del dev {s.resource.ifname} root" for s in steps if s.action == "update"]
        if prelude:
            host.run_batch(ns, ["tc", "-force", "-batch", "-"], "\n".join(prelude) + "\n", check=False)
        lines = [line for s in steps for line in render(s.resource)]
        host.run_batch(ns, ["tc", "-batch", "-"], "\n".join(lines) + "\n")
        for step in steps:
            host.mark(ns, step.resource.ifname, {"tc": step.resource.digest()})

    def create(self, host) -> None:
        type(self).apply_batch(host, [_Create(self)])

    def delete(self, host) -> None:
        if not host.device_exists(self.ns, self.ifname):
            return
        host.run_batch(self.ns, ["tc", "-batch", "-"], "\n".join(render_delete(self.ifname)) + "\n", check=False)
        host.mark(self.ns, self.ifname, {"tc": None})

    @classmethod
    def observe(cls, host, view, desired) -> list[Resource]:
        found: list[Resource] = []
        for device in view.devices:
            if "tc" not in device.tokens:
                continue
            want = desired.get(("shaping", view.ns, device.ifname))
            if (want is not None and device.tokens["tc"] == want.digest()
                    and host.qdisc_root_kind(view.ns, device.ifname) == "htb"):
                found.append(want)
            else:
                found.append(cls(node=view.node, ns=view.ns, ifname=device.ifname))
        return found


@dataclass(frozen=True)
class _Create:
    resource: Shaping
    action: str = "create"


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
        for prefix in cls.sources:
            lines.append(f"filter add dev {dev} parent 1: protocol ip prio 2 u32 match ip src {prefix} "
                         f"flowid 1:{cls.classid:x}")
    for cls in shaping.classes:
        if cls.netem is not None:
            lines += render_netem(dev, cls.classid, cls.netem)
    if shaping.link_netem is not None:
        lines += render_netem(dev, DEFAULT_CLASS, shaping.link_netem)
    return lines


def render_delete(ifname: str) -> list[str]:
    return [f"qdisc del dev {ifname} root"]
