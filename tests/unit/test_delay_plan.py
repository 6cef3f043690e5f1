"""compiler.delay: what the plan holds for declared link delays, per mechanism (pure).

With the delay line: one process per receiving node, serving a queue per (receiving sliver,
delayed peer), numbered by the peer's position among the node's delayed peers, in the node's
batch after its slivers' devices; its configuration is what dataplane.delayconfig parses.
With netem: a netem leaf on every slice class (and the default class) of both ends' devices,
no process. With no mechanism: nothing at all."""
from __future__ import annotations

import dataclasses
import signal

import pytest

from compiler import delay
from compiler.context import PlanningError
from compiler.diff import diff
from compiler.planner import compile_plan
from compiler.resources import Daemon, Macvlan, Netns, Shaping
from compiler.resources.shaping import DEFAULT_CLASS, Netem, netem_limit, render
from compiler.runtime import Runtime
from compiler.schedule import schedule
from dataplane.delayconfig import parse_config
from model import geo
from unit_helpers import ABILENE, topology
from compiler.loader import load_topology

# a - b - c - d in a line, plus e hanging off b undelayed; slice `all` everywhere, `ab` on a-b only
LINE = """\
    name: line
    asn: 64512
    address-space: [198.18.0.0/16]
    nodes: [{name: a}, {name: b}, {name: c}, {name: d}, {name: e}]
    links:
      - {between: [a, b], bandwidth: 1G, delay: 5ms}
      - {between: [b, c], bandwidth: 100M, delay: 10ms, jitter: 1ms, loss: 0.5%}
      - {between: [c, d], bandwidth: 1G, loss: 1%}
      - {between: [b, e], bandwidth: 1G}
    slices:
      - {name: all, bandwidth: 50M}
      - {name: ab, nodes: [a, b], bandwidth: 10M}
"""


def runtime(mechanism: str | None) -> Runtime:
    return dataclasses.replace(Runtime.for_topology("line", python="/py", project_root="/repo"),
                               delay_mechanism=mechanism)


def plan_with(mechanism: str | None, text: str = LINE):
    return compile_plan(topology(text), runtime(mechanism))


def delay_daemons(plan) -> dict[str, Daemon]:
    return {r.name: r for r in plan.resources if isinstance(r, Daemon) and r.name.startswith("delay-")}


def test_delay_line_runs_one_process_per_receiving_node_in_its_namespace():
    daemons = delay_daemons(plan_with("delayline"))
    assert sorted(daemons) == ["delay-a", "delay-b", "delay-c", "delay-d"]  # e receives nothing delayed
    b = daemons["delay-b"]
    assert (b.node, b.ns) == ("b", "vispd.line.b")
    assert b.argv == ("/py", "-m", "dataplane.delayline", "--config", "/var/lib/vispd/line/run/delay-b.json")
    assert b.env == (("PYTHONPATH", "/repo"),)
    assert b.reload_signal == signal.SIGHUP  # a changed configuration is reloaded, not restarted
    assert b.listens == (("unix", "/run/vispd/line/delay-b.sock", 0),)
    assert [leaf for leaf, _ in b.files] == ["delay-b.json"]


def test_delay_line_configuration_queues_what_each_peer_sends_in_the_receiving_sliver():
    config = parse_config(dict(delay_daemons(plan_with("delayline"))["delay-b"].files)["delay-b.json"])
    assert config.owner == "line/b" and config.ready_socket == "/run/vispd/line/delay-b.sock"
    got = {(link.netns, link.device): link for link in config.links}
    # b's delayed peers by name: a (queue 0), c (queue 1); e's link declares nothing
    assert sorted(got) == [("vispd.line.b.ab", "v-a"), ("vispd.line.b.all", "v-a"), ("vispd.line.b.all", "v-c")]
    from_a, from_c = got[("vispd.line.b.all", "v-a")], got[("vispd.line.b.all", "v-c")]
    assert (from_a.queues, from_a.delay_us, from_a.jitter_us, from_a.loss) == ((0,), 5000, 0, 0.0)
    assert (from_c.queues, from_c.delay_us, from_c.jitter_us, from_c.loss) == ((1,), 10000, 1000, 0.005)
    assert got[("vispd.line.b.ab", "v-a")].queues == (0,)
    assert all(link.direction == "in" for link in config.links)


