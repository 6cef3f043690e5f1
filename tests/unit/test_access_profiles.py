"""Client profiles for ordinary machines (pure): a slice with egress sends everything into the
tunnel without capturing the way to the server (OpenVPN's `redirect-gateway def1`, wg-quick's
AllowedIPs 0.0.0.0/0), a slice without egress only its prefix; an access point behind the
machine's public interface is dialled at its public address; and `vispd access profile`
needs --type or --node only when there is a choice to make."""
from __future__ import annotations

import dataclasses

import pytest

from compiler.access import server_context
from compiler.access_types import openvpn, wireguard
from compiler.context import PlanContext
from compiler.planner import compile_plan
from compiler.runtime import Runtime
from model.errors import VispdError
from unit_helpers import topology
from vispd.access_cli import choose_point

TOPO = """\
    name: prof
    asn: 64512
    address-space: [198.18.0.0/16]
    nodes: [{name: a}, {name: b}]
    links: [{between: [a, b], bandwidth: 1G}]
    providers: [{name: up, node: a, asn: 65001, bandwidth: 1G}]
    slices:
      - {name: out, prefix: 198.18.0.0/22, bandwidth: 100M, egress: [up]}
      - {name: in, prefix: 198.18.4.0/22, bandwidth: 100M}
    access:
      - {slice: out, type: openvpn, nodes: [a, b], users: [{name: alice}, {name: bob}]}
      - {slice: out, type: wireguard, nodes: [a], users: [{name: alice}]}
      - {slice: in, type: openvpn, nodes: [b], users: [{name: carol}]}
    """


@pytest.fixture(scope="module")
def setup():
    topo = topology(TOPO)
    return topo, compile_plan(topo), PlanContext(topo, Runtime.for_topology("prof"))


def context(setup, slice_name, kind, node="a", dial=None):
    _, plan, ctx = setup
    point = next(p for p in plan.access_points if (p.slice, p.type, p.node) == (slice_name, kind, node))
    return server_context(ctx, dataclasses.replace(point, dial=dial) if dial else point)


def pushed(config: str) -> list[str]:
    return [line for line in config.splitlines() if line.startswith("push ")]


def test_openvpn_redirects_the_gateway_for_a_slice_with_egress_and_keeps_the_server_route(setup):
    cfg = openvpn.server_of(context(setup, "out", "openvpn"))
    assert pushed(openvpn.server_config(cfg)) == ['push "route 198.18.0.0 255.255.252.0"',
                                                  'push "redirect-gateway def1"']
    inside = openvpn.server_of(context(setup, "in", "openvpn", node="b"))
    assert pushed(openvpn.server_config(inside)) == ['push "route 198.18.4.0 255.255.252.0"']


def test_wireguard_sends_everything_into_the_tunnel_with_egress(setup):
    cfg = wireguard.server_of(context(setup, "out", "wireguard"))
    assert cfg.routes == ("198.18.0.0/22", "0.0.0.0/0")  # wg-quick's fwmark rules keep the endpoint outside


def test_a_forwarded_access_point_is_dialled_at_the_machine_s_address(setup):
    cfg = openvpn.server_of(context(setup, "out", "openvpn", dial="203.0.113.7"))
    profile = openvpn.client_profile_text(cfg, "alice", "CA", "CERT", "KEY")
    assert "remote 203.0.113.7 1194" in profile.splitlines()
    assert cfg.local != "203.0.113.7"  # the server still listens on the sliver's public side
    wg = wireguard.server_of(context(setup, "out", "wireguard", dial="203.0.113.7"))
    assert wg.endpoint == "203.0.113.7"


def test_profile_needs_a_choice_only_when_there_is_one(setup):
    _, plan, _ = setup
    assert choose_point(plan, "in", "carol", None, None).node == "b"  # one type, one node: no option
    assert choose_point(plan, "out", "bob", None, "b").node == "b"
    with pytest.raises(VispdError, match=r"openvpn access on several nodes \(a, b\): choose one with --node"):
        choose_point(plan, "out", "bob", None, None)
    with pytest.raises(VispdError, match=r"several access types in slice 'out': openvpn \(on a, b\); "
                                         r"wireguard \(on a\); choose one with --type"):
        choose_point(plan, "out", "alice", None, None)
    assert choose_point(plan, "out", "alice", "wireguard", None).type == "wireguard"
    with pytest.raises(VispdError, match="no pptp access point"):
        choose_point(plan, "out", "alice", "pptp", None)


class Store:
    """The credential store's revocation part, in memory."""

    def __init__(self):
        self.revoked: set[str] = set()

    def revoke_key(self, slice_name, user):
        self.revoked.add(user)


class Control:
    def __init__(self):
        self.removed = []

    def remove_peer(self, ns, ifname, key):
        self.removed.append((ns, ifname, key))


def test_a_revoked_wireguard_user_loses_its_peer_now_and_in_every_later_plan(setup):
    topo, _, _ = setup
    ctx = context(setup, "out", "wireguard")
    key = wireguard.server_of(ctx).peer("alice").public_key
    store, control = Store(), Control()
    said = wireguard.WireGuard().revoke([ctx], "alice", store, control)
    assert store.revoked == {"alice"} and said[0] == "revoked alice's WireGuard key in slice out"
    assert control.removed == [(ctx.ns, wireguard.server_of(ctx).ifname, key)]
    later = dataclasses.replace(ctx, credentials={**ctx.credentials, ("wireguard-revoked", "out", "alice"): True})
    assert wireguard.server_of(later).peers == ()
    with pytest.raises(VispdError, match="revoked"):
        wireguard.WireGuard().profile(later, "alice", store)
