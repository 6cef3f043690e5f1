"""The compiled plan (pure data): the topology's resources, each with a stable key, and
what users and `check` need to know about slivers and access points.

A `Plan` is what `vispd up` wants the machine to hold for one topology. Every resource
names the network namespace it lives in and the substrate node whose agent applies it,
so a node's part of the plan (`Plan.for_node`) can be shipped to and applied on that
node alone. The same resource kinds (compiler.resources) describe what a backend
*observes*, which is what makes `diff(observed, desired)` a plain comparison of keyed values.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .resources import Netns, Resource


@dataclass(frozen=True)
class SliverInfo:
    """What users and `check` need to know about one sliver (not a kernel object)."""

    slice: str
    node: str
    ns: str
    loopback: str
    uid: int
    gid: int
    interfaces: tuple[tuple[str, str, str], ...]  # (ifname, address/31, mac)
    pseudo_devices: tuple[tuple[str, str, str], ...]  # (ifname, mode, subnet)


@dataclass
class Plan:
    topology: str
    resources: list[Resource] = field(default_factory=list)
    slivers: list[SliverInfo] = field(default_factory=list)
    access_points: list = field(default_factory=list)  # compiler.access_types.AccessPoint
    internet_host: str | None = None  # the lab's host behind the providers, when there are any
    egress_slices: list[str] = field(default_factory=list)
    routing: dict[str, str] = field(default_factory=dict)  # slice -> static | ospf | none
    failed_links: frozenset[tuple[str, str]] = frozenset()  # substrate links taken down

    def by_key(self) -> dict[tuple, Resource]:
        return {r.key: r for r in self.resources}

    def for_node(self, node: str) -> list[Resource]:
        return [r for r in self.resources if r.node == node]

    def sliver(self, slice_name: str, node: str) -> SliverInfo:
        for info in self.slivers:
            if info.slice == slice_name and info.node == node:
                return info
        raise KeyError((slice_name, node))

    def namespaces(self) -> list[str]:
        return [r.ns for r in self.resources if isinstance(r, Netns)]
