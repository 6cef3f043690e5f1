"""Clients on ordinary machines, reaching access points on the machine's own public address
(`public: {interface:}`), with the distribution's clients on vispd's profiles:
`openvpn --config PROFILE` and `wg-quick up PROFILE` (wireguard-go), each in a test-made
client namespace whose only route is a default route through a test-made router standing
for the Internet. A client reaches its slice on every node and, through the slice's egress,
the lab's Internet host; never the other slice; revoked, it is cut off and cannot come
back (OpenVPN: the CRL and the server's management socket; WireGuard: the peer taken off
the interface at once, and the access point reloaded without it). `down` removes the
forwarding and gives the interface's forwarding setting back.

vispd runs inside a test-made namespace standing for the machine (`nsenter --net`), whose
interface toward the router is the public interface: nothing of the real machine's is
touched."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import unique_name, wait_for
from outside import World, link_state, sh, vispd_in

pytestmark = pytest.mark.root

INTERNET_HOST = "203.0.113.10"
TOOLS = ("openvpn", "wg-quick", "wireguard-go", "wg", "bird")


class Site:
    """The machine (vispd's namespace), the Internet's router, three clients; the topology."""

    def __init__(self, world: World, tmp: str, name: str):
        self.world, self.tmp, self.name = world, tmp, name
        self.machine, router = world.ns("m"), world.ns("r")
        self.public = world.tag + "p"
        world.veth(self.public, self.machine, world.tag + "q", router)
        world.address(self.machine, self.public, "172.31.250.2/30")
        world.address(router, world.tag + "q", "172.31.250.1/30")
        sh("ip", "-n", self.machine, "route", "add", "default", "via", "172.31.250.1")
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=router)
        self.clients = {}
        for i, who in enumerate(("alice", "bob", "wg")):
            ns = world.ns(who[0] + "c")
            world.veth(f"{world.tag}{i}c", ns, f"{world.tag}{i}r", router)
            world.address(ns, f"{world.tag}{i}c", f"172.31.{251 + i}.2/30")
            world.address(router, f"{world.tag}{i}r", f"172.31.{251 + i}.1/30")
            sh("ip", "-n", ns, "route", "add", "default", "via", f"172.31.{251 + i}.1")  # the only route
            self.clients[who] = ns
        self.procs: list[subprocess.Popen] = []
        self.path = os.path.join(tmp, f"{name}.yaml")
        with open(self.path, "w") as handle:
            handle.write(f"""\
name: {name}
asn: 64512
address-space: [198.18.0.0/16]
nodes: [{{name: a}}, {{name: b}}]
links: [{{between: [a, b], bandwidth: 1G}}]
providers: [{{name: up, node: a, asn: 65001, bandwidth: 1G}}]
slices:
  - {{name: s, bandwidth: 100M, egress: [up]}}
  - {{name: t, bandwidth: 100M}}
public: {{interface: {self.public}}}
access:
  - {{slice: s, type: openvpn, nodes: [b], users: [{{name: alice}}, {{name: bob}}]}}
  - {{slice: s, type: wireguard, nodes: [a], users: [{{name: alice}}, {{name: dave}}]}}
  - {{slice: t, type: openvpn, nodes: [b], port: 1195, users: [{{name: carol}}]}}
""")

    def vispd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return vispd_in(self.machine, *args, check=check)

    def loopbacks(self, slice_name: str) -> list[str]:
        status = json.loads(self.vispd("status", self.name, "--json").stdout)
        return [s["loopback"] for s in status["slivers"] if s["slice"] == slice_name]

    def profile(self, user: str, kind: str, leaf: str) -> str:
        path = os.path.join(self.tmp, leaf)
        self.vispd("access", "profile", self.name, "s", user, "--type", kind, "-o", path)
        return path

    def openvpn(self, who: str, profile: str) -> subprocess.Popen:
        log = open(os.path.join(self.tmp, f"{who}.log"), "w")
        proc = subprocess.Popen(["ip", "netns", "exec", self.clients[who], "openvpn", "--config", profile],
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def tunnel_up(self, who: str) -> bool:
        return "Initialization Sequence Completed" in open(os.path.join(self.tmp, f"{who}.log")).read()

    def pings(self, who: str, target: str, count: int = 1) -> bool:
        return sh("ping", "-c", str(count), "-W", "2", target, ns=self.clients[who], check=False).returncode == 0

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/install.sh)")
    tmp = str(tmp_path_factory.mktemp("outside"))
    old = os.environ.get("VISPD_STATE_DIR")
    os.environ["VISPD_STATE_DIR"] = os.path.join(tmp, "state")
    world = World()
    made = None
    try:
        made = Site(world, tmp, unique_name("to"))
        made.vispd("up", made.path)
        yield made
    finally:
        if made is not None:
            for proc in made.procs:
                made.stop(proc)
            made.vispd("down", made.name, check=False)
        world.close()
        if old is None:
            os.environ.pop("VISPD_STATE_DIR", None)
        else:
            os.environ["VISPD_STATE_DIR"] = old


def test_openvpn_on_a_default_route_only_client_reaches_its_slice_and_the_internet(site):
    client = site.openvpn("alice", site.profile("alice", "openvpn", "alice.ovpn"))
    try:
        assert wait_for(lambda: site.tunnel_up("alice"), timeout=20), open(os.path.join(site.tmp, "alice.log")).read()
        routes = sh("ip", "route", ns=site.clients["alice"]).stdout
        assert "0.0.0.0/1 via" in routes and "172.31.250.2 via 172.31.251.1" in routes  # the server stays outside
        for loopback in site.loopbacks("s"):
            assert wait_for(lambda: site.pings("alice", loopback), timeout=10), loopback
        assert wait_for(lambda: site.pings("alice", INTERNET_HOST), timeout=30)  # through the slice's egress
        assert not any(site.pings("alice", loopback) for loopback in site.loopbacks("t"))
        assert client.poll() is None
    finally:
        site.stop(client)


def test_a_revoked_openvpn_client_is_cut_off_and_cannot_reconnect(site):
    profile = site.profile("bob", "openvpn", "bob.ovpn")
    bob = site.openvpn("bob", profile)
    try:
        assert wait_for(lambda: site.tunnel_up("bob"), timeout=20)
        target = site.loopbacks("s")[0]
        assert wait_for(lambda: site.pings("bob", target), timeout=10)
        said = site.vispd("access", "revoke", site.name, "s", "bob").stdout
        assert "revoked bob" in said and "1 live session(s) closed" in said
        assert wait_for(lambda: not site.pings("bob", target), timeout=10)
        site.stop(bob)
        again = site.openvpn("bob", profile)
        time.sleep(4)
        assert not site.tunnel_up("bob") and not site.pings("bob", target)
        site.stop(again)
    finally:
        site.stop(bob)


def test_wg_quick_on_a_default_route_only_client_reaches_its_slice_and_the_internet_until_revoked(site):
    ifname = site.world.tag + "w"  # wireguard-go's control socket is machine-wide: a unique name
    profile = site.profile("dave", "wireguard", f"{ifname}.conf")
    ns = site.clients["wg"]
    env = {**os.environ, "WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go"}

    def wg_quick(action: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", ns, "wg-quick", action, profile], capture_output=True,
                              text=True, env=env, timeout=60)

    up = wg_quick("up")
    try:
        assert up.returncode == 0, up.stderr
        assert "default via 172.31.253.1" in sh("ip", "route", ns=ns).stdout  # untouched: wg-quick routes by mark
        for loopback in site.loopbacks("s"):
            assert wait_for(lambda: site.pings("wg", loopback), timeout=15), loopback
        assert wait_for(lambda: site.pings("wg", INTERNET_HOST), timeout=30)
        assert not any(site.pings("wg", loopback) for loopback in site.loopbacks("t"))
        said = site.vispd("access", "revoke", site.name, "s", "dave").stdout
        assert "revoked dave's WireGuard key" in said and "a: peer removed" in said
        target = site.loopbacks("s")[0]
        assert wait_for(lambda: not site.pings("wg", target), timeout=10)  # cut off at once
        assert "a: wireguard-s-a has the new configuration" in said  # reloaded without dave, not restarted
        pid_file = os.path.join(os.environ["VISPD_STATE_DIR"], site.name, "run", "wireguard-s-a.pid")
        pid = open(pid_file).read().split()[0]
        assert site.vispd("up", site.path).stdout.strip() == f"{site.name}: no changes"
        assert open(pid_file).read().split()[0] == pid
        wg_quick("down")
        assert wg_quick("up").returncode == 0
        time.sleep(3)
        assert not site.pings("wg", target, count=2)  # no handshake for a revoked key
        assert site.vispd("access", "profile", site.name, "s", "dave", "--type", "wireguard",
                          check=False).returncode != 0
    finally:
        wg_quick("down")


def test_down_removes_the_forwarding_and_gives_the_interface_s_setting_back(site):
    key = f"net.ipv4.conf.{site.public}.forwarding"
    assert sh("sysctl", "-n", key, ns=site.machine).stdout.strip() == "1"
    before = link_state(site.public, site.machine)
    site.vispd("down", site.name)
    assert sh("sysctl", "-n", key, ns=site.machine).stdout.strip() == "0"
    assert f"vispd_{site.name}" not in sh("nft", "list", "tables", ns=site.machine).stdout
    assert link_state(site.public, site.machine) == before  # the machine's way out, never moved
    assert "default via 172.31.250.1" in sh("ip", "route", ns=site.machine).stdout
    # the machine's ends of the nodes' links go with the node namespaces, which the kernel
    # destroys asynchronously after down has removed them
    assert wait_for(lambda: not [line for line in sh("ip", "-br", "link", ns=site.machine).stdout.splitlines()
                                 if "vp" in line], timeout=10), sh("ip", "-br", "link", ns=site.machine).stdout
