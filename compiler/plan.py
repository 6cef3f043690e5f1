"""The compiled plan: flat, frozen resources, each with a stable key (pure data, no I/O).

A `Plan` is what `vispd up` wants the kernel to hold for one topology. Every resource
names the network namespace it lives in and the substrate node whose agent applies it,
so a node's part of the plan (`Plan.for_node`) can be shipped to and applied on that
node alone. The same resource types describe what the kernel backend *observes*, which
is what makes `diff(observed, desired)` a plain set comparison.

How a resource is reconciled when its content changes is a property of its type:
`RECREATE` types are deleted and created again (devices), `UPDATE` types are changed in
place (routes, shaping, filters, namespace settings); identity-only types (addresses,
neighbours) are simply added or removed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar

OWNER_PREFIX = "vispd"  # every ownership marker starts with this


def owner_marker(topology: str) -> str:
    """The ifalias prefix that marks a kernel object as created by vispd for `topology`."""
    return f"{OWNER_PREFIX}:{topology}"


@dataclass(frozen=True)
class Resource:
    KIND: ClassVar[str] = "resource"
    PHASE: ClassVar[int] = 0  # creation order; deletion runs in reverse
    MODE: ClassVar[str] = "identity"  # "recreate" | "update" | "identity"
    node: str = field(compare=False)  # the substrate node whose agent applies this
    ns: str

    @property
    def key(self) -> tuple:
        return (self.KIND, self.ns)

    def digest(self) -> str:
        """A short hash of everything that defines the resource (stored in ownership markers)."""
        payload = {f.name: getattr(self, f.name) for f in fields(self) if f.compare}
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def describe(self) -> str:
        return f"{self.KIND} {self.ns}"

    def to_json(self) -> dict:
        data = asdict(self)
        data["kind"] = self.KIND
        return data


@dataclass(frozen=True)
class Netns(Resource):
    """A network namespace: a substrate node (`role=node`) or a slice's sliver on a node."""

    KIND: ClassVar[str] = "netns"
    PHASE: ClassVar[int] = 0
    MODE: ClassVar[str] = "update"
    role: str = "node"
    slice: str | None = None
    sysctls: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> tuple:
        return (self.KIND, self.ns)


@dataclass(frozen=True)
class Device(Resource):
    MODE: ClassVar[str] = "recreate"
    ifname: str = ""
    mtu: int = 1500

    @property
    def key(self) -> tuple:
        return ("device", self.ns, self.ifname)

    def describe(self) -> str:
        return f"{self.KIND} {self.ns}/{self.ifname}"


@dataclass(frozen=True)
class Veth(Device):
    """One substrate link: a veth pair between two node namespaces (this end and the peer)."""

    KIND: ClassVar[str] = "veth"
    PHASE: ClassVar[int] = 1
    peer_ns: str = ""
    peer_ifname: str = ""
    mac: str = ""  # fixed MACs where others keep static neighbours toward an end
    peer_mac: str = ""
    arp: bool = True

    def describe(self) -> str:
        return f"veth {self.ns}/{self.ifname} <-> {self.peer_ns}/{self.peer_ifname}"


@dataclass(frozen=True)
class Macvlan(Device):
    """A sliver's interface on a virtual link: a private-mode macvlan on the substrate veth."""

    KIND: ClassVar[str] = "macvlan"
    PHASE: ClassVar[int] = 2
    lower_ns: str = ""
    lower_ifname: str = ""
    mac: str = ""

    def describe(self) -> str:
        return f"macvlan {self.ns}/{self.ifname} on {self.lower_ns}/{self.lower_ifname} ({self.mac})"


@dataclass(frozen=True)
class TunTap(Device):
    """A slice's pseudo-device, owned by the slice's user so its programs can attach."""

    KIND: ClassVar[str] = "tuntap"
    PHASE: ClassVar[int] = 2
    mode: str = "tun"
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class LinkDown(Resource):
    """One end of a substrate link taken down on purpose (`vispd link down`): the device is
    administratively down. Deleting it brings the device up again."""

    KIND: ClassVar[str] = "linkdown"
    PHASE: ClassVar[int] = 2
    ifname: str = ""

    @property
    def key(self) -> tuple:
        return (self.KIND, self.ns, self.ifname)

    def describe(self) -> str:
        return f"link down {self.ns}/{self.ifname}"


