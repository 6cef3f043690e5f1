"""The machine's own interfaces in the pure core: a link on real ports (kind implied by
`interfaces:`), a real provider (`external:`), access ports forwarded from `public:
{interface:}` — what each plans, how borrowed devices are observed, diffed and refused, and
the borrow records (dataplane.borrow's Ledger, on files only)."""
from __future__ import annotations

import pytest

from compiler.diff import diff
from compiler.planner import compile_plan
from compiler.providers import provider_kind
from compiler.resources import Adopted, Macvlan, Netns, PortForward, Shaping, Veth, IsolationFilter
from compiler.resources.forward import render
from compiler.resources.host import DeviceView
from compiler.resources.tuntap import TunTap
from dataplane.borrow import Ledger, Record
from model.errors import TopologyError
from model.naming import HOME_NS, home_link_ifname
from unit_helpers import topology

LINK = """\
    name: real
    asn: 64512
    address-space: [198.18.0.0/16]
    nodes: [{name: a}, {name: b}, {name: c}]
    links:
      - {between: [a, b], bandwidth: 1G, interfaces: {a: enp1s0, b: enp2s0}, mtu: 9000}
      - {between: [b, c], bandwidth: 1G}
    slices:
      - {name: s, bandwidth: 100M}
      - {name: t, bandwidth: 100M}
    """


def by_kind(plan, kind):
    return [r for r in plan.resources if isinstance(r, kind)]


def test_interfaces_imply_the_kind_and_each_end_is_borrowed_as_to_peer():
    topo = topology(LINK)
    assert [lk.kind for lk in topo.links] == ["interfaces", "mpls-tunnel"]
    plan = compile_plan(topo)
    adopted = {(r.ns, r.ifname): (r.original, r.mtu, r.arp) for r in by_kind(plan, Adopted)}
    assert adopted == {("vispd.real.a", "to-b"): ("enp1s0", 9000, True),
                       ("vispd.real.b", "to-a"): ("enp2s0", 9000, True)}
    veths = {(r.ns, r.ifname) for r in by_kind(plan, Veth)}
    assert ("vispd.real.a", "to-b") not in veths and ("vispd.real.b", "to-c") in veths
    # the slices' macvlans, HTB and the guard sit on the borrowed device as on a veth
    lowers = {(r.lower_ns, r.lower_ifname) for r in by_kind(plan, Macvlan)}
    assert ("vispd.real.a", "to-b") in lowers and ("vispd.real.b", "to-a") in lowers
    shaped = {(r.ns, r.ifname): len(r.classes) for r in by_kind(plan, Shaping)}
    assert shaped[("vispd.real.a", "to-b")] == 2
    guard = next(r for r in by_kind(plan, IsolationFilter) if r.ns == "vispd.real.a")
    assert "to-b" in guard.devices


EXTERNAL = """\
    name: ext
    asn: 64512
    address-space: [198.18.0.0/16]
    nodes: [{name: a}, {name: b}]
    links: [{between: [a, b], bandwidth: 1G}]
    providers:
      - {name: isp, node: a, asn: 65001, bandwidth: 1G, external: {interface: eth1, address: 192.0.2.2/30, peer: 192.0.2.1}}
    """


def test_an_external_provider_borrows_its_interface_and_nothing_is_emulated():
    topo = topology(EXTERNAL)
    (provider,) = topo.providers
    assert provider.kind == "external"
    kind = provider_kind(provider)
    assert not kind.EMULATED
    assert kind.session_addresses(provider, 0, None) == ("192.0.2.2/30", "192.0.2.1")
    plan = compile_plan(topo)
    (device,) = by_kind(plan, Adopted)
    assert (device.ns, device.ifname, device.original, device.arp, device.mtu) == ("vispd.ext.a", "x-isp", "eth1",
                                                                                 True, 0)
    assert not [r for r in by_kind(plan, Netns) if "+" in r.ns]  # no lab world: no router, no Internet


