"""The border router's state machine (bgp.border), driven with parsed events, no I/O: providers'
routes passed to the slices on per-provider paths (full tables or defaults), slices'
announcements screened (own allocation, length, prepends, communities, transit), the flap
guard, exports to providers, and what session changes do."""
from __future__ import annotations

from bgp import api
from bgp.border import Border
from compiler.daemons.border_config import parse_border_config

US = 64512
EAST, ISP = "192.0.2.0", "192.0.2.16"                 # the providers
PLB, RES = "169.254.0.18", "169.254.0.34"              # the slices' speakers
CONFIG = {
    "role": "border", "node": "washington", "local_as": US, "router_id": "192.0.2.1",
    "flap_changes": 3, "flap_window": 60,
    "providers": [
        {"name": "mae-east", "address": EAST, "local_address": "192.0.2.1", "peer_as": 65101, "path_id": "0.0.0.1"},
        {"name": "isp", "address": ISP, "local_address": "192.0.2.17", "peer_as": 65300, "path_id": "0.0.0.3",
         "local_pref": 300, "max_prefix": 2}],
    "slices": [
        {"name": "plb", "slice": "plb", "address": PLB, "local_address": "169.254.0.17", "peer_as": US,
         "add_path": "send", "allowed_prefixes": ["198.18.0.0/22"], "provider_routes": "full",
         "next_hops": {"mae-east": "169.254.0.19", "isp": "169.254.0.20"}},
        {"name": "research", "slice": "research", "address": RES, "local_address": "169.254.0.33", "peer_as": US,
         "add_path": "send", "allowed_prefixes": ["198.18.4.0/22"], "provider_routes": "default",
         "next_hops": {"mae-east": "169.254.0.35"}}],
}


def border() -> Border:
    return Border(parse_border_config(CONFIG), now=100.0)


def routes(peer, prefixes=(), path=(65101,), withdrawn=(), communities=()):
    event = api.Update(peer=peer, time=1.0)
    if prefixes:
        event.announced.append(api.Routes(list(prefixes), tuple(path), len(path), "", "", tuple(communities)))
    event.withdrawn.extend(withdrawn)
    return event


def up(b: Border, *peers) -> list[str]:
    commands = []
    for peer in peers:
        commands += b.handle(api.StateChange(peer, "up"), 100.0).commands
    return commands


def test_provider_routes_reach_full_table_slices_on_the_providers_path_and_next_hop():
    b = border()
    up(b, EAST, PLB, RES)
    effects = b.handle(routes(EAST, ["10.1.0.0/24", "10.2.0.0/24"]), 101.0)
    assert effects.commands == [
        f"neighbor {PLB} announce attributes path-information 0.0.0.1 next-hop 169.254.0.19 origin igp "
        "local-preference 100 as-path [ 65101 ] nlri 10.1.0.0/24 10.2.0.0/24",
        # research takes defaults: the provider's first routes make its default appear
        f"neighbor {RES} announce attributes path-information 0.0.0.1 next-hop 169.254.0.35 origin igp "
        "local-preference 100 as-path [ 65101 ] nlri 0.0.0.0/0"]
    effects = b.handle(routes(EAST, withdrawn=["10.1.0.0/24", "10.9.0.0/24"]), 102.0)
    assert effects.commands == [f"neighbor {PLB} withdraw attributes path-information 0.0.0.1 "
                                "next-hop 169.254.0.19 nlri 10.1.0.0/24"]   # 10.9 was never sent
    effects = b.handle(routes(EAST, withdrawn=["10.2.0.0/24"]), 102.0)
    assert effects.commands[-1] == (f"neighbor {RES} withdraw attributes path-information 0.0.0.1 "
                                    "next-hop 169.254.0.35 nlri 0.0.0.0/0")  # no routes left: no default


