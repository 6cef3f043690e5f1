"""The code between the plan and the kernel, tested without root: step scheduling, the state
journal, lock and failed links, the egress manager's decisions (events in, route changes out)
and the renderers of `status`, `bgp status` and `routes`."""
from __future__ import annotations

import json
import time

import pytest

from bgp.egress_manager import Manager
from compiler.diff import diff
from compiler.loader import load_topology
from compiler.planner import compile_plan
from compiler.schedule import schedule
from model.errors import VispdError
from unit_helpers import ABILENE
from vispd.bgpstatus import render_bgp_status, render_routes
from vispd.check_bgp import judge_speaker
from vispd.state import TopologyState, rewrite_journal
from vispd.status import render_status


# -- scheduling ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def full_plan():
    """abilene.yaml with its providers (and so the egress manager, the controller's daemon)."""
    return compile_plan(load_topology(ABILENE))


def test_schedule_runs_the_substrate_before_any_node_and_the_controller_last(full_plan):
    batches = schedule(diff([], full_plan.resources))
    names = [name for name, _ in batches]
    assert names[0] == "substrate" and names[-1] == "controller"
    assert all(name.startswith("node ") for name in names[1:-1])
    for name, steps in batches[1:-1]:
        node = name[len("node "):]
        assert {s.resource.node for s in steps} == {node}  # a node's batch holds only its part
    substrate = batches[0][1]
    assert all(s.resource.substrate for s in substrate)
    assert sum(len(steps) for _, steps in batches) == len(full_plan.resources)


def test_schedule_removes_per_node_before_the_substrate(full_plan):
    batches = schedule(diff(full_plan.resources, []))
    names = [name for name, _ in batches]
    assert names[0] == "controller"  # the egress manager needs every node: it goes first
    assert names.index("substrate") == len(names) - 1


# -- state ------------------------------------------------------------------------------------
@pytest.fixture
def topo_state(tmp_path, monkeypatch) -> TopologyState:
    monkeypatch.setenv("VISPD_STATE_DIR", str(tmp_path))
    return TopologyState("t")


def test_the_journal_keeps_every_namespace_and_a_rewrite_keeps_only_what_exists(topo_state):
    topo_state.journal(["vispd.t.a", "vispd.t.b"])
    topo_state.journal(["vispd.t.a.s"])
    assert topo_state.journaled() == {"vispd.t.a", "vispd.t.b", "vispd.t.a.s"}
    rewrite_journal(topo_state, ["vispd.t.a"])
    assert topo_state.journaled() == {"vispd.t.a"}


def test_a_second_command_on_a_locked_topology_is_refused(topo_state):
    with topo_state.locked():
        with pytest.raises(VispdError, match="another vispd command"):
            with TopologyState("t").locked():
                pass
    with topo_state.locked():  # released
        pass


def test_failed_links_are_kept_sorted_and_survive_a_reread(topo_state):
    topo_state.set_failed_links(frozenset({("b", "a"), ("c", "d")}))
    assert TopologyState("t").failed_links() == frozenset({("a", "b"), ("c", "d")})
    topo_state.set_source("/x/t.yaml")
    assert TopologyState("t").source() == "/x/t.yaml"


# -- the egress manager's decisions -------------------------------------------------------------
class RecordingManager(Manager):
    """The manager with its kernel writes recorded instead of made."""

    def __init__(self, config):
        super().__init__(config)
        self.writes: list[tuple[str, object]] = []

    def _install(self, ns, choice, loopback) -> bool:
        self.writes.append((ns, choice))
        return True


