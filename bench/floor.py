"""The floor: the kernel objects `vispd up` creates, made by minimal scripts (no vispd).

The object list is the compiled plan (`compile_plan(topo).resources`) with every namespace
renamed `vispd.X` -> `vbp-X`, so the floor makes exactly the namespaces, veths, macvlans,
TUN/TAPs, addresses, neighbours, routes, HTB qdiscs/classes (with u32 filters under the
nftables guard) and the node's guard — nftables tables, or the BPF guard's programs where
the plan has them — that `up` makes, minus vispd's own bookkeeping (ifalias ownership
markers, the journal, the observe/diff pass). Two builders:

* `build_batch`: one `ip -n NS -batch -` per namespace (ip's batch mode cannot switch
  namespace per line, so it is one process per namespace), one `tc -n NS -batch -` and one
  `nft -f -` per node namespace;
* `build_pyroute2`: one pyroute2 `IPRoute` socket per namespace, one netlink request per
  object (links, addresses, neighbours, routes); shaping and the nftables guard go through
  the same `tc -batch` / `nft -f` runs as above (pyroute2 has no nftables support worth
  the name, and vispd itself shapes with `tc -batch`).

The BPF guard has no tool to stand in for it (no bpftool or tc-loadable object: its
programs are assembled in Python): both builders load and attach it with
`dataplane.bpf.node.apply`, the few bpf(2) calls per program it takes.

Both create namespaces the fastest way found here: dataplane.netns.create (unshare on the
calling thread + bind mount, ~0.3 ms; pyroute2's netns.create forks and takes ~5 ms) and
write the namespace's sysctls with setns + /proc/sys writes. Node (and lab) namespaces are
processed in an order where each veth's creating end comes before its peer end, so when a
namespace is reached every device it holds exists and its macvlans can be stacked at once.
Processes (`Daemon` resources: BIRD, ExaBGP) are not kernel objects and have no floor: a
plan that has them is refused (the bench strips providers and egress from its topologies).

I/O (root): creates and removes its own `vbp-` namespaces.
"""
from __future__ import annotations

import os
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field, replace
from graphlib import TopologicalSorter

from pyroute2 import IPRoute

from compiler.resources import (
    Address, BpfGuard, IsolationFilter, Macvlan, Neighbour, Netns, Resource, Route, Shaping, TunTap, Veth,
    owner_marker,
)
from compiler.resources import guard as nft, shaping as tc
from dataplane import netns
from dataplane.bpf import node as bpf_node, spec as bpf_spec

FLOOR_PREFIX = "vbp-"
RTPROTO = 77
NUD_PERMANENT = 0x80


def floor_name(ns: str) -> str:
    """vispd.T.N[.S] -> vbp-T.N[.S]: the floor's private copy of a namespace name."""
    return FLOOR_PREFIX + ns.removeprefix("vispd.")


def renamed(resource: Resource) -> Resource:
    changes = {"ns": floor_name(resource.ns)}
    for attr in ("peer_ns", "lower_ns"):
        if getattr(resource, attr, ""):
            changes[attr] = floor_name(getattr(resource, attr))
    return replace(resource, **changes)


@dataclass
class FloorSpec:
    """The plan's resources, renamed and grouped the way the builders consume them."""

    topology: str
    namespaces: list[Netns] = field(default_factory=list)
    veths: list[Veth] = field(default_factory=list)
    macvlans: dict[str, list[Macvlan]] = field(default_factory=lambda: defaultdict(list))  # by lower ns
    per_ns: dict[str, list[Resource]] = field(default_factory=lambda: defaultdict(list))  # tuntap/addr/neigh/route
    shaping: dict[str, list[Shaping]] = field(default_factory=lambda: defaultdict(list))
    filters: list[IsolationFilter] = field(default_factory=list)
    bpf_guards: list[BpfGuard] = field(default_factory=list)

    @property
    def node_namespaces(self) -> list[str]:
        """Namespaces holding veth ends (nodes, lab hosts), creating ends first."""
        order = TopologicalSorter({r.ns: set() for r in self.namespaces if r.role != "sliver"})
        for v in self.veths:
            order.add(v.peer_ns, v.ns)
        return list(order.static_order())

    @property
    def sliver_namespaces(self) -> list[str]:
        return sorted(r.ns for r in self.namespaces if r.role == "sliver")

    def all_names(self) -> list[str]:
        return [r.ns for r in self.namespaces]


