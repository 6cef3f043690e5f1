"""Routing modes and failed links in the pure core: BIRD's OSPF configuration per sliver
(unicast point-to-multipoint neighbours, timers, stub networks), what the planner gives
each mode (daemons, routes), static routes around a failed link, the LinkDown ends
of a failed link, and `linkstate.substrate_link`'s errors."""
from __future__ import annotations

import re
import shutil
import subprocess
from ipaddress import ip_address, ip_network

import pytest

from routing_oracle import addresses_of, route_toward, routed_addresses
from unit_helpers import PATHS, RING, topology
from compiler.addressing import allocate_slice_prefixes
from compiler.links import link_down_ends
from vispd.linkstate import substrate_link
from model.errors import BadRequest
from model.schema import Ospf
from compiler.daemons.ospf import control_socket, render_sliver_bird
from compiler.resources import Daemon, LinkDown, Route, Veth
from compiler.planner import ControllerState, compile_plan



@pytest.fixture(scope="module")
def ring():
    return topology(RING, "ring.yaml")


@pytest.fixture(scope="module")
def ring_plan(ring):
    return compile_plan(ring, PATHS)


def of(plan, kind, ns_part: str = ""):
    return [r for r in plan.resources if isinstance(r, kind) and ns_part in r.ns]


def daemon_conf(daemon: Daemon) -> str:
    (_, text), = daemon.files
    return text


def interfaces(conf: str) -> dict[str, str]:
    """ifname -> the body of its `interface "..." { ... };` block."""
    return dict(re.findall(r'interface "([^"]+)" \{\n(.*?)\n    \};', conf, re.S))


# --- BIRD's configuration -------------------------------------------------------------------

def test_ospf_slice_has_one_bird_per_sliver_and_no_vispd_routes(ring_plan):
    daemons = [d for d in of(ring_plan, Daemon) if d.name.startswith("ospf-")]
    assert sorted((d.name, d.ns) for d in daemons) == sorted(
        (f"ospf-{s}-{n}", f"vispd.ring.{n}.{s}") for s in ("oa", "ob") for n in "abcd")
    assert of(ring_plan, Route, ".oa") == of(ring_plan, Route, ".ob") == []
    a = next(d for d in daemons if d.name == "ospf-oa-a")
    assert a.argv == ("bird", "-f", "-c", "/var/lib/vispd/ring/run/ospf-oa-a.conf",
                      "-s", control_socket(PATHS.sock_dir, "oa", "a"), "-P", "/var/lib/vispd/ring/run/ospf-oa-a.birdpid")
    assert ring_plan.routing == {"st": "static", "oa": "ospf", "ob": "ospf", "nn": "none"}


def test_bird_talks_unicast_point_to_multipoint_to_each_neighbour(ring_plan):
    for node, peers in {"a": "bd", "b": "ac", "c": "bd", "d": "ac"}.items():
        info = ring_plan.sliver("oa", node)
        conf = daemon_conf(next(d for d in of(ring_plan, Daemon) if d.name == f"ospf-oa-{node}"))
        blocks = interfaces(conf)
        assert sorted(blocks) == [f"v-{p}" for p in peers]
        for ifname, body in blocks.items():
            peer = ring_plan.sliver("oa", ifname[2:])
            peer_address = next(cidr.split("/")[0] for _, cidr, _ in peer.interfaces
                                if ip_address(cidr.split("/")[0]) in ip_network(
                                    dict((i, c) for i, c, _ in info.interfaces)[ifname], strict=False))
            assert "type ptmp;" in body and "check link yes;" in body
            assert f"neighbors {{ {peer_address}; }};" in body
        # never broadcast/NBMA-with-multicast, never a multicast address
        assert "type broadcast" not in conf and "224.0.0." not in conf
        assert f"router id {info.loopback};" in conf
        assert f"krt_prefsrc = {info.loopback};" in conf


