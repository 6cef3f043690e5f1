"""What the node's BPF programs enforce, and the exact map contents (pure).

The planner describes one node namespace with a `NodeGuard`: per guarded device, every
slice's end of a virtual link that rides on it (`SliceEnd`: the sliver's MAC, the far
end's MAC, the slice's HTB class, and for `routing: own` slices the node end of their
veth), and whether frames arriving on the device need judging (`ingress`); a border's
link to a slice is judged by source address instead (`sources`, BCP 38) and a border's
access link to a provider classified by it (`source_classes`). From it this
module renders, per device and hook, the bytes of every map entry and the constants of
each own link's program, plus a digest of them; the digest goes into the program's name
(the ownership marker that `observe` reads back). Interface indexes are kernel state, not
plan: the caller passes a resolver (`ifindex_of`), so a recreated device changes the
digest and gets its program reloaded.
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from ipaddress import IPv4Network

from .asm import mac_bytes
from .programs import VERSION

DEFAULT_CLASS = 0xFFFF  # HTB's `default` class under 1: (what no slice owns)
HTB_MAJOR = 1
PREFIX = "vispd"  # program names: vispd + role letter + digest (15 characters, the most allowed)
ROLES = {"e": "egress guard", "i": "ingress guard", "o": "own link", "s": "source guard",
         "c": "classifier by source"}
DIGEST_LEN = 9


@dataclass(frozen=True)
class SliceEnd:
    """One slice's end of one virtual link on a device: its frames leave with source `mac`
    and destination `peer_mac`, and arrive the other way round."""

    mac: str
    peer_mac: str
    classid: int  # HTB class minor under 1: on this device
    own_ifname: str = ""  # routing: own: the node end of the slice's veth for this link
    label: str = ""  # e.g. "plb@seattle->denver", for messages


@dataclass(frozen=True)
class DeviceGuard:
    ifname: str
    ends: tuple[SliceEnd, ...] = ()
    # Judge arriving frames too: where the far end is not a node that guards its egress
    # (providers, the public underlay, a node still on the nftables guard). Devices that
    # carry own links get the ingress program anyway (it steers their frames).
    ingress: bool = False
    # A border's link to a slice (BCP 38): only IPv4 from these prefixes enters; nothing
    # is judged by MAC on such a device.
    sources: tuple[str, ...] = ()
    # A border's access link to a provider: (source prefix, HTB class minor) per slice;
    # every frame leaves (the node's own included), each slice's in its class.
    source_classes: tuple[tuple[str, int], ...] = ()

    def needs_ingress(self) -> bool:
        return self.ingress or any(end.own_ifname for end in self.ends)

    def egress_role(self) -> str | None:
        """The program on the device's egress: the classifier by source, the MAC pair
        guard, or none (a source-guarded link to a slice)."""
        if self.source_classes:
            return "c"
        return None if self.sources else "e"

    def ingress_role(self) -> str | None:
        if self.sources:
            return "s"
        return "i" if self.needs_ingress() else None


@dataclass(frozen=True)
class NodeGuard:
    """The BPF guard of one node namespace (the nft guard's and u32's job)."""

    ns: str
    devices: tuple[DeviceGuard, ...]
    htb_major: int = HTB_MAJOR

    def priority(self, minor: int) -> int:
        return (self.htb_major << 16) | minor

    def own_ends(self) -> list[tuple[DeviceGuard, SliceEnd]]:
        return [(dev, end) for dev in self.devices for end in dev.ends if end.own_ifname]


@dataclass(frozen=True)
class Program:
    """One program to attach: where, what, and the digest of everything it holds."""

    ifname: str
    hook: str  # "ingress" | "egress"
    role: str  # a ROLES key
    entries: dict  # map key -> value (guards), or the constants (own links)

    @property
    def digest(self) -> str:
        blob = repr((VERSION, self.role, sorted(self.entries.items())))
        return hashlib.sha256(blob.encode()).hexdigest()[:DIGEST_LEN]

    @property
    def name(self) -> str:
        return program_name(self.role, self.digest)


def node_guard(ns: str, devices) -> NodeGuard:
    """The NodeGuard of the planner's devices (compiler.resources.GuardedDevice values:
    read by attribute, so this module stays free of the compiler)."""
    return NodeGuard(ns, tuple(
        DeviceGuard(dev.ifname, tuple(SliceEnd(end.mac, end.peer_mac, end.classid, end.own_ifname, end.label)
                                      for end in dev.ends),
                    ingress=dev.ingress, sources=tuple(dev.sources), source_classes=tuple(dev.source_classes))
        for dev in devices))


def own_link_ifname(*identity: str) -> str:
    """A name for the node end of an own slice's veth (topology, slice, node, peer in, 15
    characters at most out): `ov` and 12 hex digits of a hash, unique in practice and
    stable across runs. The planner may use any other unique name."""
    return "ov" + hashlib.sha256("\0".join(identity).encode()).hexdigest()[:12]


def pair_key(dst: str, src: str) -> bytes:
    """Map key: the first 12 bytes of such a frame (destination, then source)."""
    return mac_bytes(dst) + mac_bytes(src)


def u32(value: int) -> bytes:
    return struct.pack("<I", value)


def egress_entries(guard: NodeGuard, device: DeviceGuard) -> dict[bytes, bytes]:
    """PAIRS map of a device: (far end, near end) -> skb->priority of the slice's class."""
    return {pair_key(end.peer_mac, end.mac): u32(guard.priority(end.classid)) for end in device.ends}