def test_a_loss_only_link_is_queued_with_no_delay():
    config = parse_config(dict(delay_daemons(plan_with("delayline"))["delay-d"].files)["delay-d.json"])
    (link,) = config.links
    assert (link.netns, link.device, link.queues, link.delay_us, link.loss) == ("vispd.line.d.all", "v-c", (0,), 0, 0.01)


def test_queue_numbers_are_unique_in_every_sliver_namespace_on_abilene():
    topo = load_topology(ABILENE)
    plan = compile_plan(topo, dataclasses.replace(Runtime.for_topology("abilene"), delay_mechanism="delayline"))
    seen: dict[tuple[str, int], str] = {}
    for daemon in delay_daemons(plan).values():
        config = parse_config(daemon.files[0][1])  # LineConfig refuses a queue used twice in a namespace
        for link in config.links:
            assert link.netns.startswith(f"vispd.abilene.{daemon.name.removeprefix('delay-')}.")
            key = (link.netns, link.queues[0])
            assert key not in seen, f"{key} in {seen[key]} and {daemon.name}"
            seen[key] = daemon.name
    # every virtual link end of every slice is held once: 2 ends per slice link
    ends = sum(2 * len(topo.slice_links(sl)) for sl in topo.slices)
    assert len(seen) == ends


def test_geographic_delays_reach_the_configuration():
    topo = load_topology(ABILENE)
    plan = compile_plan(topo, dataclasses.replace(Runtime.for_topology("abilene"), delay_mechanism="delayline"))
    where = {n.name: (n.latitude, n.longitude) for n in topo.nodes}
    config = parse_config(dict(delay_daemons(plan)["delay-seattle"].files)["delay-seattle.json"])
    from_denver = next(link for link in config.links if link.device == "v-dnvr" and link.netns.endswith(".plb"))
    assert from_denver.delay_us == geo.link_delay_us(where["denver"], where["seattle"])
    assert 9_000 < from_denver.delay_us < 11_000  # 1,643 km great circle, 2,054 km of route
    link = next(lk for lk in topo.links if lk.key == ("denver", "seattle"))
    assert topo.link_delay(link).delay_us == from_denver.delay_us and topo.link_delay(link).geo


def test_the_delay_process_starts_in_its_node_batch_after_the_slivers_devices():
    plan = plan_with("delayline")
    batches = schedule(diff([], plan.resources))
    for node in ("a", "b", "c", "d"):
        name, steps = next((n, s) for n, s in batches if n == f"node {node}")
        kinds = [s.resource for s in steps]
        daemon_at = next(i for i, r in enumerate(kinds) if isinstance(r, Daemon) and r.name == f"delay-{node}")
        devices_at = [i for i, r in enumerate(kinds) if isinstance(r, (Macvlan, Netns))]
        assert devices_at and max(devices_at) < daemon_at, name


