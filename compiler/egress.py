"""BGP egress and its lab providers, compiled into plan resources (pure).

For every provider: an access link from its egress node's namespace to the provider's
lab namespace `vispd.T.+PROVIDER` (a veth shaped to the provider's bandwidth, one HTB
class per slice egressing there), and for every slice egressing through it a private
macvlan `p-PROVIDER` in the slice's sliver on that node, with a /31 from the provider's
`peering` prefix (provider side even, slice side odd) and static neighbours both ways.

Every egress sliver runs one ExaBGP (with vispd's API helper) holding an eBGP session
to each of its slice's providers at that node. One egress manager per topology moves the
default route of every sliver toward the nearest egress whose sessions are up.

The lab emulates the world outside: each provider is a BIRD router (its own AS) and an
"Internet" namespace `vispd.T.+internet` holds the host 203.0.113.10 behind a BIRD router
peering with every provider, so both directions of traffic follow BGP and fail over.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from model.schema import Provider, Topology
from model.naming import lab_ns, mac_address, node_ns, short_node_name, sliver_ns, substrate_ifname
from .resources import Address, Daemon, Macvlan, Neighbour, Netns, Resource, ShapingClass, Veth
BGP_RTPROTO = 78  # routes learned from providers (installed by the ExaBGP helper)
EGRESS_RTPROTO = 79  # default routes placed by the egress manager
INTERNET = "internet"

LAB_SYSCTLS = (
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
)


def access_ifname(provider: str) -> str:
    """Name of the access device (node side) and of a slice's interface toward `provider`."""
    return "x-" + short_node_name(provider, None, 13)


def sliver_access_ifname(provider: str) -> str:
    return "p-" + short_node_name(provider, None, 13)


def provider_peering(topo: Topology, index: int, provider: Provider) -> IPv4Network:
    """The provider's access-link prefix: as declared, else the index-th /28 of 192.0.2.0/24."""
    if provider.peering is not None:
        return provider.peering
    return list(IPv4Network("192.0.2.0/24").subnets(new_prefix=28))[index]


@dataclass
class Session:
    """One eBGP session between a slice's egress sliver and a provider."""

    slice: str
    node: str
    provider: str
    provider_asn: int
    provider_address: str
    slice_address: str
    local_pref: int
    max_prefix: int | None


@dataclass
class EgressPlan:
    resources: list[Resource] = field(default_factory=list)
    classes: dict[tuple[str, str], list[ShapingClass]] = field(default_factory=lambda: defaultdict(list))
    admitted: dict[str, set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))
    devices: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    sessions: list[Session] = field(default_factory=list)


