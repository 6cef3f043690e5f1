"""The speaker's state machine (bgp.speaker), driven with parsed events, no I/O: announcements
screened and acked, routes coalesced into FIB operations, session notices, status document."""
from __future__ import annotations

from bgp import api
from compiler.daemons.speaker_config import parse_config
from dataplane.fib import FibError
from bgp.speaker import Speaker, preference_code

EAST, WEST = "192.0.2.0", "192.0.2.2"
CONFIG = {
    "slice": "plb", "node": "washington", "local_as": 64512, "router_id": "198.18.0.9",
    "allowed_prefixes": ["198.18.0.0/22"],
    "announce": [{"prefix": "198.18.0.0/22"}, {"prefix": "10.0.0.0/24"},
                 {"prefix": "198.18.1.0/24", "prepend": 1, "communities": ["64512:7"]}],
    "neighbors": [{"name": "mae-east", "address": EAST, "local_address": "192.0.2.1", "peer_as": 65101,
                   "max_prefix": 3},
                  {"name": "mae-west", "address": WEST, "local_address": "192.0.2.3", "peer_as": 65102,
                   "local_pref": 50}],
}


def speaker() -> Speaker:
    return Speaker(parse_config(CONFIG), now=100.0)


def update(peer, prefixes=(), path=(65101,), withdrawn=(), path_id=""):
    event = api.Update(peer=peer, time=1.0)
    if prefixes:
        event.announced.append(api.Routes(list(prefixes), tuple(path), len(path), path_id))
    if path_id:
        event.withdrawn_paths[path_id] = list(withdrawn)
    else:
        event.withdrawn.extend(withdrawn)
    return event


def metric(local_pref=100, length=1):
    """The FIB metric of a best route: the config's base (20) plus its preference code."""
    return 20 + preference_code(local_pref, length)


E1, W1 = metric(100, 1), metric(50, 1)   # mae-east's and mae-west's one-AS paths


def applied(s: Speaker, errors=()):
    ops = s.take_fib_ops()
    s.fib_applied(ops, list(errors))
    return ops


def test_startup_sends_only_safe_announcements_and_acks_settle_them():
    s = speaker()
    commands, logs = s.startup()
    assert commands == ["announce route 198.18.0.0/22 next-hop self origin igp as-path [ 64512 ]",
                        "announce route 198.18.1.0/24 next-hop self origin igp as-path [ 64512 64512 ] "
                        "community [ 64512:7 ]"]
    assert logs[0].startswith("announcement refused: 10.0.0.0/24: 10.0.0.0/24 is outside")
    status = s.status(101.0)
    assert status["announced"] == [] and len(status["announce_pending"]) == 2
    assert s.handle(api.Ack(True), 101.0).urgent
    effects = s.handle(api.Ack(False), 101.0)
    assert "ExaBGP answered error" in effects.logs[0]
    status = s.status(102.0)
    assert [a["prefix"] for a in status["announced"]] == ["198.18.0.0/22"]
    assert {r["prefix"] for r in status["refused"]} == {"10.0.0.0/24", "198.18.1.0/24"}


def test_session_up_routes_down_with_notices_and_coalesced_fib_ops():
    s = speaker()
    effects = s.handle(api.StateChange(EAST, "up", "", 5.0), 100.5)
    assert effects.urgent and effects.notices == [
        {"slice": "plb", "node": "washington", "neighbor": "mae-east", "address": EAST, "state": "up", "time": 5.0}]
    s.handle(update(EAST, ["10.1.0.0/24", "10.2.0.0/24"]), 101.0)
    s.handle(update(EAST, withdrawn=["10.2.0.0/24"]), 101.0)        # gone before the flush: no op
    assert applied(s) == [("10.1.0.0/24", EAST, E1)]
    assert s.take_fib_ops() == []
    status = s.status(103.0)["neighbors"]["mae-east"]
    assert status["state"] == "up" and status["uptime"] == 2.5 and status["installed"] == 1
    effects = s.handle(api.StateChange(EAST, "down", "notification received (6,2)", 6.0), 104.0)
    assert effects.notices[0]["state"] == "down" and effects.notices[0]["reason"] == "notification received (6,2)"
    assert applied(s) == [("10.1.0.0/24", None, E1)]
    status = s.status(105.0)["neighbors"]["mae-east"]
    assert status["state"] == "down" and status["installed"] == 0 and status["flaps"] == 1
    # a second down (ExaBGP reports connected -> down while retrying) is not a new event
    s.handle(api.StateChange(EAST, "connected"), 106.0)
    assert s.handle(api.StateChange(EAST, "down", "closing connection"), 106.0).notices == []


def test_failover_between_neighbors_replaces_the_gateway():
    s = speaker()
    for peer in (EAST, WEST):
        s.handle(api.StateChange(peer, "up"), 100.0)
    s.handle(update(EAST, ["10.1.0.0/24"]), 100.0)
    s.handle(update(WEST, ["10.1.0.0/24"], path=(65102,)), 100.0)
    assert applied(s) == [("10.1.0.0/24", EAST, E1)]                # west has local_pref 50
    s.handle(api.StateChange(EAST, "down", "hold timer expired"), 101.0)
    # west's route is worse: a new metric, so it is added before east's is deleted
    assert applied(s) == [("10.1.0.0/24", WEST, W1), ("10.1.0.0/24", None, E1)]
    assert s.status(102.0)["neighbors"]["mae-west"]["installed"] == 1


