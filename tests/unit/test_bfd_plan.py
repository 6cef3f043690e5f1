"""BFD planning and rendering (pure): the per-provider knob, one bfdd per egress node with a
peer per provider, the border configuration's `bfd` section, and the lab providers' side
(BIRD's `bfd { }` in the session, FRR's bfdd profile)."""
from __future__ import annotations

import json
import shutil
import subprocess
from types import SimpleNamespace

import pytest

from compiler.bfd import DEFAULT_TIMERS, bfd_peers, provider_bfd, with_bfd
from compiler.daemons.bfd import (BfdPeer, BfdTimers, ConfigError, parse_border_section, render_border_bfdd,
                                  render_provider_bfdd)
from compiler.loader import load_topology
from compiler.planner import compile_plan
from compiler.resources import Daemon
from unit_helpers import ABILENE, abilene_full_text


@pytest.fixture(scope="module")
def daemons():
    plan = compile_plan(load_topology(ABILENE))
    return {r.name: r for r in plan.resources if isinstance(r, Daemon)}


def test_bfd_is_on_by_default_and_can_be_switched_off_or_tuned_per_provider():
    assert provider_bfd(SimpleNamespace(name="p")) == BfdTimers(100, 3) == DEFAULT_TIMERS
    assert provider_bfd(SimpleNamespace(name="p", bfd=None)) == DEFAULT_TIMERS
    assert provider_bfd(SimpleNamespace(name="p", bfd=False)) is None
    tuned = SimpleNamespace(interval=50_000, multiplier=5)         # microseconds, as linkprops parses
    assert provider_bfd(SimpleNamespace(name="p", bfd=tuned)) == BfdTimers(50, 5)
    assert provider_bfd(SimpleNamespace(name="p", bfd={"interval": 300_000})) == BfdTimers(300, 3)
    with pytest.raises(ValueError, match="whole milliseconds"):
        provider_bfd(SimpleNamespace(name="p", bfd={"interval": 50_500}))
    with pytest.raises(ValueError, match="multiplier"):
        BfdTimers(100, 1)
    with pytest.raises(ValueError, match="interval"):
        BfdTimers(5, 3)
    assert BfdTimers(100, 3).detection_ms == 300


def test_each_egress_node_gets_a_bfdd_in_its_namespace_with_a_peer_per_provider(daemons):
    bfdd = daemons["bfdd-washington"]
    assert bfdd.ns == "vispd.abilene.washington"
    argv = list(bfdd.argv)
    assert argv[1:3] == ["-m", "dataplane.frr"] and argv[argv.index("--daemons") + 1] == "bfdd"
    control = argv[argv.index("--bfdctl") + 1]
    assert control.startswith(argv[argv.index("--vty-dir") + 1] + "/")     # where bfdd (user frr) may write
    assert ("unix", control, 0) in bfdd.listens and ("udp", "0.0.0.0", 3784) in bfdd.listens
    conf = dict(bfdd.files)["bfdd-washington.bfdd.conf"]
    assert " peer 192.0.2.0 local-address 192.0.2.1\n" in conf
    assert "  transmit-interval 100\n" in conf and "  detect-multiplier 3\n" in conf
    assert "interface" not in conf                                        # no zebra at the border


def test_the_border_configuration_names_its_bfd_peers_and_bfdds_socket(daemons):
    border = daemons["border-washington"]
    config = json.loads(dict(border.files)["border-washington.json"])
    section = parse_border_section(config["bfd"])
    bfdd = daemons["bfdd-washington"]
    assert section.control_socket == bfdd.argv[list(bfdd.argv).index("--bfdctl") + 1]
    (peer,) = section.peers
    (provider,) = config["providers"]
    assert (peer.name, peer.address, peer.local_address) == ("mae-east", provider["address"],
                                                             provider["local_address"])
    assert peer.timers == DEFAULT_TIMERS and section.peer("192.0.2.0") == peer and section.peer("10.0.0.1") is None
    assert "bfd" not in dict(border.files)["border-washington.conf"]      # ExaBGP's own config is unchanged


def test_a_node_whose_providers_all_run_without_bfd_gets_no_bfdd():
    border = Daemon(node="a", ns="n", name="border-a", files=(("border-a.json", "{}"),))
    ctx = SimpleNamespace(topo=SimpleNamespace(provider=lambda name: SimpleNamespace(name=name, bfd=False)))
    ends = [SimpleNamespace(name="p1", peer="192.0.2.0", local_cidr="192.0.2.1/31")]
    assert bfd_peers(ctx, ends) == []
    assert with_bfd(ctx, "a", ends, border) == (border,)


def test_the_border_bfd_section_is_checked():
    assert parse_border_section(None) is None
    with pytest.raises(ConfigError, match="control_socket"):
        parse_border_section({"peers": []})
    peer = {"name": "p", "address": "192.0.2.0", "local_address": "192.0.2.1", "interval_ms": 100, "multiplier": 3}
    with pytest.raises(ConfigError, match="share an address"):
        parse_border_section({"control_socket": "/s", "peers": [peer, {**peer, "name": "q"}]})
    with pytest.raises(ConfigError, match="multiplier"):
        parse_border_section({"control_socket": "/s", "peers": [{**peer, "multiplier": 0}]})
    with pytest.raises(ConfigError, match="address"):
        parse_border_section({"control_socket": "/s", "peers": [{**peer, "address": "nowhere"}]})


def test_lab_bird_providers_run_bfd_on_the_vispd_session_with_the_borders_timers(daemons):
    conf = dict(daemons["bird-mae-east"].files)["bird-mae-east.conf"]
    assert "protocol bfd {}" in conf
    session = conf[conf.index("protocol bgp vispd"):conf.index("protocol bgp internet")]
    assert "bfd { interval 100 ms; multiplier 3; };" in session and "error wait time 1, 10;" in session
    internet = conf[conf.index("protocol bgp internet"):]
    assert "bfd" not in internet
    if shutil.which("bird"):                                              # BIRD itself accepts it
        check = subprocess.run(["bird", "-p", "-c", "/dev/stdin"], input=conf, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


def test_lab_frr_providers_run_bfdd_with_a_profile_their_session_names():
    text = abilene_full_text().replace("max-prefix: 100000}", "max-prefix: 100000, lab-daemon: frr}", 1)
    plan = compile_plan(load_topology(ABILENE, text))
    frr = next(r for r in plan.resources if isinstance(r, Daemon) and r.name == "frr-mae-east")
    argv = list(frr.argv)
    assert argv[argv.index("--daemons") + 1] == "zebra,bgpd,bfdd"
    files = dict(frr.files)
    assert " neighbor 192.0.2.1 bfd profile vispd\n" in files["frr-mae-east.bgpd.conf"]
    bfdd = files["frr-mae-east.bfdd.conf"]
    assert " profile vispd\n" in bfdd and "  receive-interval 100\n" in bfdd


def test_bfdd_configurations_render_each_peer_and_profile():
    peers = [BfdPeer("p1", "192.0.2.0", "192.0.2.1", BfdTimers(100, 3)),
             BfdPeer("p2", "192.0.2.16", "192.0.2.17", BfdTimers(50, 5))]
    conf = render_border_bfdd("a", peers)
    assert conf.count(" peer ") == 2 and conf.count(" exit\n") == 2 and conf.endswith("exit\n")
    second = conf[conf.index("peer 192.0.2.16"):]
    assert "transmit-interval 50" in second and "detect-multiplier 5" in second
    assert "detect-multiplier 7" in render_provider_bfdd("p", BfdTimers(20, 7))