def test_netem_goes_on_every_slice_class_of_both_ends_and_no_process_runs():
    plan = plan_with("netem")
    assert not delay_daemons(plan)
    shaping = {(r.ns, r.ifname): r for r in plan.resources if isinstance(r, Shaping)}
    b_to_c, c_to_b = shaping[("vispd.line.b", "to-c")], shaping[("vispd.line.c", "to-b")]
    want = Netem(delay_us=10000, jitter_us=1000, loss=0.005, limit=netem_limit(100_000_000, 10000, 1000))
    assert want.limit == 1000  # 100 Mbit/s x 11 ms is 92 packets in flight: netem's default suffices
    for device in (b_to_c, c_to_b):
        assert [c.netem for c in device.classes] == [want]  # only slice `all` crosses b-c
        assert device.link_netem == want
    a_to_b = shaping[("vispd.line.a", "to-b")]
    assert {c.label: c.netem.delay_us for c in a_to_b.classes} == {"all": 5000, "ab": 5000}
    assert {c.netem.limit for c in a_to_b.classes} == {1000}  # 1G x 5 ms: 417 packets in flight
    assert netem_limit(10**9, 10000) == 1667  # 2 x the bandwidth-delay product above netem's default
    assert all(c.netem is None for c in shaping[("vispd.line.b", "to-e")].classes)


def test_netem_lines_follow_the_htb_classes_with_a_fifo_under_jitter():
    device = next(r for r in plan_with("netem").resources if isinstance(r, Shaping) and r.ifname == "to-c"
                  and r.ns == "vispd.line.b")
    lines = render(device)
    classid = device.classes[0].classid
    netem_at = lines.index(f"qdisc replace dev to-c parent 1:{classid:x} handle {classid:x}: netem limit 1000 "
                           "delay 10000us 1000us loss 0.5%")
    assert all(not line.startswith("qdisc") for line in lines[1:netem_at])  # HTB first, then the leaves
    assert f"qdisc replace dev to-c parent {classid:x}:1 pfifo limit 1000" in lines
    assert (f"qdisc replace dev to-c parent 1:{DEFAULT_CLASS:x} handle {DEFAULT_CLASS:x}: netem limit 1000 "
            "delay 10000us 1000us loss 0.5%") in lines
    assert "netem 10000us jitter 1000us loss 0.5%" in device.describe()


def test_without_a_mechanism_nothing_is_planned_for_the_declarations():
    undeclared = LINE.replace(", delay: 5ms", "").replace(", delay: 10ms, jitter: 1ms, loss: 0.5%", "")
    undeclared = undeclared.replace(", loss: 1%", "")
    plain, none = plan_with(None, undeclared), plan_with(None)
    assert [r.to_json() for r in none.resources] == [r.to_json() for r in plain.resources]
    # and a topology without declarations is planned alike whatever the mechanism
    assert [r.to_json() for r in plan_with("delayline", undeclared).resources] == \
        [r.to_json() for r in plain.resources]


def test_an_unknown_mechanism_is_a_planning_error():
    with pytest.raises(PlanningError, match="unknown delay mechanism 'tbf'"):
        plan_with("tbf")


def test_a_zero_delay_declares_nothing():
    text = LINE.replace("delay: 5ms", "delay: 0ms")
    assert [lk.key for lk, _ in delay.delayed_links(topology(text))] == [("b", "c"), ("c", "d")]
    assert "delay-a" not in delay_daemons(plan_with("delayline", text))


def test_realisations_name_the_processes_and_queues_of_each_link():
    shown = {r.between: r for r in delay.realisations(topology(LINE), "delayline")}
    assert sorted(shown) == [("a", "b"), ("b", "c"), ("c", "d")]
    ab = shown[("a", "b")]
    assert ab.processes == ("delay-a", "delay-b") and ab.shown_mechanism == "delay line"
    assert sorted((q.sender, q.receiver, q.slice) for q in ab.queues) == [
        ("a", "b", "ab"), ("a", "b", "all"), ("b", "a", "ab"), ("b", "a", "all")]
    assert ab.declared.describe() == "5ms"
    assert shown[("b", "c")].declared.describe() == "10ms, jitter 1ms, loss 0.5%"
    netem = {r.between: r for r in delay.realisations(topology(LINE), "netem")}
    assert netem[("a", "b")].processes == () and netem[("a", "b")].queues == ()
    assert netem[("a", "b")].shown_mechanism == "netem"
    assert delay.realisations(topology(LINE), None)[0].shown_mechanism == "none"
