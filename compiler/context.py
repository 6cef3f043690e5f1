"""What every part of a plan reads and contributes to (pure).

`PlanContext` holds the facts about a topology that the parts need, computed once: its
runtime, the controller's state (failed links, public credentials), slice prefixes and
address layouts, uids, HTB class ids, node and link positions, site codes, and each
slice's virtual links and paths (`SliceFacts`). `PlanParts` collects what the parts
contribute: resources, and the contributions that several parts make to one resource —
devices to shape and their per-slice classes, devices to guard and the MAC pairs to admit —
which the planner turns into Shaping and IsolationFilter resources at the end.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Network

from model.naming import (
    hashed_ifname, mac_address, node_ns, sliver_ns, spread_by_name, substrate_ifname, virtual_ifname,
)
from model.schema import Slice, Topology

from .addressing import SliceAddressing, access_subnets, allocate_slice_prefixes, slice_addressing
from .access_types.base import AccessPoint
from .daemons import own as own_suites
from .plan import SliverInfo
from .resources import Resource, ShapingClass
from .routing import NO_HOP, LazyTable, LeastCostPaths
from .runtime import Runtime

DEFAULT_UID_BASE = 60000  # default slice uids: 60000..63999, derived from the slice name
UID_SPAN = 4000
SLICE_CLASS_BASE = 0x10  # HTB class minor ids per slice: 0x10..0xfff0, from the slice name
CLASS_SPAN = 0xFFE0


class PlanningError(ValueError):
    """The topology is valid but cannot be laid out (e.g. a MAC hash collision)."""


@dataclass(frozen=True)
class ControllerState:
    """What the plan depends on besides the topology and the machine: substrate links taken
    down (`vispd link down`, sorted node pairs) and public credentials made before planning
    (vispd.credentials); without them placeholders stand in."""

    failed_links: frozenset[tuple[str, str]] = frozenset()
    credentials: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LinkEnd:
    """One end of a slice's virtual link: its interface in the sliver at `node` toward `peer`."""

    node: str
    peer: str
    ifname: str
    cidr: str  # address/31
    mac: str
    link_mtu: int
    link_bandwidth: int
    cost: int

    @property
    def ip(self) -> str:
        return self.cidr.split("/")[0]


@dataclass(frozen=True)
class SliceFacts:
    """A slice's layout: members, loopbacks, virtual link ends, pseudo-devices, access
    subnets, and its least-cost paths over its live links (`graph`, shared by the slices
    whose graphs are equal). `hops` (for `routing: static`), `cost` and `paths()` read
    as {node: {destination: ...}} tables, computed row by row when asked for: nothing
    holds every pair of nodes at once."""

    slice: Slice
    prefix: IPv4Network
    layout: SliceAddressing
    uid: int
    members: list[str]
    loopback: dict[str, str]
    ends: dict[tuple[str, str], LinkEnd]  # (node, peer) -> the end at node
    devices_at: dict[str, list[tuple[str, IPv4Network, str]]]  # node -> (ifname, subnet, tun|tap)
    access_at: dict[str, list[IPv4Network]]  # node -> access subnets (pools, socket /30s)
    graph: LeastCostPaths  # the slice's nodes and live links

    @property
    def static(self) -> bool:
        return self.slice.routing == "static"

    @property
    def own(self) -> bool:
        """`routing: own`: the slice is root over its slivers (issue 14); each virtual link
        end is a veth into the node, steered by the node's BPF program (OwnLink)."""
        return self.slice.routing == "own"

    @cached_property
    def ends_at(self) -> dict[str, list[LinkEnd]]:
        """node -> its link ends, by peer name."""
        by_node: dict[str, list[LinkEnd]] = {node: [] for node in self.members}
        for (node, _), end in sorted(self.ends.items()):
            by_node[node].append(end)
        return by_node

    @property
    def hops(self) -> Mapping[str, dict[str, str]]:
        """Static routing: node -> destination -> next hop node ({} for other modes)."""
        return LazyTable(self.members, self.graph.hop_table) if self.static else {}

    @property
    def cost(self) -> Mapping[str, dict[str, int]]:
        """node -> destination -> least cost over the live links (every routing mode)."""
        return LazyTable(self.members, self.graph.cost_row)

    def targets(self, node: str) -> list[str]:
        """What other slivers route toward `node`: its loopback, pseudo-device subnets, access subnets."""
        return ([f"{self.loopback[node]}/32"] + [str(s) for _, s, _ in self.devices_at[node]]
                + [str(s) for s in self.access_at[node]])

    def paths(self) -> Mapping[str, Mapping[str, tuple[str, str, int]]]:
        """{node: {destination: (gateway, ifname, cost)}} along the static next hops; each
        entry is computed when read (one Dijkstra per destination asked for, kept)."""
        return LazyTable(self.members, lambda node: _PathRow(self, node) if self.static else {})


