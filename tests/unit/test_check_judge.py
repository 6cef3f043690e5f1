"""How `vispd check` judges what its probes found (no root, no probes): reach per routing
mode (`none` not judged, OSPF retried until `--converge`), pairs cut apart by failed links
expected unreachable, and no control datagram expected over a failed link."""
from __future__ import annotations

import pytest

import vispd.check as check
from unit_helpers import PATHS, RING, topology
from vispd.check import Layout, judge_pings, ping_phase, spray_args
from vispd.check_report import Report
from compiler.planner import ControllerState, compile_plan


@pytest.fixture(scope="module")
def ring():
    return topology(RING, "ring.yaml")


def layout_of(ring, failed=()) -> Layout:
    return Layout.of(compile_plan(ring, PATHS, state=ControllerState(failed_links=frozenset(failed))))


def all_answer(layout: Layout, ok=lambda ns, dst: True) -> dict:
    """Results as if every sliver had pinged every loopback of every slice."""
    everything = [s.loopback for s in layout.slivers]
    return {s.ns: {dst: {"ok": ok(s.ns, dst), "error": "" if ok(s.ns, dst) else "timeout"} for dst in everything}
            for s in layout.slivers}


def lines_of(report: Report, prefix: str) -> list[str]:
    return [line for line in report.lines() if line.startswith(prefix)]


def test_every_virtual_link_carries_controls_when_no_link_failed(ring):
    layout = layout_of(ring)
    assert len(layout.expected_controls()) == 4 * 8  # 4 slices, 4 links, both directions


def test_no_control_is_expected_or_sent_over_a_failed_link(ring):
    layout = layout_of(ring, [("a", "b")])
    controls = layout.expected_controls()
    assert len(controls) == 4 * 6
    assert not [c for c in controls if {c[1], layout.owner[c[2]].node} == {"a", "b"}]
    a = next(s for s in layout.slivers if s.slice == "st" and s.node == "a")
    sent_to = spray_args(layout, a, "m")[spray_args(layout, a, "m").index("--controls") + 1].split(",")
    assert [layout.owner[p].node for p in sent_to] == ["d"]


def test_reach_targets_follow_the_slice_graph_without_failed_links(ring):
    layout = layout_of(ring, [("a", "b"), ("b", "c")])  # b is cut off
    lo = {s.node: s.loopback for s in layout.members("st")}
    by_node = {s.node: s for s in layout.members("st")}
    assert layout.reach_targets(by_node["b"]) == []
    assert sorted(layout.reach_targets(by_node["a"])) == sorted([lo["c"], lo["d"]])
    assert all(layout.reach_targets(s) == [] for s in layout.members("nn"))


def test_judge_skips_routing_none_and_reports_cut_off_pairs(ring):
    layout = layout_of(ring, [("a", "b"), ("b", "c")])
    report = Report("ring", failed_links=sorted(layout.failed))
    judge_pings(layout, report, all_answer(layout, ok=lambda ns, dst: False))  # nothing answers at all
    reach = {r.slice: r for r in report.reach}
    assert reach["nn"].lines() == ["reach nn: routing: none: reach not checked"]
    assert reach["nn"].failures == [] and not reach["nn"].checked
    st = reach["st"]
    assert st.pairs == 6 and len(st.failures) == 6 and len(st.cut_off) == 6
    assert st.lines()[0] == "reach st: 0/6 pairs ok; 6 pairs cut off by failed links: unreachable by design"
    assert {(c["from"], c["to"]) for c in st.cut_off} == {
        ("b", "a"), ("b", "c"), ("b", "d"), ("a", "b"), ("c", "b"), ("d", "b")}
    assert "links down: a-b, b-c (their virtual links are not expected to carry anything)" in report.lines()


def test_cut_off_pairs_are_not_failures(ring):
    layout = layout_of(ring, [("a", "b"), ("b", "c")])
    lo_b = {s.loopback for s in layout.slivers if s.node == "b"}
    report = Report("ring", failed_links=sorted(layout.failed))
    # b's loopbacks do not answer (they cannot), and no slice answers another's
    judge_pings(layout, report, all_answer(
        layout, ok=lambda ns, dst: dst not in lo_b and layout.slice_of_ip[dst] == ns.rsplit(".", 1)[1]))
    assert report.ok, report.lines()
    assert lines_of(report, "reach oa") == ["reach oa: 6/6 pairs ok; 6 pairs cut off by failed links: "
                                            "unreachable by design"]
    assert report.to_json()["failed_links"] == [["a", "b"], ["b", "c"]]