def test_a_slice_session_coming_up_gets_every_providers_table_grouped_by_path():
    b = border()
    up(b, EAST, ISP)
    b.handle(routes(EAST, ["10.1.0.0/24"], path=(65101, 1)), 100.0)
    b.handle(routes(EAST, ["10.2.0.0/24", "10.3.0.0/24"], path=(65101,)), 100.0)
    b.handle(routes(ISP, ["10.1.0.0/24"], path=(65300,)), 100.0)
    commands = up(b, PLB)
    assert sorted(commands) == sorted([
        f"neighbor {PLB} announce attributes path-information 0.0.0.1 next-hop 169.254.0.19 origin igp "
        "local-preference 100 as-path [ 65101 1 ] nlri 10.1.0.0/24",
        f"neighbor {PLB} announce attributes path-information 0.0.0.1 next-hop 169.254.0.19 origin igp "
        "local-preference 100 as-path [ 65101 ] nlri 10.2.0.0/24 10.3.0.0/24",
        f"neighbor {PLB} announce attributes path-information 0.0.0.3 next-hop 169.254.0.20 origin igp "
        "local-preference 300 as-path [ 65300 ] nlri 10.1.0.0/24"])
    assert b.status(101.0)["neighbors"]["slice plb"]["paths"] == {"isp": 1, "mae-east": 3}


def test_provider_import_refuses_our_own_as_and_caps_max_prefix():
    b = border()
    up(b, ISP, PLB)
    effects = b.handle(routes(ISP, ["198.18.0.0/22"], path=(65300, US)), 100.0)
    assert effects.commands == []                                   # our own prefix, looped back
    effects = b.handle(routes(ISP, ["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"], path=(65300,)), 100.0)
    assert effects.commands[0].endswith("nlri 10.1.0.0/24 10.2.0.0/24")   # max-prefix 2
    assert "exceeded max-prefix 2" in effects.logs[0]
    isp = b.status(100.0)["neighbors"]["isp"]
    assert (isp["refused_own_as"], isp["refused_max_prefix"], isp["prefixes_in"]) == (1, 1, 2)


def test_slice_announcements_are_screened_and_exported_with_our_as_added():
    b = border()
    up(b, EAST, ISP, PLB)
    effects = b.handle(routes(PLB, ["198.18.0.0/22"], path=(US, US), communities=("64512:7",)), 100.0)
    assert effects.commands == [
        f"neighbor {EAST} announce route 198.18.0.0/22 next-hop self origin igp as-path [ {US} {US} {US} ] "
        "community [ 64512:7 ]",
        f"neighbor {ISP} announce route 198.18.0.0/22 next-hop self origin igp as-path [ {US} {US} {US} ] "
        "community [ 64512:7 ]"]
    refused = {
        "198.18.4.0/24": "outside the slice's allocation",      # research's space
        "10.0.0.0/8": "outside the slice's allocation",
        "198.18.1.128/25": "longer than /24",
    }
    for prefix, reason in refused.items():
        effects = b.handle(routes(PLB, [prefix], path=()), 101.0)
        assert effects.commands == [] and reason in effects.logs[0]
    effects = b.handle(routes(PLB, ["198.18.2.0/24"], path=(US,) * 6), 101.0)
    assert effects.commands == [] and "prepend 6 exceeds" in effects.logs[0]
    effects = b.handle(routes(PLB, ["198.18.3.0/24"], path=(65999,)), 101.0)
    assert effects.commands == [] and "does not transit" in effects.logs[0]
    status = b.status(102.0)
    assert {r["prefix"] for r in status["refused"]} == set(refused) | {"198.18.2.0/24", "198.18.3.0/24"}
    assert status["neighbors"]["mae-east"]["exported"] == ["198.18.0.0/22"]
    # the slice withdraws: so does the border, from both providers
    effects = b.handle(routes(PLB, withdrawn=["198.18.0.0/22"]), 103.0)
    assert effects.commands == [f"neighbor {EAST} withdraw route 198.18.0.0/22 next-hop self",
                                f"neighbor {ISP} withdraw route 198.18.0.0/22 next-hop self"]


def test_research_is_announced_only_to_the_providers_it_egresses_through():
    b = border()
    up(b, EAST, ISP, RES)
    effects = b.handle(routes(RES, ["198.18.4.0/22"], path=()), 100.0)
    assert effects.commands == [f"neighbor {EAST} announce route 198.18.4.0/22 next-hop self origin igp "
                                f"as-path [ {US} ]"]


