"""Egress planning on the full abilene.yaml (pure): access links, peering addresses,
shaping and guard entries, the speakers' configs, and the egress manager's choices."""
from __future__ import annotations

import json

import pytest

from bgp.egress_manager import choose_defaults, live_egress
from unit_helpers import ABILENE
from compiler.context import PlanContext
from compiler.egress import manager_config
from compiler.runtime import Runtime
from compiler.loader import load_topology
from compiler.resources import Address, Daemon, IsolationFilter, Macvlan, Neighbour, Shaping, Veth
from compiler.planner import compile_plan


@pytest.fixture(scope="module")
def plan():
    return compile_plan(load_topology(ABILENE))


def of(plan, kind):
    return [r for r in plan.resources if isinstance(r, kind)]


def test_each_provider_gets_a_guarded_shaped_access_link(plan):
    access = {r.ifname: r for r in of(plan, Veth) if r.ifname.startswith("x-")}
    assert set(access) == {"x-mae-east", "x-mae-west"}
    east = access["x-mae-east"]
    assert (east.ns, east.peer_ns, east.peer_ifname, east.arp) == (
        "vispd.abilene.washington", "vispd.abilene.+mae-east", "to-wash", False)
    shaping = next(s for s in of(plan, Shaping) if s.ifname == "x-mae-east")
    assert shaping.capacity == 10**9 and [(c.label, c.rate) for c in shaping.classes] == [("plb", 500 * 10**6)]
    guard = next(f for f in of(plan, IsolationFilter) if f.ns == "vispd.abilene.washington")
    assert "x-mae-east" in guard.devices
    plb_mac = next(m.mac for m in of(plan, Macvlan) if m.ifname == "p-mae-east")
    assert (east.peer_mac, plb_mac) in guard.pairs  # the provider may talk to plb only


def test_peering_addresses_and_static_neighbours_both_ways(plan):
    sliver = {(r.ifname, r.cidr) for r in of(plan, Address) if r.ns == "vispd.abilene.washington.plb"}
    assert ("p-mae-east", "192.0.2.1/31") in sliver
    provider = {(r.ifname, r.cidr) for r in of(plan, Address) if r.ns == "vispd.abilene.+mae-east"}
    assert provider == {("to-wash", "192.0.2.0/31"), ("to-inet", "198.51.100.0/31")}
    neighbours = {(r.ns, r.ip) for r in of(plan, Neighbour)}
    assert ("vispd.abilene.washington.plb", "192.0.2.0") in neighbours
    assert ("vispd.abilene.+mae-east", "192.0.2.1") in neighbours
    # research does not egress: no access interface in its slivers
    assert not [m for m in of(plan, Macvlan) if m.ns.endswith(".research") and m.ifname.startswith("p-")]


def test_speaker_config_announces_the_slice_prefix_to_its_providers(plan):
    daemons = {d.name: d for d in of(plan, Daemon)
               if not d.name.startswith(("socket-", "openvpn-", "wireguard-", "pptp-"))}
    assert set(daemons) == {"bird-internet", "bird-mae-east", "bird-mae-west", "egress-manager",
                            "exabgp-plb-sunnyvale", "exabgp-plb-washington"}
    speaker = daemons["exabgp-plb-washington"]
    assert speaker.ns == "vispd.abilene.washington.plb"
    config = json.loads(dict(speaker.files)["exabgp-plb-washington.json"])
    assert config["allowed_prefixes"] == ["198.18.0.0/22"]
    assert config["announce"] == [{"prefix": "198.18.0.0/22", "prepend": 0, "communities": []}]
    assert config["prefsrc"] == config["router_id"] == "198.18.0.9"  # washington's loopback
    assert [(n["name"], n["address"], n["peer_as"], n["max_prefix"]) for n in config["neighbors"]] == [
        ("mae-east", "192.0.2.0", 65101, 100000)]
    bird = dict(daemons["bird-mae-east"].files)["bird-mae-east.conf"]
    assert "neighbor 192.0.2.1 as 64512;" in bird and "local 192.0.2.0 as 65101;" in bird
    assert "neighbor 198.51.100.1 as 65000;" in bird


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
