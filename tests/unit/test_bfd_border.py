"""BFD at the border (pure): bfdd's control protocol (bytes to events), the tracker's idea
of a failure, and what the border's state machine does when a provider's BFD fails (drop
the session, withdraw its paths from the slices, tear it down in ExaBGP; the session may
come back, BFD with it) and how its status shows it."""
from __future__ import annotations

import json
import struct

import pytest

from bgp import api
from bgp.bfd_state import BfdTracker, teardown_command
from bgp.bfdctl import (BMT_NOTIFY, BMT_RESPONSE, HEADER, BfdControlLost, BfdControlUp, BfdState, BfdTimersSeen,
                        Decoder, ProtocolError, event_of, subscribe_message)
from bgp.border import Border
from compiler.daemons.bfd import parse_border_section
from compiler.daemons.border_config import parse_border_config

US = 64512
EAST, WEST = "192.0.2.0", "192.0.2.16"
PLB = "169.254.0.18"
CONFIG = {
    "role": "border", "node": "washington", "local_as": US, "router_id": "192.0.2.1",
    "providers": [
        {"name": "mae-east", "address": EAST, "local_address": "192.0.2.1", "peer_as": 65101, "path_id": "0.0.0.1"},
        {"name": "mae-west", "address": WEST, "local_address": "192.0.2.17", "peer_as": 65102, "path_id": "0.0.0.2"}],
    "slices": [
        {"name": "plb", "slice": "plb", "address": PLB, "local_address": "169.254.0.17", "peer_as": US,
         "add_path": "send", "allowed_prefixes": ["198.18.0.0/22"], "provider_routes": "full",
         "next_hops": {"mae-east": "169.254.0.19", "mae-west": "169.254.0.20"}}],
}
BFD = {"control_socket": "/run/x/bfdd.sock",   # mae-west runs without BFD
       "peers": [{"name": "mae-east", "address": EAST, "local_address": "192.0.2.1",
                  "interval_ms": 100, "multiplier": 3}]}
WITHDRAW_EAST = f"neighbor {PLB} withdraw attributes path-information 0.0.0.1 next-hop 169.254.0.19 nlri 10.1.0.0/24"


def message(kind: int, document: dict, ident: int = 0) -> bytes:
    payload = json.dumps(document).encode()
    return HEADER.pack(len(payload), ident, kind, 1) + payload


def status(peer: str, state: str, diagnostic: int = 0, remote_diagnostic: int = 0) -> dict:
    return {"op": "status", "ipv6": False, "multihop": False, "peer-address": peer, "local-address": "192.0.2.1",
            "id": 1, "remote-id": 1, "state": state, "diagnostics": diagnostic,
            "remote-diagnostics": remote_diagnostic}


# -- bfdd's control protocol ----------------------------------------------------------------
def test_the_subscription_asks_for_state_and_timer_notifications():
    data = subscribe_message(ident=7)
    length, ident, kind, version = HEADER.unpack_from(data)
    assert (length, ident, kind, version) == (8, 7, BMT_NOTIFY, 1)
    assert struct.unpack("=Q", data[HEADER.size:]) == (3,)   # host byte order: bfdd memcpy()s it


def test_the_decoder_splits_a_stream_cut_anywhere_into_messages():
    stream = message(BMT_RESPONSE, {"status": "ok"}, 7) + message(BMT_NOTIFY, status(EAST, "up"))
    for cut in range(1, len(stream)):
        decoder = Decoder()
        got = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert [(k, i) for k, i, _ in got] == [(BMT_RESPONSE, 7), (BMT_NOTIFY, 0)]
        assert got[1][2]["state"] == "up"
    with pytest.raises(ProtocolError):
        Decoder().feed(HEADER.pack(2, 0, BMT_NOTIFY, 9) + b"{}")


def test_notifications_become_events_and_the_rest_is_ignored():
    assert event_of(BMT_NOTIFY, status(EAST, "down", 1), 5.0) == BfdState(EAST, "down", 1, 5.0, 0)
    timers = {"op": "update", "peer-address": EAST, "detect-multiplier": 3, "receive-interval": 100,
              "transmit-interval": 100, "remote-detect-multiplier": 5, "remote-transmit-interval": 200,
              "remote-receive-interval": 10}
    assert event_of(BMT_NOTIFY, timers, 1.0) == BfdTimersSeen(EAST, "update", 3, 100, 100, 5, 200, 10, 1.0)
    assert event_of(BMT_RESPONSE, {"status": "ok"}, 0) is None
    assert event_of(BMT_NOTIFY, {**status(EAST, "up"), "multihop": True}, 0) is None
    assert event_of(BMT_NOTIFY, {"op": "status"}, 0) is None


# -- the tracker --------------------------------------------------------------------------------
def tracker() -> BfdTracker:
    return BfdTracker(parse_border_section(BFD), 0.0)


def test_only_a_session_that_was_up_fails():
    t = tracker()
    assert t.apply(BfdState(EAST, "down"), 1.0) is None                              # never up yet
    assert t.apply(BfdState(EAST, "up"), 2.0) is None
    what, session = t.apply(BfdState(EAST, "down", 1), 3.0)
    assert what == "failed" and session.failures == 1 and session.last_failure == 3.0
    assert t.apply(BfdState(EAST, "init"), 4.0) is None                               # still the same failure
    assert t.apply(BfdState(EAST, "up"), 5.0)[0] == "restored"
    assert t.status(EAST, 6.0)["state"] == "up" and t.status(WEST, 6.0) == {"state": "off"}
    assert not t.follows(WEST) and t.apply(BfdState(WEST, "down"), 7.0) is None


