"""Slice access points compiled into plan resources (pure).

* **Public underlay** (lab): `vispd.T.+public` stands for the public Internet on which
  remote clients reach the nodes. Each node with a remote access point has a veth `pub`
  to it (guarded like every substrate link), and each slice with an access point there a
  private macvlan `pub` in its sliver holding the access point's public address
  (100.64.NODE.X/24 by default), with static neighbours both ways. Every access point gets
  a client host `vispd.T.+c-TYPE-SLICE-NODE` on the underlay, outside the vISP.
* **OpenVPN / WireGuard / PPTP**: a server daemon in the sliver listening on the public
  address, its clients numbered from a /28 pool of the slice prefix (or `pool:`), which
  the other slivers route toward that node.
* **Local socket**: a relay daemon in every listed sliver with a SOCK_SEQPACKET socket
  owned by the slice's user and a TUN with a /30 of the slice prefix.

Credentials (keys, certificates, passwords) are made by `vispd.credentials` before
planning and come in as data; without them (a plan on another machine) placeholders
stand in, so the plan stays computable anywhere.
"""
from __future__ import annotations

import base64
import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from .addressing import SliceAddressing, access_points
from model.schema import Topology
from model.naming import lab_ns, mac_address, node_ns, short_node_name, sliver_ns
from .resources import Address, Daemon, Macvlan, Neighbour, Netns, Resource, Route, Veth
PUBLIC = "public"
DEFAULT_PORTS = {"openvpn": 1194, "wireguard": 51820, "pptp": 1723}


@dataclass
class AccessPoint:
    """One access point (what `vispd access` and the tests need to know about it)."""

    slice: str
    node: str
    type: str
    users: tuple[str, ...]
    public_address: str | None = None
    port: int | None = None
    pool: str | None = None  # remote clients' addresses, or the socket's /30
    client_ns: str | None = None
    daemon: str | None = None
    socket_path: str | None = None


@dataclass
class AccessPlan:
    resources: list[Resource] = field(default_factory=list)
    points: list[AccessPoint] = field(default_factory=list)
    admitted: dict[str, set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))
    devices: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def access_subnets(topo: Topology, slice_name: str, layout: SliceAddressing) -> list[tuple[str, str, IPv4Network]]:
    """(node, type, subnet) of each access point of a slice: sockets take /30s after the
    pseudo-devices, remote access points their `pool` or the next /28 pool."""
    sl = topo.slice(slice_name)
    result = []
    next_socket, next_pool = len(sl.pseudo_devices), 0
    for _, entry, node in access_points(topo, slice_name):
        if entry.type == "socket":
            result.append((node, entry.type, layout.pseudo_device_subnet(next_socket)))
            next_socket += 1
        elif entry.pool is not None:
            result.append((node, entry.type, entry.pool))
        else:
            result.append((node, entry.type, layout.access_pool(next_pool)))
            next_pool += 1
    return result


def placeholder_key(*identity: str) -> str:
    """A well-formed WireGuard public key standing in for one not generated yet."""
    return base64.b64encode(hashlib.sha256("\0".join(identity).encode()).digest()).decode()


def plan_access(topo: Topology, layouts: dict[str, SliceAddressing], uids: dict[str, int],
                run_dir: str, sock_dir: str, state_dir: str, credentials: dict) -> AccessPlan:
    out = AccessPlan()
    if not topo.access:
        return out
    t = topo.name
    add = out.resources.append
    node_index = {n.name: i for i, n in enumerate(topo.nodes)}
    remote = [(sl.name, point) for sl in topo.slices for point in _points(topo, sl.name, layouts[sl.name])
              if point[1] != "socket"]
    public_ns = lab_ns(t, PUBLIC)
    if remote:
        add(Netns(node="+" + PUBLIC, ns=public_ns, role="lab", sysctls=_LAB_SYSCTLS))
    wired: dict[str, str] = {}  # node -> the public router's MAC toward it
    slice_slot: dict[tuple[str, str], int] = {}
    client_count = 0
    for sl in topo.slices:
        for node, kind, subnet, entry in _points(topo, sl.name, layouts[sl.name], with_entry=True):
            ns = sliver_ns(t, node, sl.name)
            users = tuple(u.name for u in entry.users)
            if kind == "socket":
                out.points.append(_socket_point(topo, sl.name, node, subnet, uids[sl.name], run_dir,
                                                sock_dir, add))
                continue
            base = IPv4Network(topo.public.prefix).network_address + 256 * node_index[node]
            if node not in wired:
                wired[node] = _wire_node(t, node, topo, base, add, out)
            if (sl.name, node) not in slice_slot:
                slice_slot[(sl.name, node)] = 2 + len([k for k in slice_slot if k[1] == node])
                _attach_sliver(t, sl.name, node, base, slice_slot[(sl.name, node)], wired[node], topo, add, out)
            public_address = str(base + slice_slot[(sl.name, node)])
            port = entry.port or DEFAULT_PORTS[kind]
            client_ns = lab_ns(t, f"c-{kind}-{sl.name}-{node}")
            _client_host(t, client_ns, client_count, topo, add)
            client_count += 1
            point = AccessPoint(sl.name, node, kind, users, public_address, port, str(subnet), client_ns)
            daemon = _server_daemon(topo, sl, node, ns, point, subnet, run_dir, state_dir, credentials)
            if daemon is not None:
                point.daemon = daemon.name
                add(daemon)
            out.points.append(point)
    return out


