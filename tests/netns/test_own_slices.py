"""`routing: own` slices as vispd builds them (root; issue 14): slices that are root over
their own slivers and route themselves, beside an ordinary slice on the same links.

One ring a-b-c-d-a (100 Mbit/s links) is brought up for the module with five slices:
`vic` (static routing, the kernel path: the victim), `prog` (routing: own, routed by its
own program writing routes as the slice), `bird` (routing: own with its own BIRD OSPF
configuration), `frr` (the same with FRR) and `evil` (routing: own, hostile). Everything
the slices do runs through `vispd exec` as the slice (tests/netns/own_agent.py, with the
system's python3); sniffers and iperf3 servers run as root in the slivers. The module
runs twice: under the BPF guard (the machine's default where tc BPF works) and under the
nftables fallback ($VISPD_BPF=off), which steer own links each their own way.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import socket

import networkx as nx
import pytest

from compiler.loader import load_topology
from compiler.planner import compile_plan
from dataplane import netns
from dataplane.bpf import detect, node as bpf_node

from conftest import ROOT, unique_name, vispd, wait_for
from guard_probes import Iperf, Sniffer

pytestmark = pytest.mark.root

AGENT = os.path.join(ROOT, "tests", "netns", "own_agent.py")
PYTHON = "/usr/bin/python3"  # the slice's user cannot run root's interpreter
SETTLE = 0.5

BIRD_CONF = """\
router id from "lo";
protocol device { scan time 1; }
protocol direct { ipv4; interface "lo"; }
protocol kernel { ipv4 { export where source = RTS_OSPF; }; scan time 5; }
protocol ospf v2 {
  tick 1;
  ipv4 { import all; export none; };
  area 0 {
    interface "v-*" { type ptp; hello 1; dead 4; };
    interface "lo" { stub; };
  };
}
"""
FRR_CONF = """\
frr defaults traditional
!
interface v-a
 ip ospf network point-to-point
 ip ospf hello-interval 1
 ip ospf dead-interval 4
!
interface v-b
 ip ospf network point-to-point
 ip ospf hello-interval 1
 ip ospf dead-interval 4
!
interface v-c
 ip ospf network point-to-point
 ip ospf hello-interval 1
 ip ospf dead-interval 4
!
interface v-d
 ip ospf network point-to-point
 ip ospf hello-interval 1
 ip ospf dead-interval 4
!
router ospf
 timers throttle spf 0 50 500
 network 198.18.0.0/15 area 0
!
"""


def topology_text(name: str, configs: str) -> str:
    return f"""\
name: {name}
asn: 64512
address-space: [198.18.0.0/16]
nodes: [{{name: a}}, {{name: b}}, {{name: c}}, {{name: d}}]
links:
  - {{between: [a, b], bandwidth: 100M}}
  - {{between: [b, c], bandwidth: 100M}}
  - {{between: [c, d], bandwidth: 100M}}
  - {{between: [d, a], bandwidth: 100M}}
slices:
  - {{name: vic, bandwidth: 30M}}
  - {{name: prog, bandwidth: 10M, routing: own}}
  - {{name: bird, bandwidth: 10M, routing: own, own: {{daemon: bird, config: {configs}/bird.conf}}}}
  - {{name: frr, bandwidth: 10M, routing: own, own: {{daemon: frr, config: {configs}/frr.conf}}}}
  - {{name: evil, bandwidth: 20M, routing: own}}