def plan_egress(topo: Topology, prefixes: dict[str, IPv4Network], loopbacks: dict[tuple[str, str], str],
                class_ids: dict[str, int], run_dir: str, sock_dir: str, slice_routes) -> EgressPlan:
    """Resources for providers, access links, BGP speakers and the lab's Internet.

    `loopbacks[(slice, node)]` is each sliver's loopback; `slice_routes(slice)` gives
    {node: {destination node: (gateway, ifname, cost)}} along the slice's least-cost paths.
    """
    out = EgressPlan()
    if not topo.providers:
        return out
    t = topo.name
    add = out.resources.append
    sites = {n.name: n.site for n in topo.nodes}
    inet = topo.internet
    inet_ns = lab_ns(t, INTERNET)
    add(Netns(node="+" + INTERNET, ns=inet_ns, role="lab", sysctls=LAB_SYSCTLS))
    add(Address(node="+" + INTERNET, ns=inet_ns, ifname="lo", cidr=f"{inet.host}/32"))
    transit = list(inet.transit.subnets(new_prefix=31))
    bird_internet_peers = []

    for pi, provider in enumerate(topo.providers):
        host = "+" + provider.name
        pns = lab_ns(t, provider.name)
        nns = node_ns(t, provider.node)
        dev = access_ifname(provider.name)
        prov_dev = substrate_ifname(provider.node, sites[provider.node])
        prov_mac = mac_address(t, "access", provider.name, "provider")
        node_mac = mac_address(t, "access", provider.name, "node")
        add(Netns(node=host, ns=pns, role="lab", sysctls=LAB_SYSCTLS))
        add(Veth(node=provider.node, ns=nns, ifname=dev, peer_ns=pns, peer_ifname=prov_dev,
                 mac=node_mac, peer_mac=prov_mac, arp=False))
        out.devices[provider.node].append(dev)

        # provider <-> Internet transit link (plain lab routers: ARP on)
        tnet = transit[pi]
        prov_transit, inet_transit = str(tnet.network_address), str(tnet.network_address + 1)
        inet_dev = "to-" + short_node_name(provider.name, None, 12)
        add(Veth(node=host, ns=pns, ifname="to-inet", peer_ns=inet_ns, peer_ifname=inet_dev))
        add(Address(node=host, ns=pns, ifname="to-inet", cidr=f"{prov_transit}/31"))
        add(Address(node="+" + INTERNET, ns=inet_ns, ifname=inet_dev, cidr=f"{inet_transit}/31"))
        bird_internet_peers.append((provider, inet_transit, prov_transit))

        peering = list(provider_peering(topo, pi, provider).subnets(new_prefix=31))
        provider_sessions = []
        egress_slices = [s for s in topo.slices if provider.name in s.egress]
        for j, sl in enumerate(egress_slices):
            pair = peering[j]
            prov_addr, slice_addr = str(pair.network_address), str(pair.network_address + 1)
            ns = sliver_ns(t, provider.node, sl.name)
            mac = mac_address(t, sl.name, "access", provider.name)
            ifname = sliver_access_ifname(provider.name)
            add(Macvlan(node=provider.node, ns=ns, ifname=ifname, lower_ns=nns, lower_ifname=dev, mac=mac))
            add(Address(node=provider.node, ns=ns, ifname=ifname, cidr=f"{slice_addr}/31"))
            add(Neighbour(node=provider.node, ns=ns, ifname=ifname, ip=prov_addr, mac=prov_mac))
            add(Address(node=host, ns=pns, ifname=prov_dev, cidr=f"{prov_addr}/31"))
            add(Neighbour(node=host, ns=pns, ifname=prov_dev, ip=slice_addr, mac=mac))
            out.classes[(provider.node, dev)].append(ShapingClass(
                classid=class_ids[sl.name], rate=min(sl.bandwidth, provider.bandwidth),
                ceil=provider.bandwidth, macs=(mac,), label=sl.name))
            out.admitted[provider.node].add((prov_mac, mac))
            session = Session(sl.name, provider.node, provider.name, provider.asn, prov_addr, slice_addr,
                              provider.local_pref, provider.max_prefix)
            out.sessions.append(session)
            provider_sessions.append(session)
        add(_bird_daemon(topo, provider, pns, provider_sessions, prov_transit, inet_transit,
                         run_dir, sock_dir))

    add(_internet_daemon(topo, inet_ns, bird_internet_peers, run_dir, sock_dir))
    for (slice_name, node), sessions in _by_sliver(out.sessions).items():
        add(_exabgp_daemon(topo, slice_name, node, sessions, prefixes[slice_name],
                           loopbacks[(slice_name, node)], run_dir, sock_dir))
    add(_egress_manager(topo, out.sessions, loopbacks, slice_routes, run_dir, sock_dir))
    return out


def _by_sliver(sessions: list[Session]) -> dict[tuple[str, str], list[Session]]:
    grouped: dict[tuple[str, str], list[Session]] = defaultdict(list)
    for session in sessions:
        grouped[(session.slice, session.node)].append(session)
    return dict(sorted(grouped.items()))


def _python() -> str:
    return sys.executable or "python3"


def _bird_daemon(topo, provider, pns, sessions, local_transit, inet_transit, run_dir, sock_dir) -> Daemon:
    if provider.lab_daemon == "frr":
        return _frr_daemon(topo, provider, pns, sessions, local_transit, inet_transit, run_dir, sock_dir)
    from .lab_routers import render_provider_bird

    name = f"bird-{provider.name}"
    conf = render_provider_bird(topo, provider, sessions, local_transit, inet_transit)
    return Daemon(node="+" + provider.name, ns=pns, name=name,
                  argv=("bird", "-f", "-c", os.path.join(run_dir, f"{name}.conf"),
                        "-s", os.path.join(sock_dir, f"{name}.ctl"), "-P", os.path.join(run_dir, f"{name}.birdpid")),
                  files=((f"{name}.conf", conf),), reload_signal=signal.SIGHUP)


def _frr_daemon(topo, provider, pns, sessions, local_transit, inet_transit, run_dir, sock_dir) -> Daemon:
    """An FRR provider: zebra + bgpd under one supervisor (dataplane/frr.py)."""
    from .lab_routers import render_provider_frr

    name = f"frr-{provider.name}"
    confs = render_provider_frr(topo, provider, sessions, local_transit, inet_transit)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return Daemon(node="+" + provider.name, ns=pns, name=name,
                  argv=(_python(), "-m", "dataplane.frr", "--conf-dir", run_dir, "--name", name,
                        "--vty-dir", os.path.join(sock_dir, name)),
                  env=(("PYTHONPATH", repo),),
                  files=tuple((f"{name}.{daemon}.conf", text) for daemon, text in sorted(confs.items())))


def _internet_daemon(topo, inet_ns, peers, run_dir, sock_dir) -> Daemon:
    from .lab_routers import render_internet_bird

    name = f"bird-{INTERNET}"
    return Daemon(node="+" + INTERNET, ns=inet_ns, name=name,
                  argv=("bird", "-f", "-c", os.path.join(run_dir, f"{name}.conf"),
                        "-s", os.path.join(sock_dir, f"{name}.ctl"), "-P", os.path.join(run_dir, f"{name}.birdpid")),
                  files=((f"{name}.conf", render_internet_bird(topo, peers)),), reload_signal=signal.SIGHUP)