ORDER = {TunTap: 0, Address: 1, Neighbour: 2, Route: 3}


def floor_spec(plan) -> FloorSpec:
    spec = FloorSpec(topology=plan.topology)
    for resource in map(renamed, plan.resources):
        if isinstance(resource, Netns):
            spec.namespaces.append(resource)
        elif isinstance(resource, Veth):
            spec.veths.append(resource)
        elif isinstance(resource, Macvlan):
            spec.macvlans[resource.lower_ns].append(resource)
        elif isinstance(resource, Shaping):
            spec.shaping[resource.ns].append(resource)
        elif isinstance(resource, IsolationFilter):
            spec.filters.append(resource)
        elif isinstance(resource, BpfGuard):
            spec.bpf_guards.append(resource)
        elif type(resource) in ORDER:
            spec.per_ns[resource.ns].append(resource)
        else:
            raise ValueError(f"the floor cannot make {resource.describe()} (not a kernel object)")
    for items in spec.per_ns.values():
        items.sort(key=lambda r: ORDER[type(r)])
    return spec


# -- shared steps ----------------------------------------------------------------------
def create_namespaces(spec: FloorSpec) -> None:
    for res in spec.namespaces:
        netns.create(res.ns)
        with netns.entered(res.ns):
            for key, value in res.sysctls:
                netns.write_sysctl(key, value)


def run(argv: list[str], stdin: str) -> None:
    result = subprocess.run(argv, input=stdin, text=True, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()[:500]}")


def apply_shaping_and_guards(spec: FloorSpec) -> None:
    for ns, shapings in sorted(spec.shaping.items()):
        lines = [line for s in shapings for line in tc.render(s)]
        run(["tc", "-n", ns, "-batch", "-"], "\n".join(lines) + "\n")
    marker = owner_marker(spec.topology)
    for guard in spec.filters:
        with netns.entered(guard.ns):  # nft has no -n: fork it from inside the namespace
            run(["nft", "-f", "-"], nft.render(guard, marker))
    for bpf_guard in spec.bpf_guards:
        bpf_node.apply(bpf_spec.node_guard(bpf_guard.ns, bpf_guard.devices), bpf_guard.hook)


def teardown(names: list[str]) -> None:
    """Remove the floor's namespaces, by name (devices go with them)."""
    for name in names:
        assert name.startswith(FLOOR_PREFIX)
        if netns.exists(name):
            netns.remove(name)


# -- (b) ip -batch ---------------------------------------------------------------------
def veth_line(v: Veth) -> str:
    mac = f" address {v.mac}" if v.mac else ""
    peer_mac = f" address {v.peer_mac}" if v.peer_mac else ""
    arp = "" if v.arp else " arp off"
    return (f"link add {v.ifname}{mac} mtu {v.mtu}{arp} up type veth peer name {v.peer_ifname}"
            f"{peer_mac} netns {v.peer_ns} mtu {v.mtu}")


def node_batch(spec: FloorSpec, ns: str) -> list[str]:
    lines = ["link set lo up"]
    lines += [f"link set {v.peer_ifname}{'' if v.arp else ' arp off'} up" for v in spec.veths if v.peer_ns == ns]
    lines += [veth_line(v) for v in spec.veths if v.ns == ns]
    lines += [f"link add {m.ifname} link {m.lower_ifname} address {m.mac} mtu {m.mtu} "
              f"netns {m.ns} arp off up type macvlan mode private" for m in spec.macvlans[ns]]
    return lines + [line for r in spec.per_ns[ns] for line in object_lines(r)]


def object_lines(res: Resource) -> list[str]:
    if isinstance(res, TunTap):
        return [f"tuntap add dev {res.ifname} mode {res.mode} user {res.uid} group {res.gid}",
                f"link set {res.ifname} mtu {res.mtu} up"]
    if isinstance(res, Address):
        return [f"address replace {res.cidr} dev {res.ifname}"]
    if isinstance(res, Neighbour):
        return [f"neigh replace {res.ip} lladdr {res.mac} dev {res.ifname} nud permanent"]
    if isinstance(res, Route):
        src = f" src {res.prefsrc}" if res.prefsrc else ""  # vispd's routes have metric 0
        return [f"route replace {res.dst} via {res.gateway} dev {res.ifname} proto {RTPROTO}{src}"]
    raise TypeError(res)