def test_the_flap_guard_holds_a_prefix_that_changes_too_often_and_releases_it_when_quiet():
    b = border()
    up(b, EAST, RES)
    for when, prepend in ((100.0, 0), (101.0, 1), (102.0, 0)):      # three changes: allowed
        assert b.handle(routes(RES, ["198.18.4.0/22"], path=(US,) * prepend), when).commands
    effects = b.handle(routes(RES, ["198.18.4.0/22"], path=(US,)), 103.0)    # the fourth: held
    assert effects.commands == [f"neighbor {EAST} withdraw route 198.18.4.0/22 next-hop self"]
    assert "held by the flap guard" in effects.logs[0]
    assert b.handle(routes(RES, ["198.18.4.0/22"], path=()), 110.0).commands == []   # still held
    assert b.status(111.0)["held"][0]["until"] == 170.0
    assert b.tick(169.0).commands == []
    released = b.tick(170.0)
    assert released.commands == [f"neighbor {EAST} announce route 198.18.4.0/22 next-hop self origin igp "
                                 f"as-path [ {US} ]"]
    assert b.status(171.0)["held"] == []


def test_a_provider_going_down_withdraws_its_paths_and_coming_up_gets_the_exports():
    b = border()
    up(b, EAST, PLB, RES)
    b.handle(routes(EAST, ["10.1.0.0/24"]), 100.0)
    b.handle(routes(PLB, ["198.18.0.0/22"], path=()), 100.0)
    effects = b.handle(api.StateChange(EAST, "down", "hold timer expired"), 101.0)
    assert sorted(effects.commands) == sorted([
        f"neighbor {PLB} withdraw attributes path-information 0.0.0.1 next-hop 169.254.0.19 nlri 10.1.0.0/24",
        f"neighbor {RES} withdraw attributes path-information 0.0.0.1 next-hop 169.254.0.35 nlri 0.0.0.0/0"])
    assert b.status(101.0)["neighbors"]["mae-east"]["prefixes_out"] == 0
    effects = b.handle(api.StateChange(EAST, "up"), 102.0)
    assert effects.commands == [f"neighbor {EAST} announce route 198.18.0.0/22 next-hop self origin igp "
                                f"as-path [ {US} ]"]


def test_a_slice_going_down_withdraws_its_prefixes_from_the_providers():
    b = border()
    up(b, EAST, PLB)
    b.handle(routes(PLB, ["198.18.0.0/22", "198.18.1.0/24"], path=()), 100.0)
    effects = b.handle(api.StateChange(PLB, "down", "hold timer expired"), 101.0)
    assert sorted(effects.commands) == [f"neighbor {EAST} withdraw route 198.18.0.0/22 next-hop self",
                                        f"neighbor {EAST} withdraw route 198.18.1.0/24 next-hop self"]
    plb = b.status(101.0)["neighbors"]["slice plb"]
    assert plb["state"] == "down" and plb["prefixes_in"] == 0 and plb["flaps"] == 1


def test_exports_wait_for_the_provider_session_and_errors_are_reported():
    b = border()
    up(b, PLB)
    assert b.handle(routes(PLB, ["198.18.0.0/22"], path=()), 100.0).commands == []   # no provider up yet
    commands = up(b, EAST)
    assert commands == [f"neighbor {EAST} announce route 198.18.0.0/22 next-hop self origin igp as-path [ {US} ]"]
    effects = b.handle(api.Ack(False), 101.0)
    assert effects.logs == ["ExaBGP answered error to: announce 198.18.0.0/22 to mae-east"]
    assert b.status(101.0)["command_errors"] == ["announce 198.18.0.0/22 to mae-east"]


def test_a_respawned_border_asks_every_peer_to_resend():
    effects = border().startup(respawned=True)
    assert effects.commands == [api.REFRESH_COMMAND]
    assert border().startup().commands == []


def test_updates_imply_an_established_session_and_stop_downs_everything():
    b = border()
    b.handle(routes(EAST, ["10.1.0.0/24"]), 100.0)                # a respawned helper: no "up" seen
    assert b.status(100.0)["neighbors"]["mae-east"]["state"] == "up"
    effects = b.stop(101.0)
    assert effects.commands == [] and all(n["state"] == "down" for n in b.status(101.0)["neighbors"].values())