def ingress_entries(device: DeviceGuard, ifindex_of) -> dict[bytes, bytes]:
    """ADMIT map of a device: (near end, far end) -> 0 for the kernel path, or the ifindex
    of the own link's node end to hand the frame to."""
    return {pair_key(end.mac, end.peer_mac): u32(ifindex_of(end.own_ifname) if end.own_ifname else 0)
            for end in device.ends}


def prefix_key(prefix: str) -> bytes:
    """LPM trie key of an IPv4 prefix: its length (host order), then the network address."""
    network = IPv4Network(prefix)
    return u32(network.prefixlen) + network.network_address.packed


def source_entries(device: DeviceGuard) -> dict[bytes, bytes]:
    """SOURCES map of a device: the prefixes its packets may come from."""
    return {prefix_key(prefix): u32(1) for prefix in device.sources}


def source_class_entries(guard: NodeGuard, device: DeviceGuard) -> dict[bytes, bytes]:
    """CLASSES map of a device: source prefix -> skb->priority of its slice's class, and
    0.0.0.0/0 -> HTB's default class for the rest."""
    entries = {prefix_key("0.0.0.0/0"): u32(guard.priority(DEFAULT_CLASS))}
    entries.update({prefix_key(prefix): u32(guard.priority(minor)) for prefix, minor in device.source_classes})
    return entries


def own_constants(guard: NodeGuard, device: DeviceGuard, end: SliceEnd, ifindex_of) -> dict:
    """The immediates of an own link's program (no map: one link, four constants)."""
    return {"mac": end.mac, "peer_mac": end.peer_mac,
            "substrate_ifindex": ifindex_of(device.ifname), "priority": guard.priority(end.classid)}


def programs(guard: NodeGuard, ifindex_of) -> list[Program]:
    """Every program the namespace needs, in attach order (own links before the ingress
    guards that hand frames to them)."""
    out = [Program(end.own_ifname, "ingress", "o", own_constants(guard, dev, end, ifindex_of))
           for dev, end in guard.own_ends()]
    for dev in guard.devices:
        egress, ingress = dev.egress_role(), dev.ingress_role()
        if egress == "e":
            out.append(Program(dev.ifname, "egress", "e", egress_entries(guard, dev)))
        elif egress == "c":
            out.append(Program(dev.ifname, "egress", "c", source_class_entries(guard, dev)))
        if ingress == "i":
            out.append(Program(dev.ifname, "ingress", "i", ingress_entries(dev, ifindex_of)))
        elif ingress == "s":
            out.append(Program(dev.ifname, "ingress", "s", source_entries(dev)))
    return out


def program_name(role: str, digest: str) -> str:
    return f"{PREFIX}{role}{digest}"


def parse_program_name(name: str) -> tuple[str, str] | None:
    """(role, digest) of one of our program names, or None for anyone else's."""
    if len(name) != len(PREFIX) + 1 + DIGEST_LEN or not name.startswith(PREFIX):
        return None
    role = name[len(PREFIX)]
    return (role, name[len(PREFIX) + 1:]) if role in ROLES else None


def check(guard: NodeGuard) -> list[str]:
    """Problems that would make the programs wrong (a planner bug if ever non-empty)."""
    problems = []
    for dev in guard.devices:
        macs = [end.mac for end in dev.ends]
        for mac in sorted({m for m in macs if macs.count(m) > 1}):
            problems.append(f"{dev.ifname}: MAC {mac} is two slices' end")
        for end in dev.ends:
            if mac_bytes(end.mac)[0] & 1 or mac_bytes(end.peer_mac)[0] & 1:
                problems.append(f"{dev.ifname}: {end.label or end.mac}: a multicast MAC")
        if dev.ends and (dev.sources or dev.source_classes):
            problems.append(f"{dev.ifname}: judged both by MAC pairs and by source prefixes")
        if dev.ingress and dev.sources:
            problems.append(f"{dev.ifname}: both an ingress MAC pair guard and a source guard")
        for prefix in list(dev.sources) + [p for p, _ in dev.source_classes]:
            try:
                IPv4Network(prefix)
            except ValueError:
                problems.append(f"{dev.ifname}: not an IPv4 prefix: {prefix}")
    owns = [end.own_ifname for _, end in guard.own_ends()]
    for ifname in sorted({i for i in owns if owns.count(i) > 1}):
        problems.append(f"own link device {ifname} is named twice")
    names = [dev.ifname for dev in guard.devices]
    for ifname in sorted(set(names) & set(owns)):
        problems.append(f"{ifname} is both a guarded device and an own link's node end")
    return problems