@dataclass(frozen=True)
class Address(Resource):
    KIND: ClassVar[str] = "address"
    PHASE: ClassVar[int] = 3
    ifname: str = ""
    cidr: str = ""

    @property
    def key(self) -> tuple:
        return (self.KIND, self.ns, self.ifname, self.cidr)

    def describe(self) -> str:
        return f"address {self.cidr} on {self.ns}/{self.ifname}"


@dataclass(frozen=True)
class Neighbour(Resource):
    """A permanent neighbour entry: ARP is off on virtual links, so peers are static."""

    KIND: ClassVar[str] = "neighbour"
    PHASE: ClassVar[int] = 3
    MODE: ClassVar[str] = "update"
    ifname: str = ""
    ip: str = ""
    mac: str = ""

    @property
    def key(self) -> tuple:
        return (self.KIND, self.ns, self.ifname, self.ip)

    def describe(self) -> str:
        return f"neighbour {self.ip} lladdr {self.mac} on {self.ns}/{self.ifname}"


@dataclass(frozen=True)
class Route(Resource):
    KIND: ClassVar[str] = "route"
    PHASE: ClassVar[int] = 5
    MODE: ClassVar[str] = "update"
    dst: str = ""
    gateway: str = ""
    ifname: str = ""
    prefsrc: str = ""

    @property
    def key(self) -> tuple:
        return (self.KIND, self.ns, self.dst)

    def describe(self) -> str:
        return f"route {self.dst} via {self.gateway} dev {self.ifname} in {self.ns}"


@dataclass(frozen=True)
class ShapingClass:
    classid: int  # minor number under 1:
    rate: int  # bits/s guaranteed
    ceil: int  # bits/s ceiling
    macs: tuple[str, ...]  # source MACs classified into this class
    label: str = ""


@dataclass(frozen=True)
class Shaping(Resource):
    """HTB on a substrate device: the link capacity, one class per slice (guarantee, ceiling)."""

    KIND: ClassVar[str] = "shaping"
    PHASE: ClassVar[int] = 4
    MODE: ClassVar[str] = "update"
    ifname: str = ""
    capacity: int = 0
    classes: tuple[ShapingClass, ...] = ()

    @property
    def key(self) -> tuple:
        return (self.KIND, self.ns, self.ifname)

    def describe(self) -> str:
        slices = ", ".join(f"{c.label} {c.rate}" for c in self.classes)
        return f"shaping {self.ns}/{self.ifname} capacity {self.capacity} [{slices}]"


@dataclass(frozen=True)
class IsolationFilter(Resource):
    """The node's own guard: on each substrate device, admit only frames whose source and
    destination MAC belong to the same slice (drops broadcast, multicast, cross-slice)."""

    KIND: ClassVar[str] = "filter"
    PHASE: ClassVar[int] = 4
    MODE: ClassVar[str] = "update"
    devices: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> tuple:
        return (self.KIND, self.ns)

    def describe(self) -> str:
        return f"isolation filter in {self.ns} on {len(self.devices)} devices ({len(self.pairs)} MAC pairs)"


@dataclass(frozen=True)
class Daemon(Resource):
    """A process vispd runs (BIRD, ExaBGP, the egress manager) in namespace `ns` ("" is the
    host's), with its configuration files; started without daemonising, stopped by PID.
    When only its files change and it has a `reload_signal`, the files are rewritten and
    the daemon is signalled (BIRD and the egress manager reload on SIGHUP); otherwise it
    is restarted."""

    KIND: ClassVar[str] = "daemon"
    PHASE: ClassVar[int] = 6
    MODE: ClassVar[str] = "update"
    name: str = ""
    argv: tuple[str, ...] = ()
    files: tuple[tuple[str, str], ...] = ()  # (file name in the run directory, content)
    env: tuple[tuple[str, str], ...] = ()
    reload_signal: int = 0  # 0: restart on any change

    def launch_digest(self) -> str:
        """Hash of what a reload cannot change: namespace, command line, environment."""
        blob = json.dumps([self.ns, self.argv, self.env], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def key(self) -> tuple:
        return (self.KIND, self.name)

    def describe(self) -> str:
        return f"daemon {self.name} in {self.ns or 'the host namespace'}"


RESOURCE_TYPES: tuple[type[Resource], ...] = (
    Netns, Veth, Macvlan, TunTap, LinkDown, Address, Neighbour, Shaping, IsolationFilter, Route, Daemon,
)


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
    access_points: list = field(default_factory=list)  # vispd.access_plan.AccessPoint
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