def test_external_peers_at_the_edges_of_their_subnet():
    ok = topology(EXTERNAL.replace("192.0.2.2/30, peer: 192.0.2.1", "192.0.2.0/31, peer: 192.0.2.1"))
    assert str(ok.providers[0].external.peer) == "192.0.2.1"  # a /31 has no network address
    with pytest.raises(TopologyError) as caught:
        topology(EXTERNAL.replace("192.0.2.2/30, peer: 192.0.2.1", "192.0.2.0/30, peer: 192.0.2.1"))
    assert "192.0.2.0 is the network address of 192.0.2.0/30" in caught.value.render()


PUBLIC = """\
    name: pub
    asn: 64512
    address-space: [198.18.0.0/16]
    nodes: [{name: a}, {name: b}]
    links: [{between: [a, b], bandwidth: 1G}]
    slices:
      - {name: s, bandwidth: 100M}
      - {name: t, bandwidth: 100M}
    public: {interface: wan0}
    access:
      - {slice: s, type: openvpn, nodes: [a], users: [{name: alice}]}
      - {slice: s, type: wireguard, nodes: [a], users: [{name: alice}]}
      - {slice: t, type: openvpn, nodes: [b], port: 1195, users: [{name: bob}]}
    """


def test_public_interface_forwards_each_access_port_and_plans_no_underlay():
    plan = compile_plan(topology(PUBLIC))
    assert not [r for r in by_kind(plan, Netns) if "+" in r.ns]  # no +public, no client hosts
    homes = {(r.ns, r.ifname): (r.peer_ns, r.peer_ifname) for r in by_kind(plan, Veth)}
    assert homes[("vispd.pub.a", "pub")] == (HOME_NS, home_link_ifname("pub", "a"))
    assert homes[("vispd.pub.b", "pub")] == (HOME_NS, home_link_ifname("pub", "b"))
    (forward,) = by_kind(plan, PortForward)
    assert forward.interface == "wan0" and forward.node == "" and forward.ns == HOME_NS
    points = {(p.slice, p.type): p for p in plan.access_points}
    alice = points[("s", "openvpn")]
    assert (alice.public_interface, alice.dial, alice.client_ns) == ("wan0", None, None)
    assert set(forward.ports) == {("udp", 1194, alice.public_address), ("udp", 51820, alice.public_address),
                                  ("udp", 1195, points[("t", "openvpn")].public_address)}
    (link_a, cidr, neighbours) = forward.links[0]
    assert link_a == home_link_ifname("pub", "a") and cidr.endswith(".1/24")
    assert [ip for ip, _ in neighbours] == [alice.public_address]


def test_public_address_is_what_profiles_dial():
    plan = compile_plan(topology(PUBLIC.replace("{interface: wan0}", "{interface: wan0, address: 203.0.113.9}")))
    assert {p.dial for p in plan.access_points} == {"203.0.113.9"}


def test_the_forward_table_dnats_each_port_and_guards_the_links():
    forward = PortForward(node="", ns=HOME_NS, interface="wan0",
                          links=(("vpX", "100.64.0.1/24", (("100.64.0.2", "02:00:00:00:00:01"),)),),
                          ports=(("udp", 1194, "100.64.0.2"),))
    text = render(forward, "vispd:my-topo", closed=False)
    assert "table ip vispd_my_topo {" in text and f'comment "vispd:my-topo d={forward.digest()} if=wan0"' in text
    assert 'iifname "wan0" fib daddr type local udp dport 1194 dnat to 100.64.0.2' in text
    assert 'oifname { "vpX" } ct status dnat masquerade' in text
    assert 'oifname { "vpX" } drop' in text and 'iifname "wan0" drop' not in text
    assert 'iifname "wan0" drop' in render(forward, "vispd:my-topo", closed=True)


def view(kind: str, tokens: dict) -> DeviceView:
    return DeviceView(ifname="to-b", kind=kind, tokens=tokens, mtu=1500, up=True)