_LAB_SYSCTLS = (
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
)


def _points(topo, slice_name, layout, with_entry=False):
    subnets = access_subnets(topo, slice_name, layout)
    entries = [entry for _, entry, _ in access_points(topo, slice_name)]
    for (node, kind, subnet), entry in zip(subnets, entries):
        yield (node, kind, subnet, entry) if with_entry else (node, kind, subnet)


def _wire_node(t, node, topo, base, add, out) -> str:
    """The node's veth to the public underlay; returns the public router's MAC on it."""
    site = {n.name: n.site for n in topo.nodes}[node]
    router_if = "n-" + short_node_name(node, site, 13)
    router_mac = mac_address(t, PUBLIC, node, "router")
    add(Veth(node=node, ns=node_ns(t, node), ifname="pub", peer_ns=lab_ns(t, PUBLIC), peer_ifname=router_if,
             mac=mac_address(t, PUBLIC, node, "node"), peer_mac=router_mac, arp=False))
    add(Address(node="+" + PUBLIC, ns=lab_ns(t, PUBLIC), ifname=router_if, cidr=f"{base + 1}/24"))
    out.devices[node].append("pub")
    return router_mac


def _attach_sliver(t, slice_name, node, base, slot, router_mac, topo, add, out) -> None:
    ns = sliver_ns(t, node, slice_name)
    mac = mac_address(t, slice_name, PUBLIC, node)
    address = base + slot
    site = {n.name: n.site for n in topo.nodes}[node]
    router_if = "n-" + short_node_name(node, site, 13)
    add(Macvlan(node=node, ns=ns, ifname="pub", lower_ns=node_ns(t, node), lower_ifname="pub", mac=mac))
    add(Address(node=node, ns=ns, ifname="pub", cidr=f"{address}/24"))
    add(Neighbour(node=node, ns=ns, ifname="pub", ip=str(base + 1), mac=router_mac))
    add(Neighbour(node="+" + PUBLIC, ns=lab_ns(t, PUBLIC), ifname=router_if, ip=str(address), mac=mac))
    # replies to remote clients leave through the public side, from the public address
    add(Route(node=node, ns=ns, dst=str(topo.public.prefix), gateway=str(base + 1), ifname="pub",
              prefsrc=str(address)))
    out.admitted[node].add((router_mac, mac))


def _client_host(t, client_ns, index, topo, add) -> None:
    """A lab host outside the vISP, on the public underlay (where a remote user sits)."""
    public = IPv4Network(topo.public.prefix)
    net = IPv4Network((int(public.broadcast_address) - 3 - 4 * index, 30))  # the index-th /30 from the top
    router_end, client_end = net.network_address + 1, net.network_address + 2
    host = client_ns.rsplit(".", 1)[-1]
    add(Netns(node=host, ns=client_ns, role="lab", sysctls=_LAB_SYSCTLS[:2]))
    add(Veth(node="+" + PUBLIC, ns=lab_ns(t, PUBLIC), ifname=f"c{index}", peer_ns=client_ns, peer_ifname="pub"))
    add(Address(node="+" + PUBLIC, ns=lab_ns(t, PUBLIC), ifname=f"c{index}", cidr=f"{router_end}/30"))
    add(Address(node=host, ns=client_ns, ifname="pub", cidr=f"{client_end}/30"))
    add(Route(node=host, ns=client_ns, dst=str(topo.public.prefix), gateway=str(router_end), ifname="pub",
              prefsrc=str(client_end)))


