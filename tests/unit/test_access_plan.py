"""Access planning on the full abilene.yaml (pure): pools and socket subnets inside the
slice prefix and routed by every other sliver, the public underlay, client hosts, and
the daemons of each access point."""
from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from unit_helpers import ABILENE
from compiler.loader import load_topology
from compiler.resources import Address, Daemon, IsolationFilter, Macvlan, Netns, Route
from compiler.planner import compile_plan


@pytest.fixture(scope="module")
def plan():
    return compile_plan(load_topology(ABILENE))


def of(plan, kind):
    return [r for r in plan.resources if isinstance(r, kind)]


def test_access_points_get_pools_inside_the_slice_prefix(plan):
    points = {(p.type, p.node): p for p in plan.access_points}
    assert {k for k in points if k[0] != "socket"} == {("openvpn", "new-york"), ("wireguard", "seattle"),
                                                       ("pptp", "chicago")}
    assert sum(1 for k in points if k[0] == "socket") == 11
    plb = IPv4Network("198.18.0.0/22")
    pools = [IPv4Network(p.pool) for p in plan.access_points]
    assert all(pool.subnet_of(plb) for pool in pools)
    assert not any(a.overlaps(b) for i, a in enumerate(pools) for b in pools[i + 1:])
    assert points[("openvpn", "new-york")].pool == "198.18.3.128/28"  # first /28 of the top eighth
    assert points[("wireguard", "seattle")].pool == "198.18.3.144/28"


def test_every_other_sliver_routes_each_pool_toward_its_node(plan):
    pool = next(p.pool for p in plan.access_points if p.type == "openvpn")
    routes = {r.ns: r for r in of(plan, Route) if r.dst == pool}
    slivers = {f"vispd.abilene.{n}.plb" for n in ("seattle", "denver", "atlanta", "washington")}
    assert slivers <= set(routes)
    assert "vispd.abilene.new-york.plb" not in routes  # local there: the server's tun holds it
    assert routes["vispd.abilene.washington.plb"].ifname == "v-nycm"


def test_remote_access_points_sit_on_the_public_underlay(plan):
    namespaces = {r.ns for r in of(plan, Netns)}
    assert {"vispd.abilene.+public", "vispd.abilene.+c-openvpn-plb-new-york",
            "vispd.abilene.+c-wireguard-plb-seattle"} <= namespaces
    public = {(r.ns, r.cidr) for r in of(plan, Address) if r.ifname == "pub"}
    assert ("vispd.abilene.new-york.plb", "100.64.10.2/24") in public
    guard = next(f for f in of(plan, IsolationFilter) if f.ns == "vispd.abilene.new-york")
    assert "pub" in guard.devices
    sliver_mac = next(m.mac for m in of(plan, Macvlan) if m.ns == "vispd.abilene.new-york.plb" and m.ifname == "pub")
    assert any(dst == sliver_mac for _, dst in guard.pairs)
    # research has no access point: no public interface in its slivers
    assert not [m for m in of(plan, Macvlan) if m.ns.endswith(".research") and m.ifname == "pub"]


def test_each_access_point_has_its_daemon_in_the_right_sliver(plan):
    daemons = {d.name: d for d in of(plan, Daemon)}
    assert daemons["openvpn-plb-new-york"].ns == "vispd.abilene.new-york.plb"
    conf = dict(daemons["openvpn-plb-new-york"].files)["openvpn-plb-new-york.conf"]
    assert "local 100.64.10.2" in conf and "server 198.18.3.128 255.255.255.240" in conf
    assert 'push "route 198.18.0.0 255.255.252.0"' in conf and "crl-verify" in conf
    assert daemons["wireguard-plb-seattle"].ns == "vispd.abilene.seattle.plb"
    pptp = daemons["pptp-plb-chicago"]
    assert pptp.ns == "vispd.abilene.chicago.plb" and pptp.argv[:2] == ("pptpd", "--fg")
    assert "listen 100.64.6.2" in dict(pptp.files)["pptp-plb-chicago/pptpd.conf"]
    socket = daemons["socket-plb-chicago"]
    assert socket.ns == "vispd.abilene.chicago.plb" and socket.argv[1:3] == ("-m", "access.localsock")