def build_batch(spec: FloorSpec) -> None:
    create_namespaces(spec)
    for ns in spec.node_namespaces:
        run(["ip", "-n", ns, "-batch", "-"], "\n".join(node_batch(spec, ns)) + "\n")
    for ns in spec.sliver_namespaces:
        lines = ["link set lo up"] + [line for r in spec.per_ns[ns] for line in object_lines(r)]
        run(["ip", "-n", ns, "-batch", "-"], "\n".join(lines) + "\n")
    apply_shaping_and_guards(spec)


# -- (a) pyroute2 ----------------------------------------------------------------------
def open_socket(ns: str) -> IPRoute:
    with netns.entered(ns):
        return IPRoute()


def pyroute2_node(ipr: IPRoute, spec: FloorSpec, ns: str) -> None:
    ipr.link("set", index=1, state="up")
    for v in spec.veths:
        if v.peer_ns == ns:
            ipr.link("set", index=ipr.link_lookup(ifname=v.peer_ifname)[0], state="up", arp=v.arp)
    for v in spec.veths:
        if v.ns == ns:
            pyroute2_veth(ipr, v)
    for m in spec.macvlans[ns]:
        fd = os.open(netns.path(m.ns), os.O_RDONLY)
        try:
            ipr.link("add", ifname=m.ifname, kind="macvlan", link=ipr.link_lookup(ifname=m.lower_ifname)[0],
                     macvlan_mode="private", address=m.mac, mtu=m.mtu, net_ns_fd=fd,
                     state="up", arp=False)
        finally:
            os.close(fd)


def pyroute2_veth(ipr: IPRoute, v: Veth) -> None:
    fd = os.open(netns.path(v.peer_ns), os.O_RDONLY)
    try:
        peer = {"ifname": v.peer_ifname, "net_ns_fd": fd, "mtu": v.mtu}
        if v.peer_mac:
            peer["address"] = v.peer_mac
        extra = {"address": v.mac} if v.mac else {}
        ipr.link("add", ifname=v.ifname, kind="veth", mtu=v.mtu, state="up", arp=v.arp, peer=peer, **extra)
    finally:
        os.close(fd)


def pyroute2_objects(ipr: IPRoute, spec: FloorSpec, ns: str) -> None:
    """TUN/TAPs, addresses, neighbours and routes of one namespace, one request each."""
    index: dict[str, int] = {}
    for res in spec.per_ns[ns]:
        if isinstance(res, TunTap):
            with netns.entered(ns):
                ipr.link("add", ifname=res.ifname, kind="tuntap", mode=res.mode, uid=res.uid, gid=res.gid)
            ipr.link("set", index=ipr.link_lookup(ifname=res.ifname)[0], mtu=res.mtu, state="up")
            index.clear()
            continue
        if not index:
            index = {link.get_attr("IFLA_IFNAME"): link["index"] for link in ipr.get_links()}
        if isinstance(res, Address):
            address, prefixlen = res.cidr.split("/")
            ipr.addr("replace", index=index[res.ifname], address=address, prefixlen=int(prefixlen))
        elif isinstance(res, Neighbour):
            ipr.neigh("replace", dst=res.ip, lladdr=res.mac, ifindex=index[res.ifname], state=NUD_PERMANENT)
        elif isinstance(res, Route):
            route = dict(dst=res.dst, gateway=res.gateway, oif=index[res.ifname], proto=RTPROTO)
            if res.prefsrc:
                route["prefsrc"] = res.prefsrc
            ipr.route("replace", **route)


def build_pyroute2(spec: FloorSpec) -> None:
    create_namespaces(spec)
    sockets = {ns: open_socket(ns) for ns in spec.all_names()}
    try:
        for ns in spec.node_namespaces:
            pyroute2_node(sockets[ns], spec, ns)
            pyroute2_objects(sockets[ns], spec, ns)
        for ns in spec.sliver_namespaces:
            sockets[ns].link("set", index=1, state="up")
            pyroute2_objects(sockets[ns], spec, ns)
    finally:
        for sock in sockets.values():
            sock.close()
    apply_shaping_and_guards(spec)