def test_a_borrowed_device_is_claimed_by_its_marker_alone():
    borrowed = view("veth", {"borrowed": "hr1a", "d": "x"})
    assert Adopted.claims(borrowed) and not Veth.claims(borrowed)
    assert Adopted.claims(view("", {"borrowed": "eth1"}))  # a real port has no kernel kind
    assert Veth.claims(view("veth", {"d": "x"})) and not Adopted.claims(view("veth", {"d": "x"}))
    assert not any(k.claims(view("", {"borrowed": "eth1"})) for k in (Veth, Macvlan, TunTap))


def test_removing_a_borrowed_link_gives_it_back_after_its_macvlans_and_before_its_namespace():
    plan = compile_plan(topology(LINK))
    steps = diff(plan.resources, [])
    order = [(s.action, s.resource.KIND, s.resource.key) for s in steps]
    give_back = order.index(("delete", "adopted", ("device", "vispd.real.a", "to-b")))
    assert give_back < order.index(("delete", "netns", ("netns", "vispd.real.a")))
    # a veth takes the macvlans stacked on it along; a borrowed interface given back does not,
    # so they are deleted by their own steps, first
    partial = diff(plan.resources, [r for r in plan.resources if not (isinstance(r, Adopted) and r.ns == "vispd.real.a")])
    deleted = [(s.resource.KIND, s.resource.ns, s.resource.ifname) for s in partial if s.action == "delete"]
    assert deleted == [("macvlan", "vispd.real.a.s", "v-b"), ("macvlan", "vispd.real.a.t", "v-b"),
                       ("adopted", "vispd.real.a", "to-b")]


class Refusing:
    def __init__(self, reason):
        self.reason, self.asked = reason, []

    def borrow_refusal(self, original, ns, ifname):
        self.asked.append((original, ns, ifname))
        return self.reason


def test_a_borrowed_device_asks_the_machine_before_anything_is_built():
    device = Adopted(node="a", ns="vispd.real.a", ifname="to-b", original="eth9")
    host = Refusing("interface eth9 does not exist on this machine")
    assert device.refusal(host) == "interface eth9 does not exist on this machine"
    assert host.asked == [("eth9", "vispd.real.a", "to-b")]
    assert device.healthy(DeviceView("to-b", "", {"d": device.digest(), "borrowed": "eth9"}, 1234, False))
    sized = Adopted(node="a", ns="n", ifname="to-b", original="eth9", mtu=9000)
    assert not sized.healthy(DeviceView("to-b", "", {"d": sized.digest()}, 1500, True))


def test_ledger_records_survive_until_forgotten_and_name_other_topologies(tmp_path):
    mine, other = Ledger(str(tmp_path / "one" / "borrowed")), Ledger(str(tmp_path / "two" / "borrowed"))
    record = Record(original="eth1", ns="vispd.one.a", ifname="to-b", home=1, mtu=1400, up=False, arp=True,
                    addresses=[[2, "10.0.0.1", 32, ""]])
    mine.record(record)
    assert mine.device("vispd.one.a", "to-b") == record
    assert other.holder("eth1") == "one" and other.holder("eth2") is None
    mine.forget_device("vispd.one.a", "to-b")
    assert mine.devices() == [] and other.holder("eth1") is None
    mine.record_sysctl("net.ipv4.conf.wan0.forwarding", "0")
    mine.record_sysctl("net.ipv4.conf.wan0.forwarding", "1")  # set by vispd: the machine's value stays
    assert mine.sysctl("net.ipv4.conf.wan0.forwarding") == "0"
    assert mine.sysctls() == ["net.ipv4.conf.wan0.forwarding"]


def test_status_says_which_interfaces_are_borrowed():
    from vispd.status import render_status

    status = {"topology": "t", "source": "t.yaml", "in_sync": True, "pending": {}, "unowned_namespaces": [],
              "nodes": [], "links": [], "slivers": [], "daemons": [],
              "borrowed": [{"interface": "enp1s0", "namespace": "vispd.t.a", "name": "to-b", "held": True},
                           {"interface": "enp2s0", "namespace": "vispd.t.b", "name": "to-a", "held": False}]}
    text = render_status(status)
    assert "interface enp1s0: borrowed as vispd.t.a/to-b" in text
    assert "interface enp2s0: not borrowed yet as vispd.t.b/to-a" in text