def test_interface_cost_is_the_link_cost(ring_plan):
    conf_a = daemon_conf(next(d for d in of(ring_plan, Daemon) if d.name == "ospf-oa-c"))
    blocks = interfaces(conf_a)
    assert "cost 1;" in blocks["v-b"] and "cost 5;" in blocks["v-d"]


def test_timers_come_from_the_slice_or_default(ring_plan):
    default = Ospf()
    oa = daemon_conf(next(d for d in of(ring_plan, Daemon) if d.name == "ospf-oa-b"))
    ob = daemon_conf(next(d for d in of(ring_plan, Daemon) if d.name == "ospf-ob-b"))
    for body in interfaces(oa).values():
        assert f"hello {default.hello}; dead {default.dead}; retransmit {default.retransmit};" in body
    for body in interfaces(ob).values():
        assert "hello 2; dead 7; retransmit 3;" in body
    assert "tick 1;" in oa and "ecmp yes;" in oa


def test_stub_networks_are_loopback_and_pseudo_devices(ring, ring_plan):
    prefixes = allocate_slice_prefixes(ring)
    c = daemon_conf(next(d for d in of(ring_plan, Daemon) if d.name == "ospf-oa-c"))
    a = daemon_conf(next(d for d in of(ring_plan, Daemon) if d.name == "ospf-oa-a"))
    tun_subnet = next(s for n, _, s in ring_plan.sliver("oa", "c").pseudo_devices if n == "oa0")
    assert re.findall(r"stubnet (\S+);", c) == [f"{ring_plan.sliver('oa', 'c').loopback}/32", tun_subnet]
    assert re.findall(r"stubnet (\S+);", a) == [f"{ring_plan.sliver('oa', 'a').loopback}/32"]
    assert ip_network(tun_subnet).subnet_of(prefixes["oa"])


def test_render_with_no_neighbours_keeps_the_loopback_stub():
    sl = topology(RING).slices[1]
    conf = render_sliver_bird("ring", sl, "x", "198.18.0.9", [], ["10.0.0.0/30"])
    assert "interface" not in conf and "stubnet 198.18.0.9/32;" in conf and "stubnet 10.0.0.0/30;" in conf


@pytest.mark.skipif(shutil.which("bird") is None, reason="needs BIRD 2 ('bird' binary) to parse the configuration")
def test_bird_accepts_every_rendered_configuration(ring_plan, tmp_path):
    for daemon in of(ring_plan, Daemon):
        path = tmp_path / f"{daemon.name}.conf"
        path.write_text(daemon_conf(daemon))
        parsed = subprocess.run(["bird", "-p", "-c", str(path)], capture_output=True, text=True, timeout=10)
        assert parsed.returncode == 0, f"{daemon.name}: {parsed.stderr}"


# --- what each mode gets -----------------------------------------------------------------------

def test_static_slice_routes_and_no_daemon(ring_plan):
    assert not [d for d in of(ring_plan, Daemon) if "-st-" in d.name or "-nn-" in d.name]
    routes = of(ring_plan, Route, ".st")
    for node in "abcd":  # every sliver to every other loopback, and nowhere else
        others = [f"{ring_plan.sliver('st', n).loopback}/32" for n in "abcd" if n != node]
        assert routed_addresses([r for r in routes if r.ns == f"vispd.ring.{node}.st"]) == addresses_of(*others)
    a_to_c = route_toward(routes, "vispd.ring.a.st", ring_plan.sliver("st", "c").loopback)
    assert a_to_c.ifname == "v-b"


def test_routing_none_gets_addresses_but_no_routes_and_no_daemon(ring_plan):
    assert of(ring_plan, Route, ".nn") == []
    assert not [d for d in of(ring_plan, Daemon) if d.ns.endswith(".nn")]
    assert all(len(ring_plan.sliver("nn", n).interfaces) == 2 for n in "abcd")


# --- failed links -------------------------------------------------------------------------------