def test_losing_bfdd_makes_sessions_unknown_and_a_provider_switching_bfd_off_is_no_failure():
    t = tracker()
    t.apply(BfdState(EAST, "up"), 1.0)
    t.apply(BfdControlLost("bfdd closed its control socket"), 3.0)
    entry = t.status(EAST, 3.0)
    assert entry["state"] == "unknown" and "closed" in entry["problem"]
    assert t.apply(BfdState(EAST, "down"), 4.0) is None      # a restarted bfdd starts down: no failure
    t.apply(BfdControlUp(), 4.0)
    assert "problem" not in t.status(EAST, 4.0)
    t.apply(BfdState(EAST, "up"), 5.0)
    assert t.apply(BfdState(EAST, "down", 3, remote_diagnostic=7), 6.0) is None   # AdminDown (RFC 5882 3.2)


def test_detection_time_follows_the_negotiated_remote_timers():
    t = tracker()
    assert t.status(EAST, 0)["detect_ms"] == 300
    t.apply(BfdTimersSeen(EAST, "update", 3, 100, 100, 5, 200, 10), 1.0)
    assert t.status(EAST, 1.0)["detect_ms"] == 1000 and t.status(EAST, 1.0)["remote"]["multiplier"] == 5


# -- the border ---------------------------------------------------------------------------------
def running_border() -> Border:
    b = Border(parse_border_config(CONFIG), 100.0, parse_border_section(BFD))
    for peer in (EAST, WEST, PLB):
        b.handle(api.StateChange(peer, "up"), 100.0)
    b.handle(BfdControlUp(100.0), 100.0)
    b.handle(BfdState(EAST, "up"), 100.0)
    update = api.Update(peer=EAST, time=100.0)
    update.announced.append(api.Routes(["10.1.0.0/24"], (65101,), 1))
    b.handle(update, 100.0)
    return b


def test_bfd_down_drops_the_providers_session_at_once_and_withdraws_its_paths():
    b = running_border()
    effects = b.handle(BfdState(EAST, "down", 1), 101.0)
    assert effects.urgent
    assert effects.commands == [WITHDRAW_EAST, teardown_command(EAST)]   # the slices first
    assert teardown_command(EAST) == f"neighbor {EAST} teardown 4"
    entry = b.status(101.0)["neighbors"]["mae-east"]
    assert entry["state"] == "down" and entry["last_down_reason"] == "BFD down (control detection time expired)"
    assert entry["bfd"]["state"] == "down" and entry["bfd"]["failures"] == 1
    assert entry["bfd"]["diagnostic"] == "control detection time expired"
    assert b.status(101.0)["neighbors"]["mae-west"]["bfd"] == {"state": "off"}
    # ExaBGP's own report of the drop changes nothing more
    assert b.handle(api.StateChange(EAST, "down", "notification sent"), 101.1).commands == []


def test_the_session_comes_back_with_its_routes_and_bfd_with_it():
    b = running_border()
    b.handle(BfdState(EAST, "down", 1), 101.0)
    b.handle(api.StateChange(EAST, "down", "notification sent"), 101.0)
    assert b.handle(api.StateChange(EAST, "up"), 102.5).commands == []          # kept, though BFD is down
    update = api.Update(peer=EAST, time=102.6)
    update.announced.append(api.Routes(["10.1.0.0/24"], (65101,), 1))
    assert b.handle(update, 102.6).commands == [
        f"neighbor {PLB} announce attributes path-information 0.0.0.1 next-hop 169.254.0.19 origin igp "
        "local-preference 100 as-path [ 65101 ] nlri 10.1.0.0/24"]
    assert b.status(102.6)["neighbors"]["mae-east"]["bfd"]["state"] == "down"
    assert "BFD up again" in b.handle(BfdState(EAST, "up"), 103.0).logs[0]
    entry = b.status(104.0)["neighbors"]["mae-east"]
    assert entry["state"] == "up" and entry["bfd"]["state"] == "up" and entry["bfd"]["failures"] == 1
    assert b.handle(BfdState(EAST, "down", 1), 105.0).commands[-1] == teardown_command(EAST)   # and again


def test_a_provider_without_bfd_or_bfd_never_up_is_never_dropped_by_it():
    b = Border(parse_border_config(CONFIG), 100.0, parse_border_section(BFD))
    for peer in (EAST, WEST, PLB):
        b.handle(api.StateChange(peer, "up"), 100.0)
    assert b.handle(BfdState(EAST, "down", 1), 101.0).commands == []     # never up: no BFD at the provider?
    assert b.handle(BfdState(WEST, "down", 1), 101.0).commands == []     # not followed
    assert b.status(101.0)["neighbors"]["mae-east"]["state"] == "up"
    plain = Border(parse_border_config(CONFIG), 100.0)
    assert plain.status(100.0)["neighbors"]["mae-east"]["bfd"] == {"state": "off"}
