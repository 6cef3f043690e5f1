"""The border router where slices cannot reach it, end to end on a deployed Abilene: a slice
that sends from another slice's addresses is dropped at the border (BCP 38), a slice that
runs its own BGP speaker cannot get a prefix outside its allocation (or a transit route)
past the border to a provider, and a slice cannot use the border to reach the provider's
link or anything else than through a provider's next hop."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import vispd, wait_for

pytestmark = pytest.mark.root

INTERNET_HOST = "203.0.113.10"
PROBE_BYTES = 1200
RESEARCH_ADDRESS = "198.18.8.77"  # inside research's prefix: not plb's to send from


def name_of(path: str) -> str:
    return os.path.basename(path)[: -len(".yaml")]


def probes_arrived(name: str) -> int:
    """Echo requests of a probe's size that mae-east's router has received on its access link
    to washington (an nftables counter the test adds in that namespace: the link's byte count
    also carries BGP keepalives, BFD and ARP, whose bytes a short probe window can reach)."""
    ns = f"vispd.{name}.+mae-east"
    listed = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "ip", "testprobes"],
                            capture_output=True, text=True)
    if listed.returncode != 0:
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], check=True, text=True, input=f"""
table ip testprobes {{
  chain arriving {{
    type filter hook prerouting priority -300;
    iifname "to-wash" icmp type echo-request meta length >= {PROBE_BYTES} counter
  }}
}}""")
        return 0
    for entry in json.loads(listed.stdout)["nftables"]:
        for expr in entry.get("rule", {}).get("expr", []):
            if "counter" in expr:
                return expr["counter"]["packets"]
    raise AssertionError(f"the probe counter is missing from {ns}: {listed.stdout}")


def sliver_ping(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", f"vispd.{name}.washington.plb", "ping", "-c", "3", "-i", "0.2",
                           "-W", "1", "-s", str(PROBE_BYTES), *args], capture_output=True, text=True)


def border_status(name: str) -> dict:
    statuses = json.loads(vispd("bgp", "status", name, "--json").stdout)
    return next(s for s in statuses if s.get("role") == "border" and s["node"] == "washington")


def birdc(name: str, *command: str) -> str:
    return subprocess.run(["birdc", "-s", f"/run/vispd/{name}/bird-mae-east.ctl", *command],
                          capture_output=True, text=True, timeout=10).stdout


@pytest.fixture
def abilene(deployed):
    name = name_of(deployed(prefix="tb"))
    assert wait_for(lambda: border_status(name)["neighbors"]["slice plb"]["state"] == "up"
                    and "198.18.0.0/22" in birdc(name, "show", "route"), timeout=30), vispd("bgp", "status", name).stdout
    assert wait_for(lambda: sliver_ping(name, INTERNET_HOST).returncode == 0, timeout=15)
    return name


def test_packets_from_another_slices_address_are_dropped_at_the_border(abilene):
    name = abilene
    sliver = f"vispd.{name}.washington.plb"
    subprocess.run(["ip", "-n", sliver, "addr", "add", f"{RESEARCH_ADDRESS}/32", "dev", "lo"], check=True)
    before = probes_arrived(name)
    spoofed = sliver_ping(name, "-I", RESEARCH_ADDRESS, INTERNET_HOST)
    during = probes_arrived(name)
    legitimate = sliver_ping(name, INTERNET_HOST)
    after = probes_arrived(name)
    assert "0 received" in spoofed.stdout
    assert during == before                                 # not one probe reached the provider
    assert "3 received" in legitimate.stdout and after - during == 3


def test_the_border_forwards_a_slices_packets_only_by_a_providers_next_hop(abilene):
    name = abilene
    sliver = f"vispd.{name}.washington.plb"
    config = json.loads(vispd("bgp", "status", name, "--json").stdout)
    speaker = next(s for s in config if s.get("role") != "border" and s["node"] == "washington")
    border_ip = speaker["neighbors"]["border"]["address"]
    # a slice that points a route at the border itself gets nothing forwarded (the provider's
    # router sits on the node's access link, one hop behind the border)
    subprocess.run(["ip", "-n", sliver, "route", "add", "192.0.2.0/32", "via", border_ip], check=True)
    before = probes_arrived(name)
    assert "0 received" in sliver_ping(name, "192.0.2.0").stdout
    assert probes_arrived(name) == before
    # while its BGP session to that same address keeps working
    assert border_status(name)["neighbors"]["slice plb"]["state"] == "up"


def test_a_slice_running_its_own_speaker_cannot_pass_foreign_prefixes_to_a_provider(abilene, state_dir, tmp_path):
    name = abilene
    run = state_dir / name / "run"
    config = json.loads((run / "exabgp-plb-washington.json").read_text())
    border, local = config["neighbors"][0]["address"], config["neighbors"][0]["local_address"]
    os.kill(int((run / "exabgp-plb-washington.pid").read_text().split()[0]), signal.SIGTERM)
    hostile = tmp_path / "hostile.conf"
    hostile.write_text(f"""\