"""


@pytest.fixture(scope="module", params=["bpf", "nft"])
def ring(request, tmp_path_factory):
    """The ring under each node guard: the BPF guard (the machine's default where tc BPF
    works) and the nftables fallback ($VISPD_BPF=off), each steering own links its way."""
    guard = request.param
    if guard == "bpf" and not detect.available().ok:
        pytest.skip(f"the BPF guard is not available here: {detect.available().reason}")
    for tool in ("bird", "iperf3", "/usr/lib/frr/zebra", PYTHON):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    state = tmp_path_factory.mktemp("state")
    configs = tempfile.mkdtemp(prefix="hq-own-")  # the slices' users must read their configs
    os.chmod(configs, 0o755)
    for leaf, text in (("bird.conf", BIRD_CONF), ("frr.conf", FRR_CONF)):
        with open(os.path.join(configs, leaf), "w") as handle:
            handle.write(text)
    name = unique_name("hq")
    path = str(tmp_path_factory.mktemp("topo") / f"{name}.yaml")
    with open(path, "w") as handle:
        handle.write(topology_text(name, configs))
    env = dict(os.environ, VISPD_STATE_DIR=str(state))
    env.pop("VISPD_BPF", None)
    if guard == "nft":
        env["VISPD_BPF"] = "off"
    old = os.environ.get("VISPD_STATE_DIR")
    os.environ["VISPD_STATE_DIR"] = str(state)
    try:
        vispd("up", path, env=env)
        yield Ring(name, path, compile_plan(load_topology(path)), env, guard)
    finally:
        vispd("down", path, check=False, env=env)
        shutil.rmtree(configs, ignore_errors=True)
        if old is None:
            os.environ.pop("VISPD_STATE_DIR", None)
        else:
            os.environ["VISPD_STATE_DIR"] = old


class Ring:
    def __init__(self, name: str, path: str, plan, env: dict, guard: str):
        self.name, self.path, self.plan, self.env, self.guard = name, path, plan, env, guard

    def sliver(self, slice_name: str, node: str):
        return self.plan.sliver(slice_name, node)

    def node_ns(self, node: str) -> str:
        return f"vispd.{self.name}.{node}"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return vispd(*args, check=check, env=self.env)

    def agent(self, slice_name: str, node: str, *args: str) -> dict:
        """own_agent.py as the slice in its sliver on `node` (vispd exec: the slice's root there)."""
        result = self.run("exec", self.name, slice_name, node, "--", PYTHON, AGENT, *args)
        return json.loads(result.stdout)

    def check(self, *extra: str) -> dict:
        result = self.run("check", self.name, "--json", *extra, check=False)
        return json.loads(result.stdout)

    def peer_ip(self, slice_name: str, node: str, ifname: str) -> str:
        """The link address at the far end of `slice_name`'s interface `ifname` on `node`."""
        cidr = next(c for i, c, _ in self.sliver(slice_name, node).interfaces if i == ifname)
        address, _ = cidr.split("/")
        last = int(address.rsplit(".", 1)[1])
        return address.rsplit(".", 1)[0] + "." + str(last ^ 1)

    def end(self, slice_name: str, node: str, peer: str) -> tuple[str, str, str]:
        """(MAC, address, ifname) of `slice_name`'s end at `node` toward `peer`."""
        return next((mac, cidr.split("/")[0], i) for i, cidr, mac in self.sliver(slice_name, node).interfaces
                    if i == f"v-{peer}")


def reach(report: dict, slice_name: str) -> dict:
    return next(r for r in report["reach"] if r["slice"] == slice_name)


def route_ring(ring, slice_name: str) -> list[dict]:
    """The slice's own program (own_agent.py routes, as the slice) on every node: a route
    to every other sliver's loopback along the ring's shortest path."""
    graph = nx.cycle_graph(["a", "b", "c", "d"])
    done = []
    for node in "abcd":
        entries = [f"{ring.sliver(slice_name, other).loopback}/32="
                   f"{ring.peer_ip(slice_name, node, 'v-' + nx.shortest_path(graph, node, other)[1])}"
                   for other in "abcd" if other != node]
        done.append(ring.agent(slice_name, node, "routes", *entries))
    return done


def test_an_ordinary_slice_still_cannot_route(ring):
    denied = ring.run("exec", ring.name, "vic", "a", "--", "ip", "route", "add", "10.97.0.0/16", "dev", "lo",
                      check=False)
    assert denied.returncode != 0 and "Operation not permitted" in denied.stderr


def test_the_slices_own_program_routes_it_to_full_reach(ring):
    """prog's program (as the slice: uid 0 of its own user namespace, only net caps) writes
    a route per other sliver's loopback along the ring; then `vispd check` finds every pair."""
    for done in route_ring(ring, "prog"):
        assert set(done["routes"].values()) == {"ok"}, done
        assert done["uid"] == 0 and int(done["caps"], 16) == 0x3C00  # net_bind_service..net_raw, nothing else
    report = ring.check("--converge", "10")
    assert reach(report, "prog")["failures"] == [], reach(report, "prog")
    assert reach(report, "prog")["pairs"] == 12


def test_bird_and_frr_with_the_slices_own_configurations_give_full_reach(ring):
    report = ring.check("--converge", "45")
    for name in ("bird", "frr"):
        assert reach(report, name)["pairs"] == 12 and reach(report, name)["failures"] == [], reach(report, name)
    running = ring.run("status", ring.name, "--json")
    daemons = {d["name"]: d for d in json.loads(running.stdout)["daemons"]}
    assert {f"own-{s}-{n}" for s in ("bird", "frr") for n in "abcd"} <= set(daemons)
    uids = subprocess.run(["ps", "-ww", "-o", "uid=,args=", "-C", "bird"], capture_output=True, text=True).stdout
    mine = [line for line in uids.splitlines() if f"/{ring.name}/own-bird-" in line]
    assert len(mine) == 4 and all(int(line.split()[0]) == ring.sliver("bird", "a").uid for line in mine)


def test_own_links_are_steered_by_the_guard_in_use(ring):
    """Every own link's node end on b is steered: by a BPF own-link program under the BPF
    guard, by a chain of `netdev vispd_own` under the nftables guard (and not both)."""
    ns = ring.node_ns("b")
    with netns.entered(ns):
        own_ends = sorted(name for _, name in socket.if_nameindex() if name.startswith("ov"))
    assert len(own_ends) == 2 * 4  # prog, bird, frr, evil toward a and c
    listed = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "table", "netdev", "vispd_own"],
                            capture_output=True, text=True)
    if ring.guard == "bpf":
        programs = bpf_node.observe(ns, detect.available().mode)
        steered = sorted(dev for (dev, hook), (role, _) in programs.items() if role == "o" and hook == "ingress")
        assert steered == own_ends
        assert listed.returncode != 0
    else:
        assert all(f'device "{dev}"' in listed.stdout for dev in own_ends), listed.stdout
        assert "fwd to" in listed.stdout


