"""Real providers through the border router (issue 11): namespaces made by the test stand
for the outside world — an ISP `isp` running its own BIRD (configuration written here, not
by vispd), a second ISP `isp2`, and a host behind them — each joined to the vISP by a veth
pair whose machine end is the provider's `external: {interface:}`. On a deployed Abilene
(plb egresses through the lab's mae-east and mae-west and through isp at washington and isp2
at sunnyvale):

- exactly one BGP session from the vISP's AS to isp, carrying the egressing slices'
  prefixes and nothing else;
- every plb sliver reaches the host behind isp, also those nearer sunnyvale (only isp
  announces the host's prefix);
- a slice announcing outside its allocation is refused at the border (seen in `bgp status`
  and missing at isp); a slice sending from another slice's address is dropped at the border;
- taking isp's session down moves the traffic to isp2 (before any hold timer could);
- `down` leaves isp, its BIRD and the interfaces as they were.
And the same session with GoBGP (Debian's gobgpd) as the ISP: a second implementation."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import TOPOLOGIES, renamed_topology, unique_name, vispd, wait_for
from outside import World, link_state, sh

pytestmark = pytest.mark.root

HOST = "172.31.0.10"        # behind isp only
BOTH = "172.31.255.10"      # behind isp and isp2
PROBE_BYTES = 1200
RESEARCH_ADDRESS = "198.18.8.77"

ISP_BIRD = """\
router id {me};
protocol device {{ scan time 10; }}
protocol kernel {{ ipv4 {{ import none; export all; }}; }}
protocol static hostnet {{
  ipv4;
{routes}
}}
protocol bgp vispd {{
  local {me} as {asn};
  neighbor {border} as 64512;
  hold time 9; keepalive time 3; connect retry time 1;
  ipv4 {{ import all; export where proto = "hostnet"; }};
}}
"""


class Outside:
    """isp, isp2 and the host, with the machine ends of their access links."""

    def __init__(self, world: World, tmp_path):
        self.world, self.tmp = world, tmp_path
        self.isp, self.isp2, self.host = world.ns("isp"), world.ns("isp2"), world.ns("host")
        self.if_isp, self.if_isp2 = world.tag + "a", world.tag + "b"
        world.veth(self.if_isp, None, "up0", self.isp)
        world.veth(self.if_isp2, None, "up0", self.isp2)
        world.address(self.isp, "up0", "10.255.0.1/30")
        world.address(self.isp2, "up0", "10.255.1.1/30")
        world.veth("h0", self.isp, "a0", self.host)
        world.veth("h0", self.isp2, "b0", self.host)
        world.address(self.isp, "h0", "172.31.0.1/24")
        world.address(self.isp2, "h0", "172.31.1.1/24")
        world.address(self.host, "a0", f"{HOST}/24")
        world.address(self.host, "b0", "172.31.1.10/24")
        world.address(self.host, "lo", f"{BOTH}/32")
        for ns in (self.isp, self.isp2, self.host):
            for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"):
                sh("sysctl", "-qw", key, ns=ns)
        # the host answers the vISP by isp2 whichever way a packet came (an asymmetric path,
        # so moving the vISP's outbound traffic is all a failover has to do)
        sh("ip", "route", "add", "198.18.0.0/16", "via", "172.31.1.1", ns=self.host)
        self.birds: dict[str, subprocess.Popen] = {}
        self.links_before = {name: link_state(name) for name in (self.if_isp, self.if_isp2)}

    def bird(self, ns: str, me: str, asn: int, border: str, routes: list[str]) -> None:
        conf = self.tmp / f"{ns}.conf"
        conf.write_text(ISP_BIRD.format(me=me, asn=asn, border=border, routes="\n".join(f"  {r};" for r in routes)))
        self.birds[ns] = subprocess.Popen(["ip", "netns", "exec", ns, "bird", "-f", "-c", str(conf),
                                           "-s", str(self.tmp / f"{ns}.ctl")], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)

    def birdc(self, ns: str, *command: str) -> str:
        return subprocess.run(["birdc", "-s", str(self.tmp / f"{ns}.ctl"), *command], capture_output=True,
                              text=True, timeout=10).stdout

    def rx(self, ns: str) -> int:
        out = sh("ip", "-j", "-s", "link", "show", "up0", ns=ns).stdout
        return json.loads(out)[0]["stats64"]["rx"]["bytes"]

    def close(self) -> None:
        for process in self.birds.values():
            process.terminate()
            process.wait(timeout=10)


def topology(tmp_path, outside: Outside, second: bool = True) -> str:
    extra = (f"  - {{name: isp, node: washington, asn: 65301, bandwidth: 1G, local-pref: 200,\n"
             f"     external: {{interface: {outside.if_isp}, address: 10.255.0.2/30, peer: 10.255.0.1}}}}\n")
    egress = "mae-east, mae-west, isp"
    if second:
        extra += (f"  - {{name: isp2, node: sunnyvale, asn: 65302, bandwidth: 1G,\n"
                  f"     external: {{interface: {outside.if_isp2}, address: 10.255.1.2/30, peer: 10.255.1.1}}}}\n")
        egress += ", isp2"

    def edit(text: str) -> str:
        text = text.replace("    egress: [mae-east, mae-west]", f"    egress: [{egress}]")
        return re.sub(r"(?m)^slices:", extra + "slices:", text, count=1)
    return renamed_topology(tmp_path, os.path.join(TOPOLOGIES, "abilene.yaml"), unique_name("ti"), edit)


def name_of(path: str) -> str:
    return os.path.basename(path)[: -len(".yaml")]


def ping(name: str, node: str, target: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", f"vispd.{name}.{node}.plb", "ping", "-c", "3", "-i", "0.2", "-W", "1",
                           "-s", str(PROBE_BYTES), *extra, target], capture_output=True, text=True)


def plb_nodes(name: str) -> list[str]:
    status = json.loads(vispd("status", name, "--json").stdout)
    return sorted(s["node"] for s in status["slivers"] if s["slice"] == "plb")


@pytest.fixture
def outside(tmp_path):
    world = World(prefix="ti")
    made = None
    try:
        made = Outside(world, tmp_path)
        yield made
    finally:
        if made is not None:
            made.close()
        world.close()


def test_isp_gets_one_session_the_slices_prefixes_and_reaches_every_sliver(tmp_path, state_dir, outside):
    outside.bird(outside.isp, "10.255.0.1", 65301, "10.255.0.2",
                 ["route 172.31.0.0/24 via \"h0\"", f"route 172.31.255.0/24 via {HOST}"])
    outside.bird(outside.isp2, "10.255.1.1", 65302, "10.255.1.2", ["route 172.31.255.0/24 via 172.31.1.10"])
    path = topology(tmp_path, outside)
    name = name_of(path)
    isp_bird_pid = outside.birds[outside.isp].pid
    vispd("up", path)
    try:
        # exactly one session from the vISP's AS, carrying the egressing slice's prefix only
        assert wait_for(lambda: "Established" in outside.birdc(outside.isp, "show", "protocols", "vispd"), timeout=30)
        learned = lambda: re.findall(r"^(\d+\.\d+\.\d+\.\d+/\d+)", outside.birdc(  # noqa: E731
            outside.isp, "show", "route", "protocol", "vispd"), re.M)
        assert wait_for(lambda: learned() == ["198.18.0.0/22"], timeout=20), learned()
        sessions = [line for line in outside.birdc(outside.isp, "show", "protocols").splitlines() if " BGP " in line]
        assert len(sessions) == 1
        assert "AS64512" in outside.birdc(outside.isp, "show", "route", "protocol", "vispd", "all").replace(" ", "")

        # every sliver reaches the host only isp announces, the ones nearer sunnyvale too
        for node in plb_nodes(name):
            assert wait_for(lambda: ping(name, node, HOST).returncode == 0, timeout=20), (node, vispd(
                "routes", name, "plb", node).stdout)

        # a slice sending from research's address is dropped at the border
        sliver = f"vispd.{name}.washington.plb"
        sh("ip", "-n", sliver, "addr", "add", f"{RESEARCH_ADDRESS}/32", "dev", "lo")
        before = outside.rx(outside.isp)
        assert "0 received" in ping(name, "washington", HOST, "-I", RESEARCH_ADDRESS).stdout
        assert outside.rx(outside.isp) - before < PROBE_BYTES

        # a slice's own speaker announcing outside its allocation is refused at the border
        refuse_a_hostile_speaker(name, state_dir, tmp_path)
        assert "10.99.0.0/24" not in outside.birdc(outside.isp, "show", "route")

        # isp's session down: the traffic to what both announce moves to isp2
        assert_failover_to_isp2(name, outside)
    finally:
        vispd("down", path)
    # isp, its BIRD and both interfaces are as they were
    assert outside.birds[outside.isp].poll() is None and outside.birds[outside.isp].pid == isp_bird_pid
    assert {n: link_state(n) for n in outside.links_before} == outside.links_before
    assert json.loads(sh("ip", "-j", "addr", "show", "up0", ns=outside.isp).stdout)[0]["addr_info"][0]["local"] \
        == "10.255.0.1"


def refuse_a_hostile_speaker(name: str, state_dir, tmp_path) -> None:
    run = state_dir / name / "run"
    config = json.loads((run / "exabgp-plb-washington.json").read_text())
    border, local = config["neighbors"][0]["address"], config["neighbors"][0]["local_address"]
    os.kill(int((run / "exabgp-plb-washington.pid").read_text().split()[0]), signal.SIGTERM)
    conf = tmp_path / "hostile.conf"
    conf.write_text(f"neighbor {border} {{ router-id 198.18.0.9; local-address {local}; local-as 64512; "
                    f"peer-as 64512; hold-time 9; family {{ ipv4 unicast; }} static {{ "
                    f"route 198.18.0.0/22 next-hop self; route 10.99.0.0/24 next-hop self; }} }}\n")
    env = {**os.environ, "exabgp.daemon.user": "root", "exabgp.daemon.daemonize": "false",
           "exabgp.api.cli": "false", "exabgp.tcp.bind": local, "exabgp.log.destination": str(tmp_path / "h.log")}
    speaker = subprocess.Popen(["ip", "netns", "exec", f"vispd.{name}.washington.plb", sys.executable, "-m",
                                "exabgp", "server", str(conf)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        def refused() -> list:
            statuses = json.loads(vispd("bgp", "status", name, "--json").stdout)
            border_status = next(s for s in statuses if s.get("role") == "border" and s["node"] == "washington")
            return [r["prefix"] for r in border_status["refused"]]
        assert wait_for(lambda: refused() == ["10.99.0.0/24"], timeout=30), refused()
        assert "refused from slice plb: 10.99.0.0/24" in vispd("bgp", "status", name).stdout
    finally:
        speaker.terminate()
        speaker.wait(timeout=10)
    vispd("up", name)   # the slice's own speaker back (up restarts the daemon it misses)


def assert_failover_to_isp2(name: str, outside: Outside) -> None:
    assert wait_for(lambda: ping(name, "new-york", BOTH).returncode == 0, timeout=30)
    before = outside.rx(outside.isp), outside.rx(outside.isp2)
    assert ping(name, "new-york", BOTH).returncode == 0
    assert outside.rx(outside.isp) - before[0] >= 3 * PROBE_BYTES       # local-pref 200: by isp
    assert outside.rx(outside.isp2) - before[1] < PROBE_BYTES
    probe = subprocess.Popen(["ip", "netns", "exec", f"vispd.{name}.new-york.plb", "ping", "-D", "-i", "0.01",
                              "-W", "1", "-c", "600", BOTH], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    dropped_at = time.time()
    assert "disabled" in outside.birdc(outside.isp, "disable", "vispd")
    out, _ = probe.communicate(timeout=60)
    replies = [float(m) for m in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from", out, re.M)]
    after = [t for t in replies if t > dropped_at]
    assert after, out[-500:]
    gap = after[0] - dropped_at
    print(f"failover to isp2: first reply {gap:.3f} s after isp's session was disabled")
    assert gap < 9.0   # moved by the session's end, not by a hold timer (9 s) running out
    before = outside.rx(outside.isp2)
    assert ping(name, "new-york", BOTH).returncode == 0
    assert outside.rx(outside.isp2) - before >= 3 * PROBE_BYTES
    outside.birdc(outside.isp, "enable", "vispd")


@pytest.mark.skipif(shutil.which("gobgpd") is None, reason="gobgpd (Debian's gobgpd) is not installed")
def test_gobgp_as_the_isp_holds_one_session_and_carries_the_slices_traffic(tmp_path, state_dir, outside):
    conf = tmp_path / "gobgpd.toml"
    conf.write_text('[global.config]\n  as = 65301\n  router-id = "10.255.0.1"\n  port = 179\n'
                    '  local-address-list = ["10.255.0.1"]\n'
                    '[[neighbors]]\n  [neighbors.config]\n    neighbor-address = "10.255.0.2"\n    peer-as = 64512\n'
                    '  [neighbors.timers.config]\n    hold-time = 9\n    keepalive-interval = 3\n'
                    '    connect-retry = 1\n')
    gobgpd = subprocess.Popen(["ip", "netns", "exec", outside.isp, "gobgpd", "-f", str(conf), "--api-hosts",
                               "127.0.0.1:50051", "-l", "warn"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        def gobgp(*args: str) -> str:
            return sh("gobgp", "-u", "127.0.0.1", "-p", "50051", *args, ns=outside.isp, check=False).stdout
        assert wait_for(lambda: "10.255.0.2" in gobgp("neighbor"), timeout=15)
        gobgp("global", "rib", "add", "-a", "ipv4", "172.31.0.0/24", "nexthop", "10.255.0.1")
        # GoBGP installs nothing in the kernel: the way back to the vISP is the test's own route
        sh("ip", "route", "add", "198.18.0.0/16", "via", "10.255.0.2", ns=outside.isp)
        sh("ip", "route", "replace", "198.18.0.0/16", "via", "172.31.0.1", ns=outside.host)
        path = topology(tmp_path, outside, second=False)
        name = name_of(path)
        vispd("up", path)
        try:
            assert wait_for(lambda: "Establ" in gobgp("neighbor"), timeout=30), gobgp("neighbor")
            learned = lambda: re.findall(r"(\d+\.\d+\.\d+\.\d+/\d+)\s+10\.255\.0\.2", gobgp(  # noqa: E731
                "global", "rib", "-a", "ipv4"))
            assert wait_for(lambda: learned() == ["198.18.0.0/22"], timeout=20), gobgp("global", "rib")
            assert len([line for line in gobgp("neighbor").splitlines() if "Establ" in line]) == 1
            for node in ("seattle", "washington", "new-york"):
                assert wait_for(lambda: ping(name, node, HOST).returncode == 0, timeout=20), (node, vispd(
                    "routes", name, "plb", node).stdout)
        finally:
            vispd("down", path)
    finally:
        gobgpd.terminate()
        gobgpd.wait(timeout=10)
    assert link_state(outside.if_isp) == outside.links_before[outside.if_isp]