def test_max_prefix_is_logged_once_and_reported():
    s = speaker()
    s.handle(api.StateChange(EAST, "up"), 100.0)
    effects = s.handle(update(EAST, [f"10.{i}.0.0/24" for i in range(5)]), 100.0)
    assert effects.urgent and "exceeded max-prefix 3" in effects.logs[0]
    assert s.handle(update(EAST, ["10.9.0.0/24"]), 100.0).logs == []
    east = s.status(100.0)["neighbors"]["mae-east"]
    assert east["max_prefix_exceeded"] is True and east["accepted"] == 3 and east["received"] == 6
    assert east["state"] == "up"


def test_fib_failures_are_not_counted_as_installed():
    s = speaker()
    s.handle(api.StateChange(EAST, "up"), 100.0)
    s.handle(update(EAST, ["10.1.0.0/24", "10.2.0.0/24"]), 100.0)
    ops = s.take_fib_ops()
    logs = s.fib_applied(ops, [FibError("10.2.0.0/24", "replace", 101, "Network is unreachable")])
    assert logs == ["FIB: replace 10.2.0.0/24: Network is unreachable"]
    status = s.status(100.0)
    assert status["fib"]["installed"] == 1 and status["fib"]["errors"] == 1
    assert status["neighbors"]["mae-east"]["installed"] == 1


def test_stop_reports_sessions_down_and_removes_every_route():
    s = speaker()
    s.handle(api.StateChange(EAST, "up"), 100.0)
    s.handle(update(EAST, ["10.1.0.0/24"]), 100.0)
    applied(s)
    effects = s.stop(101.0)
    assert [n["state"] for n in effects.notices] == ["down"]
    assert applied(s) == [("10.1.0.0/24", None, E1)]
    assert s.status(101.0)["fib"]["installed"] == 0


def test_a_respawned_helper_learns_that_a_session_is_up_from_its_updates():
    s = speaker()                              # ExaBGP respawned us: no "up" will come
    commands, _ = s.startup(respawned=True)
    assert commands[-1] == "announce route-refresh ipv4 unicast"
    s.handle(api.Ack(True), 100.0)
    s.handle(api.Ack(True), 100.0)
    assert s.handle(api.Ack(False), 100.0).logs == []     # the refresh's ack settles nothing
    assert len(s.status(100.0)["announced"]) == 2
    effects = s.handle(update(EAST, ["10.1.0.0/24"]), 100.0)
    assert [n["state"] for n in effects.notices] == ["up"]
    assert applied(s) == [("10.1.0.0/24", EAST, E1)]
    s.handle(api.StateChange(EAST, "down", "hold timer expired"), 101.0)
    assert applied(s) == [("10.1.0.0/24", None, E1)]


def test_resync_takes_the_kernels_word_and_queues_the_difference():
    s = speaker()
    s.handle(update(EAST, ["10.1.0.0/24", "10.2.0.0/24"]), 100.0)
    s.take_fib_ops()                                   # lost: the netlink write failed
    # the kernel holds 10.2 twice (a metric change cut short) and 10.9 the RIB no longer has
    s.resync([("10.2.0.0/24", EAST, E1), ("10.2.0.0/24", WEST, W1), ("10.9.0.0/24", EAST, E1)])
    assert sorted(applied(s)) == [("10.1.0.0/24", EAST, E1), ("10.2.0.0/24", None, W1), ("10.9.0.0/24", None, E1)]
    assert s.installed == {"10.1.0.0/24": (EAST, E1), "10.2.0.0/24": (EAST, E1)}
    assert s.status(100.0)["neighbors"]["mae-east"]["installed"] == 2


def test_updates_from_unknown_peers_are_ignored():
    s = speaker()
    assert s.handle(update("203.0.113.1", ["10.1.0.0/24"]), 100.0).logs == []
    assert s.take_fib_ops() == []


def test_preference_code_orders_like_best_path_selection():
    assert preference_code(200, 9) < preference_code(100, 1) < preference_code(100, 2) < preference_code(50, 1)
    assert preference_code(100, 300) == preference_code(100, 255)          # lengths beyond 255 tie
    assert preference_code(2**32 - 1, 1) == preference_code(0xFFFF, 1) == 1  # the highest local_pref


def test_a_longer_path_from_the_same_neighbor_changes_the_metric():
    s = speaker()
    s.handle(api.StateChange(EAST, "up"), 100.0)
    s.handle(update(EAST, ["10.1.0.0/24"]), 100.0)
    applied(s)
    s.handle(update(EAST, ["10.1.0.0/24"], path=(65101, 7, 8)), 100.0)
    assert applied(s) == [("10.1.0.0/24", EAST, metric(100, 3)), ("10.1.0.0/24", None, E1)]
    assert s.installed["10.1.0.0/24"] == (EAST, metric(100, 3))
    assert s.status(100.0)["fib"]["changes"] == 3


