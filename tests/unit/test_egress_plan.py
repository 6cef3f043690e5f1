"""Egress planning on the full abilene.yaml (pure): the border routers (access links, policy
tables, the slices' links and next hops, source guards), the speakers' configs, and the
egress manager's choices."""
from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network

import pytest

from bgp.egress_manager import choose_defaults, live_egress
from unit_helpers import ABILENE
from compiler.context import PlanContext
from compiler.egress import manager_config
from compiler.runtime import Runtime
from compiler.loader import load_topology
from compiler.resources import (Address, Daemon, IsolationFilter, Macvlan, Neighbour, Route, RoutingRule, Shaping,
                                Veth)
from compiler.planner import compile_plan


@pytest.fixture(scope="module")
def plan():
    return compile_plan(load_topology(ABILENE))


def of(plan, kind):
    return [r for r in plan.resources if isinstance(r, kind)]


WASH, EAST_NS = "vispd.abilene.washington", "vispd.abilene.+mae-east"
PLB_WASH = "vispd.abilene.washington.plb"


def test_each_provider_gets_an_access_link_with_the_borders_address_and_a_policy_table(plan):
    access = {r.ifname: r for r in of(plan, Veth) if r.ifname.startswith("x-")}
    assert set(access) == {"x-mae-east", "x-mae-west"}
    east = access["x-mae-east"]
    assert (east.ns, east.peer_ns, east.peer_ifname, east.arp) == (WASH, EAST_NS, "to-wash", True)
    assert Address(node="washington", ns=WASH, ifname="x-mae-east", cidr="192.0.2.1/31") in plan.resources
    assert Address(node="+mae-east", ns=EAST_NS, ifname="to-wash", cidr="192.0.2.0/31") in plan.resources
    table = [r for r in of(plan, Route) if r.ns == WASH and r.table != 254]
    assert [(r.dst, r.gateway, r.ifname, r.table) for r in table] == [("0.0.0.0/0", "192.0.2.0", "x-mae-east", 1000)]
    shaping = next(s for s in of(plan, Shaping) if s.ifname == "x-mae-east")
    assert shaping.capacity == 10**9
    assert [(c.label, c.rate, c.sources) for c in shaping.classes] == [("plb", 500 * 10**6, ("198.18.0.0/22",))]


def test_each_egressing_slice_links_to_the_border_with_a_next_hop_per_provider(plan):
    link = next(r for r in of(plan, Veth) if r.peer_ns == PLB_WASH and r.peer_ifname == "border")
    assert link.ns == WASH and link.ifname == "s-plb" and link.arp is False
    sliver = {r.cidr for r in of(plan, Address) if r.ns == PLB_WASH and r.ifname == "border"}
    node = {r.cidr for r in of(plan, Address) if r.ns == WASH and r.ifname == "s-plb"}
    (slice_cidr,), (border_cidr,) = sliver, node
    subnet = IPv4Network(slice_cidr, strict=False)
    assert subnet.subnet_of(IPv4Network("169.254.0.0/16")) and subnet.prefixlen == 28
    assert (IPv4Address(border_cidr.split("/")[0]), IPv4Address(slice_cidr.split("/")[0])) == (
        subnet.network_address + 1, subnet.network_address + 2)
    hop = next(r for r in of(plan, Macvlan) if r.ns == WASH and r.lower_ifname == "s-plb")
    hop_address = next(r.cidr for r in of(plan, Address) if r.ifname == hop.ifname)
    assert hop_address == f"{subnet.network_address + 3}/32"
    assert Neighbour(node="washington", ns=PLB_WASH, ifname="border", ip=str(subnet.network_address + 3),
                     mac=hop.mac) in plan.resources                 # the slice reaches it without ARP
    rules = {(r.iif, r.table, r.blackhole) for r in of(plan, RoutingRule) if r.ns == WASH}
    assert rules == {(hop.ifname, 1000, False), ("s-plb", 0, True)}   # to mae-east's table; nothing else
    back = next(r for r in of(plan, Route) if r.ns == WASH and r.dst == "198.18.0.0/22")
    assert (back.gateway, back.ifname) == (str(subnet.network_address + 2), "s-plb")
    guard = next(f for f in of(plan, IsolationFilter) if f.ns == WASH)
    assert dict(guard.sources)["s-plb"] == ("198.18.0.0/22", str(subnet))   # BCP 38
    assert not [r for r in of(plan, Veth) if r.peer_ns.endswith(".research") and r.peer_ifname == "border"]