class _PathRow(Mapping):
    """{destination: (gateway, ifname, cost)} from one node, entry by entry (see SliceFacts.paths)."""

    def __init__(self, facts: SliceFacts, node: str):
        self._facts, self._node = facts, node

    def __getitem__(self, destination: str) -> tuple[str, str, int]:
        graph = self._facts.graph
        if destination not in graph.index:
            raise KeyError(destination)
        hops, costs = graph.toward(destination)
        me = graph.index[self._node]
        if hops[me] == NO_HOP:
            raise KeyError(destination)
        hop = graph.names[hops[me]]
        return self._facts.ends[(hop, self._node)].ip, self._facts.ends[(self._node, hop)].ifname, costs[me]

    def __iter__(self) -> Iterator[str]:
        graph = self._facts.graph
        return (graph.names[d] for d, hop in enumerate(graph.first_hops(self._node)) if hop != NO_HOP)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class PlanContext:
    def __init__(self, topo: Topology, runtime: Runtime, state: ControllerState | None = None):
        self.topo = topo
        self.runtime = runtime
        self.state = state or ControllerState()
        self.name = topo.name
        self.sites = {n.name: n.site for n in topo.nodes}
        self.node_index = {n.name: i for i, n in enumerate(topo.nodes)}
        self.link_index = {lk.key: i for i, lk in enumerate(topo.links)}
        self.prefixes = allocate_slice_prefixes(topo)
        explicit = {sl.uid for sl in topo.slices if sl.uid is not None}
        defaults = spread_by_name([sl.name for sl in topo.slices if sl.uid is None], DEFAULT_UID_BASE,
                                  UID_SPAN, explicit | runtime.taken_ids)
        self.uids = {sl.name: sl.uid if sl.uid is not None else defaults[sl.name] for sl in topo.slices}
        self.class_ids = spread_by_name([sl.name for sl in topo.slices], SLICE_CLASS_BASE, CLASS_SPAN)

    @property
    def failed_links(self) -> frozenset[tuple[str, str]]:
        return self.state.failed_links

    def node_ns(self, node: str) -> str:
        return node_ns(self.name, node)

    def sliver_ns(self, node: str, slice_name: str) -> str:
        return sliver_ns(self.name, node, slice_name)

    def substrate_if(self, peer: str) -> str:
        """The name, in a node namespace, of its device for the link toward `peer`."""
        return substrate_ifname(peer, self.sites[peer])

    def layout(self, slice_name: str) -> SliceAddressing:
        return self.slice_facts[slice_name].layout

    def own_link_if(self, slice_name: str, node: str, peer: str) -> str:
        """The node end's name of an own slice's link toward `peer` (15 characters, unique
        in the node namespace: a hash of topology, slice, node and peer)."""
        return hashed_ifname("ov", self.name, slice_name, node, peer)

    @cached_property
    def own_configs(self) -> dict[str, tuple[str, str]]:
        """slice -> (absolute path, text) of the configuration of each `routing: own` slice
        that brings a suite (`own:`): the one thing a plan reads besides the topology."""
        found = {}
        for sl in self.topo.slices:
            if sl.routing == "own" and sl.own is not None:
                path = own_suites.config_path(self.topo, sl)
                try:
                    found[sl.name] = (path, own_suites.read_config(path))
                except ValueError as exc:
                    raise PlanningError(f"slice '{sl.name}': own.config: {exc}") from None
        return found

    @cached_property
    def slice_facts(self) -> dict[str, SliceFacts]:
        used_macs: dict[tuple[str, str], set[str]] = defaultdict(set)  # MACs on one substrate device
        graphs: dict[tuple, LeastCostPaths] = {}  # one per distinct graph: equal graphs share paths
        return {sl.name: self._facts(sl, used_macs, graphs) for sl in self.topo.slices}

    def _facts(self, sl: Slice, used_macs: dict, graphs: dict[tuple, LeastCostPaths]) -> SliceFacts:
        prefix = self.prefixes[sl.name]
        assert prefix is not None, "validated topologies always have a prefix"
        layout = slice_addressing(self.topo, sl.name, prefix)
        members = self.topo.slice_nodes(sl)
        links = self.topo.slice_links(sl)
        ends: dict[tuple[str, str], LinkEnd] = {}
        for link in links:
            a, b = link.key
            for (x, y), cidr in zip(((a, b), (b, a)), layout.link_pair(self.link_index[link.key])):
                mac = mac_address(self.name, sl.name, x, y)
                if mac in used_macs[(x, y)]:
                    raise PlanningError(f"MAC collision on {x}->{y}: {mac}")
                used_macs[(x, y)].add(mac)
                ends[(x, y)] = LinkEnd(x, y, virtual_ifname(y, self.sites[y]), str(cidr), mac, link.mtu,
                                       link.bandwidth, link.cost)
        devices_at: dict[str, list] = defaultdict(list)
        for j, dev in enumerate(sl.pseudo_devices):
            devices_at[dev.node].append((dev.name or f"{dev.type}{j}", layout.pseudo_device_subnet(j), dev.type))
        access_at: dict[str, list] = defaultdict(list)
        for node, _, subnet in access_subnets(self.topo, sl.name, layout):
            access_at[node].append(subnet)
        live = [lk for lk in links if lk.key not in self.failed_links]
        key = LeastCostPaths.graph_key(members, live)
        if key not in graphs:
            graphs[key] = LeastCostPaths.from_links(members, live)
        return SliceFacts(sl, prefix, layout, self.uids[sl.name], members,
                          {n: str(layout.loopback(self.node_index[n])) for n in members}, ends, devices_at,
                          access_at, graphs[key])