BEHIND_BORDER = {
    "slice": "plb", "node": "washington", "local_as": 64512, "router_id": "198.18.0.9", "ibgp": True,
    "allowed_prefixes": ["198.18.0.0/22"], "announce": [{"prefix": "198.18.0.0/22", "prepend": 2}],
    "neighbors": [{"name": "border", "address": "169.254.0.17", "local_address": "169.254.0.18",
                   "peer_as": 64512, "add_path": "receive"}],
    "paths": [{"name": "mae-east", "path_id": "0.0.0.1", "next_hop": "169.254.0.19", "local_pref": 100},
              {"name": "isp", "path_id": "0.0.0.3", "next_hop": "169.254.0.20", "local_pref": 300}],
}
BORDER, VIA_EAST, VIA_ISP = "169.254.0.17", "169.254.0.19", "169.254.0.20"


def test_behind_a_border_each_provider_path_routes_by_its_own_next_hop():
    s = Speaker(parse_config(BEHIND_BORDER), now=100.0)
    commands, _ = s.startup()
    assert commands == ["announce route 198.18.0.0/22 next-hop self origin igp as-path [ 64512 64512 ]"]
    s.handle(api.StateChange(BORDER, "up"), 100.0)
    s.handle(update(BORDER, ["10.1.0.0/24", "10.2.0.0/24"], path=(65101,), path_id="0.0.0.1"), 100.0)
    s.handle(update(BORDER, ["10.2.0.0/24"], path=(65300, 1, 2), path_id="0.0.0.3"), 100.0)
    assert sorted(applied(s)) == [("10.1.0.0/24", VIA_EAST, metric(100, 1)),
                                  ("10.2.0.0/24", VIA_ISP, metric(300, 3))]   # local_pref beats length
    effects = s.handle(update(BORDER, ["10.9.0.0/24"], path_id="0.0.0.9"), 100.0)
    assert "unknown path id" in effects.logs[0] and s.take_fib_ops() == []
    s.handle(update(BORDER, withdrawn=["10.2.0.0/24"], path_id="0.0.0.3"), 100.0)
    assert applied(s) == [("10.2.0.0/24", VIA_EAST, metric(100, 1)), ("10.2.0.0/24", None, metric(300, 3))]
    border = s.status(100.0)["neighbors"]["border"]
    assert border["installed"] == 2 and border["paths"]["mae-east"]["installed"] == 2
    assert border["paths"]["isp"]["installed"] == 0 and border["unknown_path_routes"] == 1
    s.handle(api.StateChange(BORDER, "down", "hold timer expired"), 101.0)
    assert sorted(applied(s)) == [("10.1.0.0/24", None, metric(100, 1)), ("10.2.0.0/24", None, metric(100, 1))]


def test_ops_taken_ahead_of_the_kernel_are_undone_where_they_failed():
    """The helper's FIB writer thread: ops are recorded when taken (fib_taken); a failure
    reported later puts the failed prefix back as it was (fib_failed), the rest stays."""
    s = speaker()
    s.handle(api.StateChange(EAST, "up"), 100.0)
    s.handle(update(EAST, ["10.1.0.0/24"]), 100.0)
    applied(s)
    s.handle(update(EAST, ["10.2.0.0/24", "10.3.0.0/24"], withdrawn=["10.1.0.0/24"]), 101.0)
    ops = s.take_fib_ops()
    before = s.fib_taken(ops)
    assert set(s.installed) == {"10.2.0.0/24", "10.3.0.0/24"}   # as if the kernel had done it
    assert s.take_fib_ops() == []                               # nothing taken twice
    logs = s.fib_failed(ops, [FibError("10.3.0.0/24", "replace", 101, "Network is unreachable"),
                              FibError("10.1.0.0/24", "delete", 101, "No such process")], before)
    assert set(s.installed) == {"10.1.0.0/24", "10.2.0.0/24"} and len(logs) == 2
    status = s.status(101.0)
    assert status["fib"]["installed"] == 2 and status["fib"]["errors"] == 2
    assert status["neighbors"]["mae-east"]["installed"] == 2


def test_the_fib_change_count_moves_only_once_the_kernel_has_answered():
    """The egress manager steers once the egress speakers' change counts are still: ops
    handed to the FIB writer thread must not count before the kernel has answered for them,
    else the manager reads a FIB still filling and never looks again."""
    s = speaker()
    s.handle(api.StateChange(EAST, "up"), 100.0)
    s.handle(update(EAST, ["10.1.0.0/24", "10.2.0.0/24"]), 100.0)
    ops = s.take_fib_ops()
    s.fib_taken(ops)
    taken = s.status(100.0)["fib"]
    assert taken["in_flight"] == 2 and taken["changes"] == 0
    s.fib_answered(len(ops))
    answered = s.status(100.1)["fib"]
    assert answered["in_flight"] == 0 and answered["changes"] == 2