def test_the_border_holds_one_session_per_provider_and_one_per_slice(plan):
    border = next(d for d in of(plan, Daemon) if d.name == "border-washington")
    assert border.ns == WASH
    config = json.loads(dict(border.files)["border-washington.json"])
    assert config["role"] == "border" and config["local_as"] == 64512
    assert [(p["name"], p["address"], p["local_address"], p["peer_as"], p["path_id"]) for p in config["providers"]] \
        == [("mae-east", "192.0.2.0", "192.0.2.1", 65101, "0.0.0.1")]
    (plb,) = config["slices"]
    assert (plb["slice"], plb["peer_as"], plb["add_path"], plb["allowed_prefixes"]) == (
        "plb", 64512, "send", ["198.18.0.0/22"])
    conf = dict(border.files)["border-washington.conf"]
    assert conf.count("neighbor ") == 2 and "add-path send;" in conf
    bird = dict(next(d for d in of(plan, Daemon) if d.name == "bird-mae-east").files)["bird-mae-east.conf"]
    assert bird.count("protocol bgp") == 2                                   # the vISP and the Internet
    assert "neighbor 192.0.2.1 as 64512;" in bird and "local 192.0.2.0 as 65101;" in bird
    assert "neighbor 198.51.100.1 as 65000;" in bird


def test_speaker_config_peers_with_the_border_and_knows_each_providers_path(plan):
    daemons = {d.name: d for d in of(plan, Daemon)
               if not d.name.startswith(("socket-", "openvpn-", "wireguard-", "pptp-"))}
    assert set(daemons) == {"bird-internet", "bird-mae-east", "bird-mae-west", "egress-manager",
                            "border-sunnyvale", "border-washington", "bfdd-sunnyvale", "bfdd-washington",
                            "exabgp-plb-sunnyvale", "exabgp-plb-washington"}
    speaker = daemons["exabgp-plb-washington"]
    assert speaker.ns == PLB_WASH
    config = json.loads(dict(speaker.files)["exabgp-plb-washington.json"])
    assert config["allowed_prefixes"] == ["198.18.0.0/22"] and config["ibgp"] is True
    assert config["announce"] == [{"prefix": "198.18.0.0/22", "prepend": 0, "communities": []}]
    assert config["prefsrc"] == config["router_id"] == "198.18.0.9"  # washington's loopback
    border = json.loads(dict(daemons["border-washington"].files)["border-washington.json"])["slices"][0]
    assert [(n["name"], n["address"], n["peer_as"], n["add_path"]) for n in config["neighbors"]] == [
        ("border", border["local_address"], 64512, "receive")]
    assert config["paths"] == [{"name": "mae-east", "path_id": "0.0.0.1", "next_hop": border["next_hops"]["mae-east"],
                                "local_pref": 100}]


