"""What the BPF guard of a node namespace holds (pure: map contents, program names)."""
from __future__ import annotations

import struct

from dataplane.bpf import spec
from dataplane.bpf.asm import mac_bytes

K1, K1_PEER = "02:00:00:00:01:01", "02:00:00:00:01:02"
K2, K2_PEER = "02:00:00:00:02:01", "02:00:00:00:02:02"
O1, O1_PEER = "02:00:00:00:03:01", "02:00:00:00:03:02"


def guard(ingress: bool = False, own: bool = True) -> spec.NodeGuard:
    ends = [spec.SliceEnd(K1, K1_PEER, 0x10), spec.SliceEnd(K2, K2_PEER, 0x11)]
    if own:
        ends.append(spec.SliceEnd(O1, O1_PEER, 0x12, own_ifname="oo1-b"))
    return spec.NodeGuard("n", (spec.DeviceGuard("to-b", tuple(ends), ingress=ingress),))


IFINDEX = {"to-b": 5, "oo1-b": 9}


def test_egress_map_admits_outgoing_pairs_with_their_class():
    g = guard()
    entries = spec.egress_entries(g, g.devices[0])
    assert entries == {
        mac_bytes(K1_PEER) + mac_bytes(K1): struct.pack("<I", 0x10010),
        mac_bytes(K2_PEER) + mac_bytes(K2): struct.pack("<I", 0x10011),
        mac_bytes(O1_PEER) + mac_bytes(O1): struct.pack("<I", 0x10012),
    }


def test_ingress_map_passes_kernel_pairs_and_steers_own_pairs():
    g = guard()
    entries = spec.ingress_entries(g.devices[0], IFINDEX.get)
    assert entries[mac_bytes(K1) + mac_bytes(K1_PEER)] == struct.pack("<I", 0)
    assert entries[mac_bytes(O1) + mac_bytes(O1_PEER)] == struct.pack("<I", 9)
    assert len(entries) == 3


def test_programs_needed():
    kernel_only = spec.programs(guard(own=False), IFINDEX.get)
    assert [(p.ifname, p.hook, p.role) for p in kernel_only] == [("to-b", "egress", "e")]
    judged = spec.programs(guard(ingress=True, own=False), IFINDEX.get)
    assert [(p.hook, p.role) for p in judged] == [("egress", "e"), ("ingress", "i")]
    mixed = spec.programs(guard(), IFINDEX.get)
    assert [(p.ifname, p.hook, p.role) for p in mixed] == [
        ("oo1-b", "ingress", "o"), ("to-b", "egress", "e"), ("to-b", "ingress", "i")]
    own = mixed[0].entries
    assert own == {"mac": O1, "peer_mac": O1_PEER, "substrate_ifindex": 5, "priority": 0x10012}


def test_digests_follow_contents_and_interface_indexes():
    first = {p.ifname + p.hook: p.name for p in spec.programs(guard(), IFINDEX.get)}
    again = {p.ifname + p.hook: p.name for p in spec.programs(guard(), IFINDEX.get)}
    assert first == again
    moved = {p.ifname + p.hook: p.name for p in spec.programs(guard(), {"to-b": 5, "oo1-b": 10}.get)}
    assert moved["to-begress"] == first["to-begress"]
    assert moved["to-bingress"] != first["to-bingress"]  # the own link's device was recreated
    assert moved["oo1-bingress"] == first["oo1-bingress"]
    fewer = {p.ifname + p.hook: p.name for p in spec.programs(guard(own=False), IFINDEX.get)}
    assert fewer["to-begress"] != first["to-begress"]


def test_program_names_are_markers():
    program = spec.programs(guard(), IFINDEX.get)[1]
    assert len(program.name) == 15  # BPF_OBJ_NAME_LEN - 1
    assert spec.parse_program_name(program.name) == ("e", program.digest)
    for other in ("vispd_guard", "cil_from_netdev", "vispdx123456789", "vispde12345678"):
        assert spec.parse_program_name(other) is None


def test_check_finds_planner_mistakes():
    assert spec.check(guard()) == []
    clash = spec.NodeGuard("n", (spec.DeviceGuard("to-b", (
        spec.SliceEnd(K1, K1_PEER, 1), spec.SliceEnd(K1, K2_PEER, 2))),))
    assert "two slices' end" in spec.check(clash)[0]
    multicast = spec.NodeGuard("n", (spec.DeviceGuard("to-b", (spec.SliceEnd(K1, "01:00:5e:00:00:05", 1),)),))
    assert "multicast" in spec.check(multicast)[0]
    own_twice = spec.NodeGuard("n", (spec.DeviceGuard("to-b", (
        spec.SliceEnd(K1, K1_PEER, 1, own_ifname="x"), spec.SliceEnd(K2, K2_PEER, 2, own_ifname="x"))),))
    assert "named twice" in spec.check(own_twice)[0]


def test_own_link_names_fit_and_differ():
    names = {spec.own_link_ifname("t", s, n, p) for s in ("a", "b") for n in ("x", "y") for p in ("x", "y")}
    assert len(names) == 8 and all(len(n) <= 15 for n in names)
    assert spec.own_link_ifname("t", "a", "x", "y") == spec.own_link_ifname("t", "a", "x", "y")
