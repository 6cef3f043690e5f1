"""Link `delay`, `jitter` and `loss` in the schema (model.schema, model.linkdelay): parsed to
numbers, `delay: geo` resolved from the nodes' coordinates, and the rules at their edges
(the bad-input corpus holds the located messages). Also the pure parts the delay line gained
for vispd: its ready socket in the configuration, and the timestamp program's bytes."""
from __future__ import annotations

import struct

import pytest

from dataplane import delaystamp
from dataplane.delayconfig import LineConfig, LinkDelay, parse_config, render_config
from dataplane.delayreload import plan_reload
from model import geo
from model.errors import TopologyError
from model.linkdelay import DeclaredDelay
from unit_helpers import topology

BASE = """\
    name: t
    asn: 64512
    address-space: [10.0.0.0/16]
    nodes:
      - {name: a, latitude: 47.61, longitude: -122.33}
      - {name: b, latitude: 39.74, longitude: -104.98}
    links:
      - {between: [a, b], bandwidth: 1G, LINK}
    """


def link_of(declaration: str):
    topo = topology(BASE.replace("LINK", declaration))
    return topo, topo.links[0]


def test_durations_and_loss_become_numbers():
    topo, link = link_of("delay: 12ms, jitter: 500us, loss: 0.1%")
    assert (link.delay, link.jitter, link.loss) == (12000, 500, 0.001)
    assert topo.link_delay(link) == DeclaredDelay(12000, 500, 0.001, geo=False)
    assert topo.link_delay(link).describe() == "12ms, jitter 500us, loss 0.1%"


def test_nothing_declared_is_nothing_to_realise():
    topo, link = link_of("cost: 3")
    assert (link.delay, link.jitter, link.loss) == (None, None, None)
    assert not topo.link_delay(link).any
    topo, link = link_of("delay: 0ms, loss: 0%")
    assert not topo.link_delay(link).any


def test_geo_is_the_great_circle_times_the_route_allowance_in_fibre():
    topo, link = link_of("delay: geo")
    assert link.delay == "geo"
    value = topo.link_delay(link)
    air = geo.great_circle_km(47.61, -122.33, 39.74, -104.98)
    assert value.geo and value.delay_us == round(1.25 * air * geo.FIBRE_US_PER_KM)
    assert value.describe().endswith("(geo)")


def test_jitter_may_equal_the_delay_but_not_exceed_it():
    topo, link = link_of("delay: 2ms, jitter: 2ms")
    assert topo.link_delay(link).jitter_us == 2000
    with pytest.raises(TopologyError, match="jitter: 2.001ms exceeds the link's one-way delay 2ms"):
        link_of("delay: 2ms, jitter: 2001us")


def test_geo_jitter_is_judged_against_the_geographic_delay():
    topo, link = link_of("delay: geo, jitter: 10ms")  # ~10.05 ms one way
    assert topo.link_delay(link).jitter_us == 10000
    with pytest.raises(TopologyError, match="exceeds the link's geographic one-way delay"):
        link_of("delay: geo, jitter: 11ms")


def test_loss_just_below_everything_is_accepted():
    _, link = link_of("loss: 99.9%")
    assert link.loss == pytest.approx(0.999)
    with pytest.raises(TopologyError, match="loss must be below 100%"):
        link_of("loss: 100.0%")


def test_geo_without_coordinates_on_an_end_names_the_end():
    text = BASE.replace("{name: b, latitude: 39.74, longitude: -104.98}", "{name: b, longitude: -104.98}")
    with pytest.raises(TopologyError) as caught:
        topology(text.replace("LINK", "delay: geo"))
    (problem,) = caught.value.problems
    assert (problem.mark.line, problem.mark.column) == (8, 45)  # the `geo` value
    assert "'b' has no latitude" in problem.message and "'a'" not in problem.message


def test_geo_to_an_undeclared_node_is_left_to_the_semantic_check():
    text = BASE.replace("between: [a, b]", "between: [a, z]")
    with pytest.raises(TopologyError) as caught:
        topology(text.replace("LINK", "delay: geo"))
    assert [p.message for p in caught.value.problems] == ["link endpoint 'z' is not a declared node"]


def test_ready_socket_round_trips_and_cannot_change_by_reload():
    line = LineConfig(links=(LinkDelay(queues=(0,), delay_us=5000, netns="n", device="v-a"),),
                      ready_socket="/run/vispd/t/delay-a.sock")
    assert parse_config(render_config(line)) == line
    assert "ready-socket" not in render_config(LineConfig(links=line.links))
    moved = LineConfig(links=line.links, ready_socket="/run/vispd/t/other.sock")
    with pytest.raises(ValueError, match="ready socket needs a restart"):
        plan_reload(line, moved)


def test_the_timestamp_program_clears_skb_tstamp_and_lets_the_packet_on():
    code = delaystamp.program()
    insns = [struct.unpack("<BBhi", code[i:i + 8]) for i in range(0, len(code), 8)]
    assert len(insns) == 4
    (mov, regs0, _, zero), (stx, regs1, offset, _), (mov_r0, regs2, _, verdict), (exit_, *_rest) = insns
    assert (mov, regs0 & 0xF, zero) == (0xB7, 2, 0)  # r2 = 0
    assert (stx, regs1 & 0xF, regs1 >> 4, offset) == (0x7B, 1, 2, 152)  # *(u64 *)(r1 + tstamp) = r2
    assert (mov_r0, regs2 & 0xF, verdict) == (0xB7, 0, -1)  # return TC_ACT_UNSPEC
    assert exit_ == 0x95


def attributes(body: bytes, offset: int) -> dict[int, bytes]:
    found = {}
    while offset + 4 <= len(body):
        length, kind = struct.unpack_from("=HH", body, offset)
        found[kind] = body[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def test_the_tc_requests_name_clsact_and_a_direct_action_bpf_filter_on_ingress():
    family, index, handle, parent, info = struct.unpack_from("=BxxxiIII", delaystamp.clsact_request(7))
    assert (family, index, handle, parent, info) == (0, 7, 0xFFFF0000, 0xFFFFFFF1, 0)
    assert attributes(delaystamp.clsact_request(7), 20) == {1: b"clsact\0"}
    body = delaystamp.filter_request(9, fd=42)
    _, index, handle, parent, info = struct.unpack_from("=BxxxiIII", body)
    assert (index, handle, parent) == (9, 1, 0xFFFFFFF2)  # the clsact's ingress hook
    assert info >> 16 == 1 and info & 0xFFFF == 0x0300  # priority 1, ETH_P_ALL in network order
    top = attributes(body, 20)
    assert top[1] == b"bpf\0"
    options = attributes(top[2], 0)
    assert struct.unpack("=I", options[6]) == (42,) and options[7] == b"vispd_fresh_ts\0"
    assert struct.unpack("=I", options[8]) == (1,)  # direct action
