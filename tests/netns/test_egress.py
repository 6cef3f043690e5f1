"""BGP egress end to end: the vISP's border routers (real ExaBGP in the egress nodes'
namespaces) holding one session per real BIRD provider, real ExaBGP in the egress slivers
peering with the borders, an Internet router behind the providers, and the egress manager
moving default routes.

Each test deploys a renamed copy of topologies/abilene.yaml (plb egresses through
mae-east at washington and mae-west at sunnyvale) and drives it through the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from conftest import TOPOLOGIES, renamed_topology, unique_name, vispd, wait_for

pytestmark = pytest.mark.root

SYSTEM_PYTHON = "/usr/bin/python3"
INTERNET_HOST = "203.0.113.10"


def name_of(path: str) -> str:
    return os.path.basename(path)[: -len(".yaml")]


def birdc(name: str, router: str, *command: str) -> str:
    return subprocess.run(["birdc", "-s", f"/run/vispd/{name}/bird-{router}.ctl", *command],
                          capture_output=True, text=True, timeout=10).stdout



def established(name: str) -> bool:
    """Both borders' sessions (providers, slices) and both slice speakers' are up, and the
    speakers have routes in their FIBs."""
    statuses = json.loads(vispd("bgp", "status", name, "--json").stdout)
    return len(statuses) == 4 and all(
        n["state"] in ("up", "established") and (s.get("role") == "border" or n["installed"] >= 1)
        for s in statuses for n in s["neighbors"].values())


def border_sessions(name: str) -> dict:
    """{node: {session name: status}} of the border routers."""
    statuses = json.loads(vispd("bgp", "status", name, "--json").stdout)
    return {s["node"]: s["neighbors"] for s in statuses if s.get("role") == "border"}


def live_egress(state_dir, name: str) -> list[str]:
    try:
        status = json.loads((state_dir / name / "run" / "egress-manager.status.json").read_text())
    except (OSError, ValueError):
        return []
    return status["slices"]["plb"]["live_egress"]


def default_route(name: str, node: str) -> str:
    return subprocess.run(["ip", "-n", f"vispd.{name}.{node}.plb", "route", "show", "default"],
                          capture_output=True, text=True).stdout.strip()


def rx_bytes(name: str, provider: str, device: str) -> int:
    out = subprocess.run(["ip", "-n", f"vispd.{name}.+{provider}", "-j", "-s", "link", "show", device],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]["stats64"]["rx"]["bytes"]


PROBE_BYTES = 1200  # big echoes, so BGP reconnect attempts (small segments) cannot pass for them


def ping_internet(name: str, node: str, count: int = 3) -> subprocess.CompletedProcess:
    return vispd("exec", name, "plb", node, "--", "ping", "-c", str(count), "-i", "0.2", "-W", "2",
                 "-s", str(PROBE_BYTES), INTERNET_HOST, check=False)


def egress_bytes(name: str) -> tuple[int, int]:
    """Bytes the two providers have received from the vISP so far: (mae-west, mae-east)."""
    return rx_bytes(name, "mae-west", "to-snva"), rx_bytes(name, "mae-east", "to-wash")


def carried(before: tuple[int, int], after: tuple[int, int]) -> tuple[bool, bool]:
    """Which providers carried the three probes between two readings."""
    return tuple(a - b >= 3 * PROBE_BYTES for a, b in zip(after, before))


def probes_leave_by(name: str, node: str, expected: tuple[bool, bool], timeout: float = 15) -> list:
    """Ping the Internet host from `node` until three probes leave by the `expected` providers
    ((mae-west, mae-east) as in `carried`); every sample seen, the last one last. While a
    provider's table still arrives, the egress manager rightly steers the Internet host
    through the egress that already has it (CI: the FRR provider sends its table after BIRD
    does, so seattle's probes left by washington for a moment): a provider that never
    carries them fails here with what was seen."""
    seen: list = []

    def sample() -> bool:
        before = egress_bytes(name)
        if "3 received" not in ping_internet(name, node).stdout:
            seen.append("not all 3 answered")
            return False
        seen.append(carried(before, egress_bytes(name)))
        return seen[-1] == expected
    wait_for(sample, timeout=timeout)
    return seen


@pytest.fixture
def abilene_up(deployed, state_dir):
    path = deployed(prefix="te")
    name = name_of(path)
    assert wait_for(lambda: established(name)), vispd("bgp", "status", name).stdout
    assert wait_for(lambda: live_egress(state_dir, name) == ["sunnyvale", "washington"], timeout=5)
    # the Internet router has learned the vISP's prefix through both providers
    assert wait_for(lambda: birdc(name, "internet", "show", "route", "198.18.0.0/22", "all").count("BGP.as_path") >= 1,
                    timeout=15)
    return name


def test_sessions_establish_and_providers_see_the_slice_prefix(abilene_up):
    name = abilene_up
    table = birdc(name, "mae-east", "show", "route", "all", "198.18.0.0/22")
    assert "198.18.0.0/22" in table and "BGP.as_path: 64512" in table
    internet = wait_for(lambda: (lambda out: out if "BGP.as_path" in out else "")(
        birdc(name, "internet", "show", "route", "all", "198.18.0.0/22")), timeout=15)
    assert "BGP.as_path: 6510" in internet and "64512" in internet  # learned through a provider
    # the research slice has no egress: nothing of it is announced
    assert "198.18.8.0" not in birdc(name, "mae-east", "show", "route")
    status = vispd("bgp", "status", name).stdout
    assert "mae-east" in status and "mae-west" in status and "established" in status
    routes = vispd("routes", name, "plb", "washington").stdout
    assert "203.0.113.0/24" in routes and "bgp" in routes


def test_non_egress_sliver_reaches_the_internet_host_by_ping_and_tcp(abilene_up):
    name = abilene_up
    assert "3 received" in ping_internet(name, "denver").stdout
    server = subprocess.Popen(["ip", "netns", "exec", f"vispd.{name}.+internet", SYSTEM_PYTHON, "-c",
                               "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1);"
                               f"s.bind(('{INTERNET_HOST}', 8047)); s.listen(1); c,a=s.accept();"
                               "c.sendall(('hello ' + a[0]).encode()); c.close()"])
    try:
        time.sleep(0.3)
        client = vispd("exec", name, "plb", "denver", "--", SYSTEM_PYTHON, "-c",
                       f"import socket; s=socket.create_connection(('{INTERNET_HOST}', 8047), timeout=5);"
                       "print(s.recv(100).decode())")
        status = json.loads(vispd("status", name, "--json").stdout)
        denver = next(s for s in status["slivers"] if s["slice"] == "plb" and s["node"] == "denver")
        assert client.stdout.strip() == f"hello {denver['loopback']}"  # the vISP address, end to end
    finally:
        server.kill()
        server.wait()


def test_failover_between_providers_and_back(abilene_up):
    name = abilene_up
    # seattle is nearer sunnyvale: it leaves through mae-west
    assert "dev v-snva" in default_route(name, "seattle")
    seen = probes_leave_by(name, "seattle", (True, False))
    assert seen[-1] == (True, False), seen

    assert "disabled" in birdc(name, "mae-west", "disable", "vispd")
    assert wait_for(lambda: "dev v-dnvr" in default_route(name, "seattle"), timeout=5), default_route(name, "seattle")
    # the Internet's way back to the vISP moved too
    assert wait_for(lambda: "prov_mae_east" in birdc(name, "internet", "show", "route", "198.18.0.0/22"), timeout=5)
    seen = probes_leave_by(name, "seattle", (False, True))
    assert seen[-1] == (False, True), seen

    assert "enabled" in birdc(name, "mae-west", "enable", "vispd")
    assert wait_for(lambda: "dev v-snva" in default_route(name, "seattle"), timeout=20), default_route(name, "seattle")
    seen = probes_leave_by(name, "seattle", (True, False))
    assert seen[-1] == (True, False), seen


def test_check_reports_slivers_cut_off_from_the_internet(abilene_up):
    name = abilene_up
    assert "egress plb: 11/11 slivers reach 203.0.113.10" in vispd("check", name).stdout
    for provider in ("mae-east", "mae-west"):
        assert "disabled" in birdc(name, provider, "disable", "vispd")
    result = vispd("check", name, "--converge", "0", "--timeout", "1", check=False)
    assert result.returncode == 1
    assert "egress plb: 0/11 slivers reach 203.0.113.10" in result.stdout
    assert "reach plb: 110/110 pairs ok" in result.stdout  # inside the vISP all is well


def test_frr_works_as_the_alternative_provider(deployed, state_dir):
    def west_on_frr(text: str) -> str:
        return text.replace("peering: 192.0.2.16/28, max-prefix: 100000}",
                            "peering: 192.0.2.16/28, max-prefix: 100000, lab-daemon: frr}")
    path = deployed(prefix="te", edit=west_on_frr)
    name = name_of(path)
    assert wait_for(lambda: established(name)), vispd("bgp", "status", name).stdout
    assert wait_for(lambda: live_egress(state_dir, name) == ["sunnyvale", "washington"], timeout=10)
    vty = ["ip", "netns", "exec", f"vispd.{name}.+mae-west", "vtysh", "--vty_socket",
           f"/run/vispd/{name}/frr-mae-west", "-c", "show ip bgp 198.18.0.0/22"]
    assert "64512" in subprocess.run(vty, capture_output=True, text=True).stdout  # FRR learned the vISP
    seen = probes_leave_by(name, "seattle", (True, False))
    assert seen[-1] == (True, False), seen  # out through the FRR provider


def test_max_prefix_caps_one_provider_and_spares_the_other(deployed):
    def flood_west(text: str) -> str:
        return text.replace("peering: 192.0.2.16/28, max-prefix: 100000}",
                            "peering: 192.0.2.16/28, max-prefix: 50, lab-routes: 200}")
    path = deployed(prefix="te", edit=flood_west)
    name = name_of(path)

    def speakers():
        statuses = json.loads(vispd("bgp", "status", name, "--json").stdout)
        return {s["node"]: s["neighbors"]["border"] for s in statuses if s.get("role") != "border"}

    assert wait_for(lambda: border_sessions(name)["sunnyvale"]["mae-west"].get("max_prefix_exceeded"),
                    timeout=20), border_sessions(name)
    assert wait_for(lambda: speakers()["washington"]["installed"] >= 1, timeout=20), speakers()
    west = border_sessions(name)["sunnyvale"]["mae-west"]
    east = border_sessions(name)["washington"]["mae-east"]
    assert west["state"] == "up" and west["prefixes_in"] == 50 and west["refused_max_prefix"] >= 150
    assert east["state"] == "up" and not east["max_prefix_exceeded"]
    assert wait_for(lambda: speakers()["sunnyvale"]["installed"] == 50, timeout=10), speakers()
    assert "(max-prefix reached)" in vispd("bgp", "status", name).stdout
    # the other egress still carries traffic
    assert "3 received" in ping_internet(name, "washington").stdout


def test_announcing_outside_the_allocation_is_refused_and_nothing_is_built(tmp_path, state_dir):
    name = unique_name("te")

    def bad_announcement(text: str) -> str:
        return text.replace("    egress: [mae-east, mae-west]",
                            "    egress: [mae-east, mae-west]\n    announce: [{prefix: 8.8.8.0/24}]")
    path = renamed_topology(tmp_path, os.path.join(TOPOLOGIES, "abilene.yaml"), name, bad_announcement)
    result = vispd("up", path, check=False)
    assert result.returncode == 2
    assert "refusing to announce 8.8.8.0/24: outside slice 'plb''s allocation 198.18.0.0/22" in result.stderr
    assert not [n for n in os.listdir("/run/netns") if n.startswith(f"vispd.{name}.")]


def test_down_stops_every_daemon_and_leaves_no_namespace(tmp_path, state_dir):
    name = unique_name("te")
    path = renamed_topology(tmp_path, os.path.join(TOPOLOGIES, "abilene.yaml"), name)
    vispd("up", path)
    try:
        run = state_dir / name / "run"
        pids = [int(p.read_text().split()[0]) for p in run.glob("*.pid")
                if p.name.startswith(("bird-", "exabgp-", "border-", "egress-"))]
        assert len(pids) == 8  # 3 BIRD, 2 borders, 2 slice speakers, 1 egress manager
        assert all(os.path.exists(f"/proc/{pid}") for pid in pids)
    finally:
        vispd("down", path)
    assert not [n for n in os.listdir("/run/netns") if n.startswith(f"vispd.{name}.")]
    time.sleep(0.2)
    alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}")
             and open(f"/proc/{pid}/stat").read().rsplit(")", 1)[-1].split()[0] != "Z"]
    assert alive == []
    assert not os.path.exists(f"/run/vispd/{name}")