def test_a_slice_root_reaches_nothing_outside_its_sliver(ring):
    verdicts = ring.agent("evil", "b", "escape", ring.node_ns("b"), ring.sliver("vic", "b").ns)
    assert all(v.startswith("refused") for v in verdicts["others"].values()), verdicts["others"]
    assert set(verdicts["own"].values()) == {"done"}, verdicts["own"]


def hostile_spec(ring, marker: str) -> dict:
    """evil@b toward c: pose as vic's and bird's ends on b-c (MACs, addresses), target their
    link addresses and every loopback of theirs."""
    victims = []
    for name in ("vic", "bird"):
        mac, ip, _ = ring.end(name, "b", "c")
        peer_mac, peer_ip, _ = ring.end(name, "c", "b")
        targets = [peer_ip] + [ring.sliver(name, n).loopback for n in "acd"]
        victims.append({"mac": mac, "ip": ip, "peer_mac": peer_mac, "peer_ip": peer_ip, "targets": targets})
    own_mac, _, link = ring.end("evil", "b", "c")
    return {"marker": marker, "slice": "evil", "node": "b", "link": link, "own_mac": own_mac, "others": ["v-a"],
            "victims": victims, "repeat": 40, "flood_seconds": 1.0}


def test_a_hostile_own_slice_gets_nothing_into_other_slices(ring):
    """evil, root in its sliver on b, takes vic's MAC on its link to c, adds a macvlan with
    bird's MAC, a veth pair and a TAP, sends raw frames with vic's and bird's MACs and
    addresses, ARP, broadcast and multicast out of every device, and floods: sniffers in
    every other slice's slivers see none of it; evil's own peer on c gets its frames, with
    evil's own MACs."""
    marker = "hq-" + secrets.token_hex(6)
    spec = hostile_spec(ring, marker)
    others = [s for s in ring.plan.slivers if s.slice != "evil"]
    sniffers = {s.ns: Sniffer(s.ns) for s in others}
    peer = Sniffer(ring.sliver("evil", "c").ns)
    try:
        done = ring.agent("evil", "b", "hostile", json.dumps(spec))
        time.sleep(SETTLE)
        leaks = [f"{ns}: {t['kind']} {t['src']}->{t['dst']} on {t['if']}" for ns, s in sniffers.items()
                 for t in s.tags(marker)]
        at_peer = peer.tags(marker)
    finally:
        for sniffer in [*sniffers.values(), peer]:
            sniffer.close()
        restored = ring.agent("evil", "b", "restore", json.dumps(spec))
    assert done["errors"] == {}, done
    assert all(count == 40 * done["per_batch"] for count in done["sent"].values()), done
    assert done["flooded"] > 1000
    assert leaks == []
    mac, _, _ = ring.end("evil", "b", "c")
    peer_mac, _, _ = ring.end("evil", "c", "b")
    assert len(at_peer) >= 40 * (done["per_batch"] - 2)  # its own peer gets them, rewritten
    assert {(t["src"], t["dst"]) for t in at_peer} == {(mac, peer_mac)}
    assert restored["mac"] == 0