def line_config(tmp_path) -> dict:
    """A line a - b - c with egresses at a and c; b is nearer to a (cost 1 vs 2)."""
    status = {node: str(tmp_path / f"{node}.status.json") for node in ("a", "c")}
    slivers = [{"node": "a", "ns": "s.a", "loopback": "10.0.0.1", "toward": {"c": ["10.1.0.1", "v-b", 3]}},
               {"node": "b", "ns": "s.b", "loopback": "10.0.0.2",
                "toward": {"a": ["10.1.0.0", "v-a", 1], "c": ["10.1.0.3", "v-c", 2]}},
               {"node": "c", "ns": "s.c", "loopback": "10.0.0.3", "toward": {"a": ["10.1.0.2", "v-b", 3]}}]
    return {"rt_proto": 79, "status_file": str(tmp_path / "manager.json"),
            "slices": {"s": {"egress": {"a": ["p1"], "c": ["p2"]}, "status_files": status,
                             "slivers": slivers, "routing": "static"}}}


def write_session(path: str, provider: str, state: str, installed: int, since: float) -> None:
    with open(path, "w") as handle:
        json.dump({"neighbors": {provider: {"name": provider, "state": state, "installed": installed,
                                            "since": since}}}, handle)


def test_a_down_event_moves_defaults_at_once_and_the_return_moves_them_back(tmp_path):
    config = line_config(tmp_path)
    files = config["slices"]["s"]["status_files"]
    write_session(files["a"], "p1", "up", 10, 100.0)
    write_session(files["c"], "p2", "up", 10, 100.0)
    manager = RecordingManager(config)
    manager.refresh()
    manager.reconcile()
    assert dict(manager.writes) == {"s.a": None, "s.b": ("10.1.0.0", "v-a", "a"), "s.c": None}
    manager.writes.clear()
    manager.event({"slice": "s", "node": "a", "neighbor": "p1", "state": "down", "time": 200.0})
    manager.refresh()  # the status file still says up: the event is newer and wins
    manager.reconcile()
    assert dict(manager.writes) == {"s.a": ("10.1.0.1", "v-b", "c"), "s.b": ("10.1.0.3", "v-c", "c")}
    assert [ns for ns, _ in manager.writes] == ["s.b", "s.a"]  # nearest the new egress first
    manager.writes.clear()
    write_session(files["a"], "p1", "up", 10, 300.0)  # back, with routes
    manager.event({"slice": "s", "node": "a", "neighbor": "p1", "state": "routes", "time": 300.0})
    manager.refresh()
    manager.reconcile()
    assert dict(manager.writes) == {"s.a": None, "s.b": ("10.1.0.0", "v-a", "a")}


def test_an_egress_without_installed_routes_is_not_used(tmp_path):
    config = line_config(tmp_path)
    files = config["slices"]["s"]["status_files"]
    write_session(files["a"], "p1", "up", 0, 100.0)  # Established, nothing installed yet
    write_session(files["c"], "p2", "up", 5, 100.0)
    manager = RecordingManager(config)
    manager.refresh()
    manager.reconcile()
    assert dict(manager.writes)["s.b"] == ("10.1.0.3", "v-c", "c")
    manager.write_status()
    status = json.load(open(config["status_file"]))
    assert status["slices"]["s"]["live_egress"] == ["c"] and status["slices"]["s"]["defaults"]["b"] == "c"


# -- renderers ---------------------------------------------------------------------------------
def test_bgp_status_renders_every_session_and_flags():
    now = time.time()
    statuses = [{"slice": "plb", "node": "washington", "announced": [{"prefix": "198.18.0.0/22"}],
                 "neighbors": {"border": {"name": "border", "state": "up", "since": now - 5, "received": 7,
                                          "installed": 6, "max_prefix_exceeded": True,
                                          "paths": {"mae-east": {"path_id": "0.0.0.1", "received": 7,
                                                                 "installed": 6}}}},
                 "refused": ["10.0.0.0/8: outside"]},
                {"slice": "plb", "node": "sunnyvale", "neighbors": {}, "error": "no status yet"}]
    lines = render_bgp_status(statuses).splitlines()
    assert lines[2].split()[:7] == ["plb", "washington", "border", "established", "5s", "7", "6"]
    assert "198.18.0.0/22 (max-prefix reached)" in lines[2]
    assert lines[3].split() == ["via", "mae-east", "path", "0.0.0.1", "7", "6"]
    assert lines[4].strip() == "refused announcement 10.0.0.0/8: outside"
    assert lines[5].strip() == "plb sunnyvale: no status yet"


