"""The node's guard, from what the plan's parts asked for (pure): per node namespace, the
nftables guard (`IsolationFilter`, shaping classified by u32) or, where the machine runs tc
BPF (`Runtime.guard` "bpf-tcx" | "bpf-clsact"), the BPF guard (`BpfGuard`), which also
classifies — so the shaping of the devices it covers carries no u32 filter.

The parts say, per node, which devices the guard watches (`PlanParts.guarded`), which
(far end, near end) MAC pairs it admits (`admitted`), which border links to slices it
source-guards (`source_guards`) and how each shaped device's slices are classified
(`classes`: by the near end's MAC, or by source prefix on a border's access links). The
BPF guard needs, besides, on which device each pair rides and whether the far end of a
device guards its own egress; both are read from the planned devices: a pair's near end
is a macvlan stacked on its device, and a veth's far end is a guarded device of a node, or
not (a provider, the public underlay: then arriving frames are judged too).
"""
from __future__ import annotations

from dataclasses import replace

from .context import PlanContext, PlanningError, PlanParts
from .resources import (
    BpfGuard, GuardedDevice, GuardedEnd, IsolationFilter, Macvlan, OwnLink, OwnSteering, Resource, ShapingClass,
    SteeredEnd, Veth,
)

DEFAULT_CLASS = 0xFFFF  # HTB's default class (compiler.resources.shaping): what no slice owns


def bpf_hook(ctx: PlanContext) -> str | None:
    """"tcx" or "clsact" when the node's guard is the BPF one, else None."""
    guard = ctx.runtime.guard
    return guard.removeprefix("bpf-") if guard.startswith("bpf-") else None


def node_guards(ctx: PlanContext, parts: PlanParts) -> tuple[list[Resource], set[tuple[str, str]]]:
    """One guard per node namespace that has anything to guard, and the shaped devices
    (namespace, device) whose classification the guard does (the BPF guard's: their
    shaping needs no u32 filter; none for the nftables guard)."""
    hook = bpf_hook(ctx)
    if hook is None:
        return _nft_guards(ctx, parts) + own_steering(ctx, parts), set()
    layout = _DeviceLayout(ctx, parts)
    guards, classified = [], set()
    for node in ctx.topo.nodes:
        ns = ctx.node_ns(node.name)
        devices = layout.node_devices(node.name)
        if devices:
            guards.append(BpfGuard(node=node.name, ns=ns, hook=hook, devices=devices))
            classified |= {(ns, d.ifname) for d in devices}
    return guards, classified


def own_steering(ctx: PlanContext, parts: PlanParts) -> list[Resource]:
    """Under the nftables guard, one OwnSteering per node namespace with own links: what
    the BPF guard's own-link programs do there, done by nftables."""
    if not any(sl.routing == "own" for sl in ctx.topo.slices):
        return []
    layout, steering = _DeviceLayout(ctx, parts), []
    for node in ctx.topo.nodes:
        ns = ctx.node_ns(node.name)
        ends = tuple(SteeredEnd(own_ifname=end.own_ifname, lower_ifname=ifname, mac=end.mac, peer_mac=end.peer_mac,
                                classid=end.classid)
                     for ifname, ends in sorted(layout.ends_by_device(node.name, ns).items())
                     for end in ends if end.own_ifname)
        if ends:
            steering.append(OwnSteering(node=node.name, ns=ns, ends=ends))
    return steering


def without_matches(classes) -> tuple[ShapingClass, ...]:
    """HTB classes with nothing for u32 to match: the BPF guard writes the class to
    skb->priority, which HTB takes before any filter."""
    return tuple(replace(c, macs=(), sources=()) for c in classes)


def _nft_guards(ctx: PlanContext, parts: PlanParts) -> list[Resource]:
    guards: list[Resource] = []
    for node in ctx.topo.nodes:
        devices = tuple(sorted(parts.guarded.get(node.name, ())))
        sources = tuple(sorted(parts.source_guards.get(node.name, {}).items()))
        if devices or sources:
            guards.append(IsolationFilter(node=node.name, ns=ctx.node_ns(node.name), devices=devices,
                                          pairs=tuple(sorted(parts.admitted.get(node.name, ()))), sources=sources))
    return guards


def _source_classes(parts: PlanParts, ns: str, ifname: str) -> tuple[tuple[str, int], ...]:
    return tuple(sorted({(prefix, c.classid) for c in parts.classes.get((ns, ifname), ()) for prefix in c.sources}))


class _DeviceLayout:
    """Where the planned MACs and devices sit: each macvlan's lower device, each veth's far end."""

    def __init__(self, ctx: PlanContext, parts: PlanParts):
        self.ctx, self.parts = ctx, parts
        self.lower: dict[tuple[str, str], str] = {}  # (node namespace, near MAC) -> device
        self.own: dict[tuple[str, str], str] = {}  # (node namespace, near MAC) -> own link's node end
        self.far: dict[tuple[str, str], tuple[str, str]] = {}  # (ns, device) -> (ns, device) at the other end
        for res in parts.resources:
            if isinstance(res, Macvlan):
                self.lower[(res.lower_ns, res.mac)] = res.lower_ifname
            elif isinstance(res, OwnLink):
                self.lower[(res.ns, res.mac)] = res.lower_ifname
                self.own[(res.ns, res.mac)] = res.ifname
            elif isinstance(res, Veth):
                self.far[(res.ns, res.ifname)] = (res.peer_ns, res.peer_ifname)
                self.far[(res.peer_ns, res.peer_ifname)] = (res.ns, res.ifname)
        self.watched = {(ctx.node_ns(node), device) for node, devices in parts.guarded.items() for device in devices}

    def node_devices(self, node: str) -> tuple[GuardedDevice, ...]:
        ns = self.ctx.node_ns(node)
        ends = self.ends_by_device(node, ns)
        devices = [GuardedDevice(ifname, tuple(sorted(ends.get(ifname, ()), key=lambda e: (e.mac, e.peer_mac))),
                                 ingress=self.far.get((ns, ifname)) not in self.watched)
                   for ifname in sorted(self.parts.guarded.get(node, ()))]
        devices += [GuardedDevice(ifname, sources=tuple(prefixes))
                    for ifname, prefixes in sorted(self.parts.source_guards.get(node, {}).items())]
        devices += [GuardedDevice(ifname, source_classes=_source_classes(self.parts, shaped_ns, ifname))
                    for shaped_ns, ifname in sorted(self.parts.shaped)
                    if shaped_ns == ns and _source_classes(self.parts, shaped_ns, ifname)]
        return tuple(sorted(devices, key=lambda d: d.ifname))

    def ends_by_device(self, node: str, ns: str) -> dict[str, list[GuardedEnd]]:
        ends: dict[str, list[GuardedEnd]] = {}
        for far, near in sorted(self.parts.admitted.get(node, ())):
            ifname = self.lower.get((ns, near))
            if ifname is None:
                raise PlanningError(f"the guard of {node} admits frames to {near}, which is on no device of the node")
            classid = next((c.classid for c in self.parts.classes.get((ns, ifname), ()) if near in c.macs),
                           DEFAULT_CLASS)
            ends.setdefault(ifname, []).append(GuardedEnd(mac=near, peer_mac=far, classid=classid,
                                                          own_ifname=self.own.get((ns, near), "")))
        return ends