def test_the_victims_tcp_keeps_its_guarantee_under_an_own_slices_flood(ring):
    """evil floods a->c at 200 Mbit/s of UDP (its own iperf3, as the slice) through a-b-c
    while vic's TCP runs a->c over the same links: vic keeps at least 0.8 of its 30M."""
    iperf = Iperf()
    vic_a, vic_c = ring.sliver("vic", "a"), ring.sliver("vic", "c")
    evil_a, evil_c = ring.sliver("evil", "a"), ring.sliver("evil", "c")
    ring.agent("evil", "a", "routes", f"{evil_c.loopback}/32={ring.peer_ip('evil', 'a', 'v-b')}")
    ring.agent("evil", "b", "routes", f"{evil_c.loopback}/32={ring.peer_ip('evil', 'b', 'v-c')}",
               f"{evil_a.loopback}/32={ring.peer_ip('evil', 'b', 'v-a')}")
    ring.agent("evil", "c", "routes", f"{evil_a.loopback}/32={ring.peer_ip('evil', 'c', 'v-b')}")
    try:
        iperf.server(vic_c.ns, vic_c.loopback)
        iperf.server(evil_c.ns, evil_c.loopback)
        flood = subprocess.Popen(
            [sys.executable, "-m", "vispd.cli", "exec", ring.name, "evil", "a", "--", "iperf3", "-c", evil_c.loopback,
             "-B", evil_a.loopback, "-p", str(Iperf.PORT), "-u", "-b", "200M", "-t", "6", "-J"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ring.env)
        iperf.procs.append(flood)
        time.sleep(1.0)
        tcp = iperf.client(vic_a.ns, vic_a.loopback, vic_c.loopback, 3)
        mbps = Iperf.mbps(tcp, timeout=30)
        flooded = Iperf.mbps(flood, timeout=30)
    finally:
        iperf.stop()
    assert flooded > 20, "the flood did not run"
    assert mbps >= 0.8 * 30, f"vic got {mbps:.1f} Mbit/s of its 30 under evil's flood"


def test_check_passes_with_every_kind_of_slice(ring):
    """With prog and evil routed by their own programs (and bird, frr by their suites),
    check finds full reach in every slice and no leak from or to any."""
    for slice_name in ("prog", "evil"):
        route_ring(ring, slice_name)
    report = ring.check("--converge", "30")
    assert report["ok"], json.dumps(report, indent=1)[:3000]
    isolation = [i for i in report["isolation"] if "evil" in (i["source"], i["target"])]
    assert isolation and all(not i["leaks"] for i in isolation)


def test_up_again_changes_nothing_and_forged_markers_are_not_believed(ring):
    """A slice root writes vispd-looking markers on devices it makes (one claiming to be a
    veth into the node namespace, one a borrowed interface): `up` removes them as the
    sliver's own strays and touches nothing outside the sliver; `up` again is a no-op."""
    assert "no changes" in ring.run("up", ring.path).stdout
    ns, node = ring.sliver("evil", "b").ns, ring.node_ns("b")
    marker = f"vispd:{ring.name}"
    with netns.entered(node):
        substrate = {name for _, name in socket.if_nameindex()}
    forged = [("fake1", f"{marker} peer={node}/to-c d=0"), ("fake2", f"{marker} borrowed=eth0 d=0")]
    script = "; ".join(f"ip link add {dev} type veth peer name {dev}p && ip link set {dev} alias '{alias}'"
                       for dev, alias in forged)
    ring.run("exec", ring.name, "evil", "b", "--", "sh", "-c", script)
    again = ring.run("up", ring.path, "-v")
    assert "to-c" not in again.stdout and "eth0" not in again.stdout, again.stdout
    with netns.entered(node):
        assert {name for _, name in socket.if_nameindex()} == substrate
    listed = subprocess.run(["ip", "-n", ns, "-br", "link"], capture_output=True, text=True).stdout
    assert "fake1" not in listed and "fake2" not in listed
    assert "no changes" in ring.run("up", ring.path).stdout


def test_down_removes_the_slices_processes_even_nested_ones(ring):
    """Processes a slice starts in its sliver, one of them in a user and network namespace
    of its own nested in the sliver's, are gone with `down`; so is every namespace."""
    sliver = ring.sliver("prog", "a").ns
    ring.run("exec", ring.name, "prog", "a", "--", "sh", "-c",
             "setsid sleep 300 </dev/null >/dev/null 2>&1 & setsid unshare --user --net sleep 301 </dev/null "
             ">/dev/null 2>&1 &")
    def sleepers() -> list[int]:
        return [p for p in netns.pids_inside(sliver) if _command(p).startswith("sleep 30")]
    wait_for(lambda: len(sleepers()) >= 2, timeout=5)  # both started (they race with exec's return)
    found = sleepers()
    assert len(found) == 2
    nested = [p for p in found if os.stat(f"/proc/{p}/ns/net").st_ino != netns.inode(sliver)]
    assert len(nested) == 1  # found by its user namespace, not by its network namespace
    ring.run("down", ring.path)
    assert wait_for(lambda: not any(netns.alive(p) for p in found), timeout=10)
    assert not netns.list_names(f"vispd.{ring.name}.")
    ring.run("up", ring.path)  # the module's fixture tears down again


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""