def speaker_config(topo: Topology, slice_name: str, node: str, sessions: list[Session],
                   prefix: IPv4Network, loopback: str, run_dir: str, sock_dir: str) -> dict:
    """The JSON config of one egress sliver's ExaBGP helper (see bgp/helper.py)."""
    sl = topo.slice(slice_name)
    announce = [{"prefix": str(a.prefix), "prepend": a.prepend, "communities": list(a.communities)}
                for a in sl.announce] or [{"prefix": str(prefix), "prepend": 0, "communities": []}]
    stem = f"exabgp-{slice_name}-{node}"
    return {
        "slice": slice_name, "node": node, "local_as": topo.asn, "router_id": loopback,
        "allowed_prefixes": [str(prefix)],
        "announce": announce,
        "neighbors": [{"name": s.provider, "address": s.provider_address, "local_address": s.slice_address,
                       "peer_as": s.provider_asn, "local_pref": s.local_pref, "max_prefix": s.max_prefix}
                      for s in sessions],
        "rt_proto": BGP_RTPROTO, "table": 254, "prefsrc": loopback, "hold_time": 9,
        "status_file": os.path.join(run_dir, f"{stem}.status.json"),
        "event_socket": os.path.join(sock_dir, "egress.sock"),
        "log_file": os.path.join(run_dir, f"{stem}.helper.log"),
    }


def _exabgp_daemon(topo, slice_name, node, sessions, prefix, loopback, run_dir, sock_dir) -> Daemon:
    from compiler import exabgp as exabgp_conf

    stem = f"exabgp-{slice_name}-{node}"
    config = speaker_config(topo, slice_name, node, sessions, prefix, loopback, run_dir, sock_dir)
    config_path = os.path.join(run_dir, f"{stem}.json")
    conf_path = os.path.join(run_dir, f"{stem}.conf")
    argv, full_env = exabgp_conf.command(config_path, conf_path, os.path.join(run_dir, f"{stem}.exapid"),
                                         os.path.join(run_dir, f"{stem}.exabgp.log"),
                                         listen=[n["local_address"] for n in config["neighbors"]])
    env = {k: v for k, v in full_env.items() if os.environ.get(k) != v}  # only what it adds
    return Daemon(node=node, ns=sliver_ns(topo.name, node, slice_name), name=stem, argv=tuple(argv),
                  env=tuple(sorted(env.items())),
                  files=((f"{stem}.json", json.dumps(config, indent=1, sort_keys=True)),
                         (f"{stem}.conf", exabgp_conf.render(config, config_path))))


def manager_config(topo, sessions, loopbacks, slice_routes, run_dir, sock_dir) -> dict:
    """The egress manager's view: per slice, each sliver's way to each egress node."""
    slices = {}
    for sl in topo.slices:
        egress_nodes = sorted({s.node for s in sessions if s.slice == sl.name})
        if not egress_nodes:
            continue
        routes = slice_routes(sl.name)
        slivers = []
        for node in topo.slice_nodes(sl):
            toward = {e: list(routes[node][e]) for e in egress_nodes if e != node and e in routes.get(node, {})}
            slivers.append({"node": node, "ns": sliver_ns(topo.name, node, sl.name),
                            "loopback": loopbacks[(sl.name, node)], "toward": toward})
        slices[sl.name] = {
            "egress": {e: sorted(s.provider for s in sessions if s.slice == sl.name and s.node == e)
                       for e in egress_nodes},
            "status_files": {e: os.path.join(run_dir, f"exabgp-{sl.name}-{e}.status.json") for e in egress_nodes},
            "slivers": slivers,
            "routing": sl.routing,
        }
        if sl.routing == "ospf":  # the slivers' BIRDs carry the default (see bgp/egress_manager.py)
            from .ospf import EGRESS_DEFAULT_PROTOCOL, control_socket

            slices[sl.name]["bird_sockets"] = {e: control_socket(sock_dir, sl.name, e) for e in egress_nodes}
            slices[sl.name]["default_protocol"] = EGRESS_DEFAULT_PROTOCOL
    return {"topology": topo.name, "rt_proto": EGRESS_RTPROTO, "event_socket": os.path.join(sock_dir, "egress.sock"),
            "status_file": os.path.join(run_dir, "egress-manager.status.json"), "slices": slices}


def _egress_manager(topo, sessions, loopbacks, slice_routes, run_dir, sock_dir) -> Daemon:
    config = manager_config(topo, sessions, loopbacks, slice_routes, run_dir, sock_dir)
    config_path = os.path.join(run_dir, "egress-manager.json")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return Daemon(node="", ns="", name="egress-manager",
                  argv=(_python(), "-m", "bgp.egress_manager", "--config", config_path),
                  env=(("PYTHONPATH", repo),), reload_signal=signal.SIGHUP,
                  files=(("egress-manager.json", json.dumps(config, indent=1, sort_keys=True)),))