def test_failed_link_is_down_at_both_ends_and_static_routes_go_around(ring):
    plan = compile_plan(ring, PATHS, state=ControllerState(failed_links=frozenset({("a", "b")})))
    assert plan.failed_links == frozenset({("a", "b")})
    assert sorted((r.ns, r.ifname) for r in of(plan, LinkDown)) == [("vispd.ring.a", "to-b"), ("vispd.ring.b", "to-a")]
    routes = of(plan, Route, ".st")
    lo = {n: plan.sliver("st", n).loopback for n in "abcd"}
    assert route_toward(routes, "vispd.ring.a.st", lo["c"]).ifname == "v-d"
    assert route_toward(routes, "vispd.ring.a.st", lo["b"]).ifname == "v-d"  # a-d-c-b
    assert route_toward(routes, "vispd.ring.b.st", lo["a"]).ifname == "v-c"
    assert not [r for r in routes if (r.ns.startswith("vispd.ring.a.") and r.ifname == "v-b")
                or (r.ns.startswith("vispd.ring.b.") and r.ifname == "v-a")]
    for node in "abcd":  # everyone still reaches everyone
        others = [f"{lo[n]}/32" for n in "abcd" if n != node]
        assert routed_addresses([r for r in routes if r.ns == f"vispd.ring.{node}.st"]) == addresses_of(*others)


def test_failed_link_leaves_the_slices_devices_and_ospf_configuration_alone(ring, ring_plan):
    plan = compile_plan(ring, PATHS, state=ControllerState(failed_links=frozenset({("a", "b")})))
    changed = set(plan.resources) ^ set(ring_plan.resources)
    kinds = {r.KIND for r in changed}
    assert kinds == {"linkdown", "route"}  # BIRD notices the carrier itself: its config is untouched
    assert {r.ns.split(".")[-1] for r in changed if r.KIND == "route"} == {"st"}


def test_partitioned_static_slice_routes_only_within_its_part(ring):
    plan = compile_plan(ring, PATHS, state=ControllerState(failed_links=frozenset({("a", "b"), ("b", "c")})))
    routes = of(plan, Route, ".st")
    assert not [r for r in routes if r.ns == "vispd.ring.b.st"]
    lo = {n: plan.sliver("st", n).loopback for n in "abcd"}
    for node in "acd":  # a, c, d reach each other, and nobody routes toward b
        others = [f"{lo[n]}/32" for n in "acd" if n != node]
        assert routed_addresses([r for r in routes if r.ns == f"vispd.ring.{node}.st"]) == addresses_of(*others)


def test_link_down_ends_names_both_veth_ends(ring, ring_plan):
    ends = link_down_ends(ring, ("a", "d"))
    assert ends == [LinkDown(node="a", ns="vispd.ring.a", ifname="to-d"),
                    LinkDown(node="d", ns="vispd.ring.d", ifname="to-a")]
    veth = next(r for r in of(ring_plan, Veth) if r.ns == "vispd.ring.a" and r.ifname == "to-d")
    assert veth.peer_ifname == "to-a"


# --- linkstate.substrate_link --------------------------------------------------------------------

def test_substrate_link_is_the_sorted_pair_either_way(ring):
    assert substrate_link(ring, "b", "a") == ("a", "b")
    assert substrate_link(ring, "a", "d") == ("a", "d")


@pytest.mark.parametrize("a, b, message", [
    ("a", "x", "no node 'x' in topology 'ring'"),
    ("y", "x", "no node 'y', 'x' in topology 'ring'"),
    ("a", "c", "no substrate link between 'a' and 'c' ('a' is linked to b, d)"),
    ("a", "a", "no substrate link between 'a' and 'a' ('a' is linked to b, d)"),
])
def test_substrate_link_errors_name_the_problem(ring, a, b, message):
    with pytest.raises(BadRequest) as caught:
        substrate_link(ring, a, b)
    assert str(caught.value) == message