def _socket_point(topo, slice_name, node, subnet, uid, run_dir, sock_dir, add) -> AccessPoint:
    from access import localsock

    name = f"socket-{slice_name}-{node}"
    path = os.path.join(sock_dir, "sockets", f"{slice_name}.{node}.sock")
    config = {"socket": path, "uid": uid, "gid": uid, "tun": "sock0", "subnet": str(subnet),
              "log": os.path.join(run_dir, f"{name}.relay.log")}
    spec = localsock.daemon(name, config, run_dir)
    add(_daemon_from_spec(spec, node, sliver_ns(topo.name, node, slice_name)))
    return AccessPoint(slice_name, node, "socket", (), pool=str(subnet), daemon=name, socket_path=path)


def _daemon_from_spec(spec, node: str, ns: str) -> Daemon:
    return Daemon(node=node, ns=ns, name=spec.name, argv=tuple(spec.argv),
                  files=tuple(sorted(spec.files.items())), env=tuple(sorted(spec.env.items())))


def pki_dir(state_dir: str, slice_name: str) -> str:
    return os.path.join(state_dir, "pki", slice_name)


def keys_dir(state_dir: str, slice_name: str) -> str:
    return os.path.join(state_dir, "keys", slice_name)


def openvpn_server(topo, sl, node, point: AccessPoint, state_dir: str):
    from access import openvpn

    return openvpn.OpenVPNServer(
        name=f"openvpn-{sl.name}-{node}", pki_dir=pki_dir(state_dir, sl.name),
        dev=openvpn.device_name(topo.name, sl.name, node), local=point.public_address,
        pool=point.pool, routes=client_routes(topo, sl), port=point.port)


def wireguard_server(topo, sl, node, point: AccessPoint, state_dir: str, credentials: dict):
    from access import wireguard

    server_key = credentials.get(("wireguard-server", sl.name, node))
    private_file = server_key[0] if server_key else os.path.join(keys_dir(state_dir, sl.name), f"server-{node}.key")
    public = server_key[1] if server_key else placeholder_key(topo.name, sl.name, node)
    pool = IPv4Network(point.pool)
    addresses = wireguard.assign_addresses(str(pool), list(point.users))
    peers = tuple(wireguard.WgPeer(user, credentials.get(("wireguard-user", sl.name, user))
                                   or placeholder_key(topo.name, sl.name, user), addresses[user])
                  for user in point.users)
    return wireguard.WireGuardServer(
        name=f"wireguard-{sl.name}-{node}", ifname=wireguard.interface_name(topo.name, sl.name, node),
        address=f"{next(pool.hosts())}/{pool.prefixlen}", endpoint=point.public_address, port=point.port,
        routes=client_routes(topo, sl), private_key_file=private_file, public_key=public, peers=peers)


def _server_daemon(topo, sl, node, ns, point, subnet, run_dir, state_dir, credentials) -> Daemon | None:
    if point.type == "openvpn":
        from access import openvpn

        return _daemon_from_spec(openvpn.daemon(openvpn_server(topo, sl, node, point, state_dir), run_dir), node, ns)
    if point.type == "wireguard":
        from access import wireguard

        cfg = wireguard_server(topo, sl, node, point, state_dir, credentials)
        return _daemon_from_spec(wireguard.daemon(cfg, run_dir), node, ns)
    if point.type == "pptp":
        from access.pptp import launch

        name = f"pptp-{sl.name}-{node}"
        config = {"slice": sl.name, "listen": point.public_address, "pool": point.pool,
                  "users_file": pptp_users_file(state_dir, sl.name), "tun_prefix": "ppp",
                  "log_file": os.path.join(run_dir, f"{name}.engine.log")}
        files = tuple(sorted((f"{name}/{leaf}", text) for leaf, text in launch.server_files(config).items()))
        return Daemon(node=node, ns=ns, name=name, argv=tuple(launch.server_command(os.path.join(run_dir, name))),
                      files=files, env=tuple(sorted(launch.engine_env().items())))
    return None


def pptp_users_file(state_dir: str, slice_name: str) -> str:
    """The slice's PPTP credential store ({"users": {name: password}}, mode 0600)."""
    return os.path.join(keys_dir(state_dir, slice_name), "pptp-users.json")


def client_routes(topo, sl) -> tuple[str, ...]:
    """What a remote client sends into the vISP: the slice's prefix and, when the slice has
    egress, everything else too (two halves, so the route to the server itself still wins)."""
    routes = (str(_slice_prefix(topo, sl.name)),)
    return routes + (("0.0.0.0/1", "128.0.0.0/1") if sl.egress else ())


def _slice_prefix(topo, slice_name) -> IPv4Network:
    from .addressing import allocate_slice_prefixes

    return allocate_slice_prefixes(topo)[slice_name]