@dataclass
class PlanParts:
    """What the parts of a plan contribute, before the planner assembles the Plan."""

    resources: list[Resource] = field(default_factory=list)
    shaped: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)  # (ns, dev) -> (node, capacity)
    classes: dict[tuple[str, str], list[ShapingClass]] = field(default_factory=lambda: defaultdict(list))
    guarded: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # node -> devices
    source_guards: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=lambda: defaultdict(dict))
    admitted: dict[str, set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))
    slivers: list[SliverInfo] = field(default_factory=list)
    access_points: list[AccessPoint] = field(default_factory=list)

    def add(self, *resources: Resource) -> None:
        self.resources.extend(resources)

    def shape(self, node: str, ns: str, ifname: str, capacity: int) -> None:
        """`ifname` in `ns` is shaped to `capacity` (HTB), with the classes slices add."""
        self.shaped[(ns, ifname)] = (node, capacity)

    def classify(self, ns: str, ifname: str, shaping_class: ShapingClass) -> None:
        self.classes[(ns, ifname)].append(shaping_class)

    def guard(self, node: str, ifname: str) -> None:
        """The node's guard watches `ifname` (a device of its namespace)."""
        self.guarded[node].add(ifname)

    def source_guard(self, node: str, ifname: str, prefixes: tuple[str, ...]) -> None:
        """Packets entering `ifname` (of the node's namespace) must come from `prefixes`."""
        self.source_guards[node][ifname] = tuple(prefixes)

    def admit(self, node: str, src_mac: str, dst_mac: str) -> None:
        """Frames from `src_mac` to `dst_mac` may enter the node's guarded devices."""
        self.admitted[node].add((src_mac, dst_mac))
