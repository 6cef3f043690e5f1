"""The speaker's JSON config (compiler.speaker_config), ExaBGP's configuration and command line
(compiler.exabgp) and the API text protocol (bgp.api): pure, no ExaBGP running."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bgp import api
from compiler.daemons import exabgp as exabgp_conf
from compiler.daemons.speaker_config import Announcement, ConfigError, load_config, parse_config

CONFIG = {
    "slice": "plb", "node": "washington", "local_as": 64512, "router_id": "198.18.0.9",
    "allowed_prefixes": ["198.18.0.0/22"],
    "announce": [{"prefix": "198.18.0.0/22", "prepend": 0, "communities": []}],
    "neighbors": [{"name": "mae-east", "address": "192.0.2.0", "local_address": "192.0.2.1",
                   "peer_as": 65101, "local_pref": 100, "max_prefix": 1000},
                  {"name": "mae-west", "address": "192.0.2.2", "local_address": "192.0.2.3",
                   "peer_as": 65102}],
    "rt_proto": 78, "table": 254,
    "status_file": "/var/lib/vispd/T/bgp/plb.washington.status.json",
    "event_socket": "/var/lib/vispd/T/bgp/events.sock", "log_file": "/var/lib/vispd/T/bgp/x.log",
}


def test_parse_fills_defaults():
    config = parse_config(CONFIG)
    west = config.neighbors[1]
    assert west.local_pref == 100 and west.max_prefix is None
    assert config.metric == 20 and config.hold_time is None and config.rt_proto == 78
    assert config.announce == (Announcement("198.18.0.0/22"),)
    assert config.neighbor_by_address()["192.0.2.0"].name == "mae-east"


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.pop("local_as"), "missing key 'local_as'"),
    (lambda c: c.update(router_id="nope"), "'router_id' is not an IPv4 address"),
    (lambda c: c["neighbors"][0].update(peer_as="65101"), "'peer_as' must be an integer"),
    (lambda c: c["neighbors"][0].pop("address"), "neighbors[0]: missing key 'address'"),
    (lambda c: c["neighbors"][1].update(address="192.0.2.0"), "two neighbors share an address"),
    (lambda c: c.update(rt_proto=300), "'rt_proto' must be an integer in [1, 255]"),
    (lambda c: c.update(hold_time=2), "'hold_time' must be 0 or at least 3"),
    (lambda c: c.update(announce=[{"prepend": 1}]), "announce[0]: must be an object with a string 'prefix'"),
])
def test_malformed_config_names_the_key(edit, message):
    raw = json.loads(json.dumps(CONFIG))
    edit(raw)
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert message in str(error.value)


def test_unsafe_announcements_parse_so_that_policy_can_refuse_them():
    raw = {**CONFIG, "announce": [{"prefix": "10.0.0.0/8", "prepend": 9, "communities": ["x"] * 7}]}
    assert parse_config(raw).announce[0].prepend == 9


def test_load_records_the_config_path(tmp_path):
    path = tmp_path / "speaker.json"
    path.write_text(json.dumps(CONFIG))
    assert load_config(str(path)).config_file == str(path)


# -- ExaBGP configuration -------------------------------------------------------------------
def test_render_has_one_neighbor_per_provider_and_no_routes():
    text = exabgp_conf.render(CONFIG, "/var/lib/vispd/T/bgp/plb.washington.json", python="/usr/bin/python3")
    assert ("process vispd-helper {\n    run /usr/bin/python3 -m bgp.helper --config "
            "/var/lib/vispd/T/bgp/plb.washington.json;\n    encoder json;\n}") in text
    assert text.count("neighbor ") == 2
    east = text.split("neighbor 192.0.2.0 {", 1)[1].split("\n}\n", 1)[0]
    for line in ("local-address 192.0.2.1;", "local-as 64512;", "peer-as 65101;", "router-id 198.18.0.9;",
                 "ipv4 unicast;", "processes [ vispd-helper ];", "neighbor-changes;", "parsed;", "update;",
                 "adj-rib-in false;", "route-refresh;"):
        assert line in east
    assert "route " not in text and "static" not in text and "hold-time" not in text
    assert "hold-time 9;" in exabgp_conf.render({**CONFIG, "hold_time": 9}, "/c.json")


def test_render_finds_the_config_path_or_leaves_it_to_the_environment():
    assert "-m bgp.helper;" in exabgp_conf.render(CONFIG)       # VISPD_BGP_CONFIG, set by command()
    assert "--config /x/c.json;" in exabgp_conf.render({**CONFIG, "config_file": "/x/c.json"})
    with pytest.raises(ConfigError, match="cannot appear"):
        exabgp_conf.render(CONFIG, "/path with space/c.json")
    bad = json.loads(json.dumps(CONFIG))
    bad["neighbors"][0]["name"] = 'x"; }'
    with pytest.raises(ConfigError, match="neighbor name"):
        exabgp_conf.render(bad, "/c.json")


def test_rendered_config_is_valid_for_exabgp(tmp_path):
    pytest.importorskip("exabgp")
    conf = tmp_path / "exabgp.conf"
    conf.write_text(exabgp_conf.render(CONFIG, str(tmp_path / "c.json")))
    result = subprocess.run([sys.executable, "-m", "exabgp", "validate", str(conf)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_command_runs_exabgp_in_the_foreground_as_root():
    argv, env = exabgp_conf.command("/s/c.json", "/s/e.conf", "/s/e.pid", "/s/e.log", python="/py",
                                    project_root="/repo")
    assert argv == ["/py", "-m", "bgp.exabgp_launch", "server", "/s/e.conf"]   # ExaBGP with our reader hook
    assert env["exabgp.log.statistics"] == "false"
    assert env["exabgp.daemon.user"] == "root" and env["exabgp.api.cli"] == "false"
    assert env["exabgp.daemon.daemonize"] == "false" and env["exabgp.daemon.pid"] == "/s/e.pid"
    assert env["exabgp.log.destination"] == "/s/e.log" and env["VISPD_BGP_CONFIG"] == "/s/c.json"
    assert env["PYTHONPATH"] == "/repo"
    assert "PATH" not in env  # only what ExaBGP needs on top: the command reads no environment


# -- the API text protocol ------------------------------------------------------------------
HEADER = ('{ "exabgp": "5.0.0", "time": 1795865032.5, "host" : "vm", "pid" : 1, "ppid" : 1, "counter": 3, '
          '"type": "%s", "neighbor": { "address": { "local": "192.0.2.1", "peer": "192.0.2.0" }, '
          '"asn": { "local": 64512, "peer": 65101 }, "router-id": "198.18.0.9" , %s } }')


def test_parse_state_changes_and_acks():
    up = api.parse_line(HEADER % ("state", '"state": "up"'))
    assert up == api.StateChange("192.0.2.0", "up", "", 1795865032.5)
    down = api.parse_line(HEADER % ("state", '"state": "down", "reason": "notification received (6,2)"'))
    assert down.state == "down" and down.reason == "notification received (6,2)"
    assert api.parse_line("done\n") == api.Ack(True) and api.parse_line("error") == api.Ack(False)
    assert isinstance(api.parse_line("shutdown"), api.Shutdown)
    assert api.parse_line("") is None and api.parse_line("{broken") is None


def test_parse_update_with_announce_and_withdraw():
    body = ('"direction": "receive", "message": { "update": { "attribute": { "origin": "igp", "as-path": '
            '{"0": {"element": "as-sequence", "value": [65101, 65000]}, "1": {"element": "as-set", '
            '"value": [1, 2]}} }, "announce": { "ipv4 unicast": { "192.0.2.0": [ { "nlri": "10.1.0.0/24" }, '
            '{ "nlri": "10.2.0.0/24" } ] } }, "withdraw": { "ipv4 unicast": [ { "nlri": "10.3.0.0/24" } ] } } }')
    update = api.parse_line(HEADER % ("update", body))
    assert update.peer == "192.0.2.0"
    assert update.announced == [api.Routes(["10.1.0.0/24", "10.2.0.0/24"], (65101, 65000, 1, 2), 3,
                                           "", "192.0.2.0", ())]
    assert update.withdrawn == ["10.3.0.0/24"] and update.withdrawn_paths == {}


def test_parse_add_path_update_as_exabgp_5_sends_it():
    """Lines as ExaBGP 5.0.15 printed them (recorded from a live add-path session)."""
    announce = ('"direction": "receive", "message": { "update": { "attribute": { "origin": "igp", "as-path": '
                '{"0": {"element": "as-sequence", "value": [65001, 65002]}}, "local-preference": 100, '
                '"community": [ [ 65000, 7 ] ] }, "announce": { "ipv4 unicast": { "169.254.9.3": [ '
                '{ "nlri": "10.0.0.0/24", "path-information": "0.0.0.1" }, '
                '{ "nlri": "10.0.1.0/24", "path-information": "0.0.0.1" } ], "169.254.9.4": [ '
                '{ "nlri": "10.0.0.0/24", "path-information": "0.0.0.2" } ] } } } }')
    update = api.parse_line(HEADER % ("update", announce))
    assert update.announced == [
        api.Routes(["10.0.0.0/24", "10.0.1.0/24"], (65001, 65002), 2, "0.0.0.1", "169.254.9.3", ("65000:7",)),
        api.Routes(["10.0.0.0/24"], (65001, 65002), 2, "0.0.0.2", "169.254.9.4", ("65000:7",))]
    withdraw = ('"direction": "receive", "message": { "update": { "withdraw": { "ipv4 unicast": [ '
                '{ "nlri": "10.0.1.0/24", "path-information": "0.0.0.1" } ] } } }')
    update = api.parse_line(HEADER % ("update", withdraw))
    assert update.withdrawn == [] and update.withdrawn_paths == {"0.0.0.1": ["10.0.1.0/24"]}


def test_border_commands_name_the_neighbor_path_and_next_hop():
    assert api.path_command_text(api.PathRoutes("169.254.9.2", "0.0.0.1", "169.254.9.3", 100, (65001, 65002),
                                                ["10.0.0.0/24", "10.0.1.0/24"])) == (
        "neighbor 169.254.9.2 announce attributes path-information 0.0.0.1 next-hop 169.254.9.3 origin igp "
        "local-preference 100 as-path [ 65001 65002 ] nlri 10.0.0.0/24 10.0.1.0/24")
    assert api.path_command_text(api.PathRoutes("169.254.9.2", "0.0.0.1", "169.254.9.3", None, None,
                                                ["10.0.1.0/24"])) == (
        "neighbor 169.254.9.2 withdraw attributes path-information 0.0.0.1 next-hop 169.254.9.3 nlri 10.0.1.0/24")
    assert api.export_command("192.0.2.0", "198.18.0.0/22", (64512, 64512), ("64512:1",)) == (
        "neighbor 192.0.2.0 announce route 198.18.0.0/22 next-hop self origin igp as-path [ 64512 64512 ] "
        "community [ 64512:1 ]")
    assert api.unexport_command("192.0.2.0", "198.18.0.0/22") == \
        "neighbor 192.0.2.0 withdraw route 198.18.0.0/22 next-hop self"
    assert api.announce_command(Announcement("198.18.0.0/22", 2), 64512, ibgp=True) == \
        "announce route 198.18.0.0/22 next-hop self origin igp as-path [ 64512 64512 ]"
    assert api.announce_command(Announcement("198.18.0.0/22"), 64512, ibgp=True) == \
        "announce route 198.18.0.0/22 next-hop self origin igp"


def test_parse_ignores_eor_and_other_families():
    eor = '"direction": "receive", "message": { "eor": { "afi" : "ipv4", "safi" : "unicast" } }'
    assert api.parse_line(HEADER % ("update", eor)) is None
    v6 = ('"direction": "receive", "message": { "update": { "announce": { "ipv6 unicast": '
          '{ "::1": [ { "nlri": "2001:db8::/32" } ] } } } }')
    update = api.parse_line(HEADER % ("update", v6))
    assert update.announced == [] and update.withdrawn == []


def test_announce_command_prepends_our_as():
    assert api.announce_command(Announcement("198.18.0.0/22"), 64512) == \
        "announce route 198.18.0.0/22 next-hop self origin igp as-path [ 64512 ]"
    assert api.announce_command(Announcement("198.18.1.0/24", 2, ("64512:1", "65101:666")), 64512) == \
        ("announce route 198.18.1.0/24 next-hop self origin igp as-path [ 64512 64512 64512 ] "
         "community [ 64512:1 65101:666 ]")