def test_egress_manager_sends_each_sliver_to_the_nearest_live_egress():
    topo = load_topology(ABILENE)
    plan = compile_plan(topo)
    config = json.loads(dict(next(d for d in of(plan, Daemon) if d.name == "egress-manager").files)[
        "egress-manager.json"])
    plb = config["slices"]["plb"]
    both = choose_defaults(plb, {"sunnyvale", "washington"})
    node = lambda choice: choice[2] if choice else None  # noqa: E731
    assert node(both["vispd.abilene.seattle.plb"]) == "sunnyvale"
    assert node(both["vispd.abilene.new-york.plb"]) == "washington"
    assert both["vispd.abilene.washington.plb"] is None  # a live egress keeps its BGP routes
    east_only = choose_defaults(plb, {"washington"})
    assert node(east_only["vispd.abilene.seattle.plb"]) == "washington"
    assert east_only["vispd.abilene.seattle.plb"][1] == "v-dnvr"  # first hop of seattle's path east
    assert node(east_only["vispd.abilene.sunnyvale.plb"]) == "washington"  # a dead egress moves too
    assert set(choose_defaults(plb, set()).values()) == {None}


def test_an_egress_is_live_only_with_routes_and_no_newer_down_event():
    up = {"state": "up", "installed": 3, "since": 100.0}
    empty = {"state": "up", "installed": 0, "since": 100.0}
    sessions = {"a": {"p": up}, "b": {"q": empty}, "c": {"r": {"state": "down", "installed": 0}}}
    assert live_egress(sessions, {}) == {"a"}
    assert live_egress(sessions, {("a", "p"): 101.0}) == set()  # event newer than the status
    assert live_egress(sessions, {("a", "p"): 99.0}) == {"a"}  # status newer than the event


def test_manager_config_paths_follow_the_state_directory():
    topo = load_topology(ABILENE)
    runtime = Runtime(python="/py", project_root="/repo", state_dir="/x", run_dir="/x/run",
                      sock_dir="/run/vispd/abilene")
    config = manager_config(PlanContext(topo, runtime), [])
    assert config["slices"] == {} and config["event_socket"] == "/run/vispd/abilene/egress.sock"
    assert config["status_file"] == "/x/run/egress-manager.status.json"


def test_an_frr_provider_gets_zebra_and_bgpd_configs():
    from unit_helpers import abilene_full_text

    text = abilene_full_text().replace("max-prefix: 100000}", "max-prefix: 100000, lab-daemon: frr}", 1)
    plan = compile_plan(load_topology(ABILENE, text))
    frr = next(d for d in of(plan, Daemon) if d.name == "frr-mae-east")
    assert frr.ns == "vispd.abilene.+mae-east" and frr.argv[1:3] == ("-m", "dataplane.frr")
    bgpd = dict(frr.files)["frr-mae-east.bgpd.conf"]
    assert "router bgp 65101" in bgpd and "neighbor 192.0.2.1 remote-as 64512" in bgpd
    assert "no bgp ebgp-requires-policy" in bgpd and "neighbor 198.51.100.1 remote-as 65000" in bgpd
    assert not [d for d in of(plan, Daemon) if d.name == "bird-mae-east"]


def test_defaults_are_applied_nearest_first_so_no_sliver_points_at_one_pointing_back():
    from bgp.egress_manager import loop_free_order

    topo = load_topology(ABILENE)
    plan = compile_plan(topo)
    config = json.loads(dict(next(d for d in of(plan, Daemon) if d.name == "egress-manager").files)[
        "egress-manager.json"])
    plb = config["slices"]["plb"]
    hop_of = {s["ns"]: s["toward"] for s in plb["slivers"]}
    gateway_owner = {}  # link address -> sliver ns holding it
    for info in plan.slivers:
        for _, cidr, _ in info.interfaces:
            gateway_owner[cidr.split("/")[0]] = info.ns
    for live in ({"washington"}, {"sunnyvale"}, {"sunnyvale", "washington"}):
        order = loop_free_order(plb, choose_defaults(plb, live))
        done = set()
        for ns, choice in order:
            if choice is not None:
                gateway, _, egress = choice
                nxt = gateway_owner[gateway]
                # the next hop is the egress itself or has already turned toward the same egress
                assert nxt.endswith(f".{egress}.plb") or nxt in done, (live, ns, nxt)
                assert hop_of[ns][egress][2] >= 0
            done.add(ns)
        assert [c for _, c in order[:len(live)]] == [None] * len(live)  # live egresses first