def test_a_real_failure_still_fails(ring):
    layout = layout_of(ring)
    c_lo = next(s.loopback for s in layout.slivers if s.slice == "st" and s.node == "c")
    report = Report("ring")
    judge_pings(layout, report, all_answer(
        layout, ok=lambda ns, dst: layout.slice_of_ip[dst] == ns.rsplit(".", 1)[1]
        and not (ns == "vispd.ring.a.st" and dst == c_lo)))
    assert not report.ok
    assert lines_of(report, "reach st") == ["reach st: 11/12 pairs ok"]


class FakeRounds:
    """Stands in for the probes: OSPF pairs fail for the first `ospf_rounds` rounds, static
    pairs to c fail always, everything else answers; records what each round pinged."""

    def __init__(self, layout: Layout, ospf_rounds: int):
        self.layout, self.ospf_rounds, self.rounds = layout, ospf_rounds, []
        self.c_static = next(s.loopback for s in layout.slivers if s.slice == "st" and s.node == "c")

    def __call__(self, layout, targets, timeout, report):
        self.rounds.append(targets)
        n = len(self.rounds)
        out = {}
        for ns, dsts in targets.items():
            mine = ns.rsplit(".", 1)[1]
            out[ns] = {}
            for dst in dsts:
                theirs = layout.slice_of_ip[dst]
                ok = theirs == mine and not (mine in ("oa", "ob") and n <= self.ospf_rounds) \
                    and dst != self.c_static
                out[ns][dst] = {"ok": ok, "error": "" if ok else "Network is unreachable"}
        return out


@pytest.fixture
def no_sleep(monkeypatch):
    monkeypatch.setattr(check.time, "sleep", lambda seconds: None)


def test_ospf_pairs_are_retried_until_they_converge(ring, monkeypatch, no_sleep):
    layout = layout_of(ring)
    fake = FakeRounds(layout, ospf_rounds=3)
    monkeypatch.setattr(check, "_ping_round", fake)
    report = Report("ring")
    ping_phase(layout, report, timeout=1.0, converge=60.0)
    assert len(fake.rounds) == 4
    # retries ping only the OSPF slices' own loopbacks, never the static slice's
    for retry in fake.rounds[1:]:
        assert {ns.rsplit(".", 1)[1] for ns in retry} == {"oa", "ob"}
        assert all(layout.slice_of_ip[d] == ns.rsplit(".", 1)[1] for ns, ds in retry.items() for d in ds)
    reach = {r.slice: r for r in report.reach}
    assert not reach["oa"].failures and reach["oa"].converged_after is not None
    assert "(ospf converged within" in reach["oa"].lines()[0]
    assert len(reach["st"].failures) == 3  # a, b and d to c: static routes are not waited for
    assert reach["nn"].checked is False


def test_ospf_failures_count_once_converge_has_passed(ring, monkeypatch, no_sleep):
    layout = layout_of(ring)
    fake = FakeRounds(layout, ospf_rounds=10 ** 6)
    monkeypatch.setattr(check, "_ping_round", fake)
    report = Report("ring")
    ping_phase(layout, report, timeout=1.0, converge=0.0)
    assert len(fake.rounds) == 1
    reach = {r.slice: r for r in report.reach}
    assert len(reach["oa"].failures) == 12 and reach["oa"].converged_after is None
    assert lines_of(report, "reach oa")[0] == "reach oa: 0/12 pairs ok"


def test_slivers_cut_off_from_every_egress_are_not_expected_out():
    from unit_helpers import ABILENE, abilene_full_text
    from vispd.check import egress_cut_off, judge_egress
    from compiler.loader import load_topology

    topo = load_topology(ABILENE, abilene_full_text())
    plan = compile_plan(topo, state=ControllerState(failed_links=frozenset({("seattle", "sunnyvale"), ("denver", "seattle")})))
    layout = Layout.of(plan)
    cut_off = egress_cut_off(plan, layout)
    assert cut_off == {"vispd.abilene.seattle.plb"}  # plb egresses at sunnyvale and washington
    report = Report("abilene", failed_links=sorted(plan.failed_links))
    judge_egress(plan, layout, report, {}, cut_off)
    assert lines_of(report, "egress plb") == [
        "egress plb: 10/10 slivers reach 203.0.113.10; 1 cut off from every egress by failed links (seattle): "
        "unreachable by design"]
    assert report.ok
    assert egress_cut_off(compile_plan(topo), Layout.of(compile_plan(topo))) == set()