neighbor {border} {{
  router-id 198.18.0.9; local-address {local}; local-as 64512; peer-as 64512; hold-time 9;
  family {{ ipv4 unicast; }}
  static {{
    route 198.18.0.0/22 next-hop self;
    route 10.99.0.0/24 next-hop self;
    route 198.18.8.0/24 next-hop self;
    route 198.18.1.0/25 next-hop self;
    route 198.18.2.0/24 next-hop self as-path [ 65999 ];
  }}
}}
""")
    env = {**os.environ, "exabgp.daemon.user": "root", "exabgp.daemon.daemonize": "false",
           "exabgp.api.cli": "false", "exabgp.tcp.bind": local, "exabgp.log.destination": str(tmp_path / "log")}
    speaker = subprocess.Popen(["ip", "netns", "exec", f"vispd.{name}.washington.plb", sys.executable, "-m", "exabgp",
                                "server", str(hostile)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        refused = lambda: {r["prefix"]: r["reason"] for r in border_status(name)["refused"]}  # noqa: E731
        assert wait_for(lambda: len(refused()) == 4, timeout=30), border_status(name)
        reasons = refused()
        assert "outside the slice's allocation" in reasons["10.99.0.0/24"]
        assert "outside the slice's allocation" in reasons["198.18.8.0/24"]      # research's space
        assert "longer than /24" in reasons["198.18.1.0/25"]
        assert "does not transit" in reasons["198.18.2.0/24"]
        assert "refused from slice plb: 10.99.0.0/24" in vispd("bgp", "status", name).stdout
        table = birdc(name, "show", "route")
        assert "198.18.0.0/22" in table                                          # its own still passes
        for prefix in reasons:
            assert prefix not in table
    finally:
        speaker.terminate()
        speaker.wait(timeout=10)


def test_a_prefix_only_one_provider_announces_is_reached_from_every_sliver(deployed):
    """mae-west alone originates 20 prefixes (lab-routes): slivers nearer washington (whose
    provider lacks them) are steered toward sunnyvale for them, and their packets reach
    mae-west; what both providers offer alike stays with the nearest egress."""
    def west_only_routes(text: str) -> str:
        return text.replace("peering: 192.0.2.16/28, max-prefix: 100000}",
                            "peering: 192.0.2.16/28, max-prefix: 100000, lab-routes: 20}")
    name = name_of(deployed(prefix="tb", edit=west_only_routes))

    def west_rx() -> int:
        out = subprocess.run(["ip", "-n", f"vispd.{name}.+mae-west", "-j", "-s", "link", "show", "to-snva"],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)[0]["stats64"]["rx"]["bytes"]

    def steered(node: str) -> bool:
        routes = json.loads(vispd("routes", name, "plb", node, "--json").stdout)
        return any(r["dst"] == "10.0.0.0/24" for r in routes)

    assert wait_for(lambda: steered("new-york"), timeout=40), vispd("routes", name, "plb", "new-york").stdout
    status = json.loads((vispd("status", name, "--json")).stdout)
    nodes = sorted({s["node"] for s in status["slivers"] if s["slice"] == "plb"})
    for node in nodes:
        before = west_rx()
        subprocess.run(["ip", "netns", "exec", f"vispd.{name}.{node}.plb", "ping", "-c", "3", "-i", "0.2", "-W", "1",
                        "-s", str(PROBE_BYTES), "10.0.0.1"], capture_output=True)
        assert west_rx() - before >= 3 * PROBE_BYTES, node   # mae-west got them (and blackholed them)
    # the Internet host, offered by both providers alike, is left to each sliver's nearest egress
    # (the manager steers by what the egress slivers' FIBs hold: while a table is still
    # arriving at one of them, a prefix may be steered for a few seconds)
    def internet_steered() -> list:
        routes = json.loads(vispd("routes", name, "plb", "new-york", "--json").stdout)
        return [r for r in routes if r["dst"] == "203.0.113.0/24"]
    assert wait_for(lambda: not internet_steered(), timeout=10), internet_steered()


def test_a_slices_respawned_helper_gets_the_borders_routes_again(abilene):
    """The border encodes its routes to the slices itself (they are not in its ExaBGP's
    adj-RIB-out): when a slice's helper dies, ExaBGP starts a new one, which flushes the
    sliver's FIB and sends a ROUTE-REFRESH; the border must answer it with its whole table."""
    name = abilene
    ns = f"vispd.{name}.washington.plb"

    def installed() -> set:
        out = subprocess.run(["ip", "-n", ns, "route", "show", "proto", "78"], capture_output=True, text=True).stdout
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    def speaker() -> dict:
        statuses = json.loads(vispd("bgp", "status", name, "--json").stdout)
        return next(s for s in statuses if s.get("role") != "border" and s["node"] == "washington"
                    and s.get("slice") == "plb")

    before = wait_for(installed, timeout=15)
    assert INTERNET_HOST.rsplit(".", 1)[0] + ".0/24" in before, before
    old = speaker()["pid"]
    os.kill(old, signal.SIGKILL)
    assert wait_for(lambda: speaker().get("pid") not in (None, old), timeout=15), "no new helper"
    assert wait_for(lambda: installed() == before, timeout=15), (before, installed())
    assert sliver_ping(name, INTERNET_HOST).returncode == 0