def test_bgp_status_renders_the_borders_sessions_refusals_and_holds():
    now = time.time()
    border = {"role": "border", "slice": "border", "node": "washington", "neighbors": {
        "mae-east": {"name": "mae-east", "kind": "provider", "state": "up", "since": now - 9, "prefixes_in": 100,
                     "prefixes_out": 1, "refused_own_as": 1, "refused_max_prefix": 2},
        "slice plb": {"name": "plb", "kind": "slice", "slice": "plb", "state": "down", "prefixes_in": 1,
                      "prefixes_out": 100, "refused": [{"prefix": "10.0.0.0/8"}], "held": []}},
        "refused": [{"slice": "plb", "prefix": "10.0.0.0/8", "reason": "outside the slice's allocation"}],
        "held": [{"slice": "plb", "prefix": "198.18.1.0/24", "until": now + 30}]}
    lines = render_bgp_status([border]).splitlines()
    assert lines[2].split() == ["washington", "provider", "mae-east", "established", "9s", "100", "1", "3", "-",
                                "-"]                                  # no BFD in its status: "-"
    assert lines[3].split() == ["washington", "slice", "plb", "down", "-", "1", "100", "1", "0", "-"]
    assert lines[4].strip() == "washington: refused from slice plb: 10.0.0.0/8: outside the slice's allocation"
    assert lines[5].strip().startswith("washington: held by the flap guard: 198.18.1.0/24 of slice plb (until")


def test_routes_render_one_line_each_with_their_origin():
    text = render_routes([{"dst": "default", "via": "10.1.0.0", "dev": "v-a", "origin": "egress"},
                          {"dst": "10.0.0.3/32", "via": None, "dev": "lo", "origin": "kernel"}])
    first, second = text.splitlines()
    assert first.split() == ["default", "via", "10.1.0.0", "dev", "v-a", "egress"]
    assert second.split() == ["10.0.0.3/32", "connected", "dev", "lo", "kernel"]


def test_status_lists_daemons_that_do_not_serve_and_the_pending_steps():
    status = {"topology": "t", "source": "/t.yaml", "in_sync": False, "pending": {"create": 2},
              "unowned_namespaces": [], "nodes": [{"present": True}], "links": [], "slivers": [],
              "daemons": [{"name": "bird-p1", "namespace": "vispd.t.+p1", "problem": "runs but does not serve on tcp 0.0.0.0:179"},
                          {"name": "ok", "namespace": "", "problem": ""}]}
    text = render_status(status)
    assert "differs from its plan: 2 to create" in text
    assert "daemons: 1/2 running and serving" in text
    assert "bird-p1" in text and "does not serve on tcp 0.0.0.0:179" in text


def test_a_session_not_established_fails_check_with_its_reason():
    verdict = judge_speaker({"slice": "s", "node": "a", "neighbors": {
        "p1": {"name": "p1", "state": "up"},
        "p2": {"name": "p2", "state": "idle", "last_down_reason": "peer reset: hold timer expired"}}})
    assert not verdict.ok and verdict.down == [{"neighbor": "p2", "state": "idle",
                                                "reason": "peer reset: hold timer expired"}]
    assert "1/2 sessions Established" in verdict.lines()[0]
    assert judge_speaker({"slice": "s", "node": "a", "neighbors": {"p1": {"state": "up"}}}).ok
    assert not judge_speaker({"slice": "s", "node": "a", "neighbors": {}, "error": "no status"}).ok


def test_check_judges_the_borders_sessions_too():
    border = {"role": "border", "slice": "border", "node": "washington", "neighbors": {
        "mae-east": {"name": "mae-east", "kind": "provider", "state": "down",
                     "last_down_reason": "notification received (6,2)"},
        "slice plb": {"name": "plb", "kind": "slice", "state": "up"}}}
    verdict = judge_speaker(border)
    assert not verdict.ok and verdict.down[0]["neighbor"] == "mae-east"
    assert verdict.lines()[0].startswith("bgp border@washington: 1/2 sessions Established")
