"""Routing modes on the real kernel with real BIRD: two OSPF slices, a static one and a
`routing: none` one share the substrate links of a ring a-b-c-d-a (a-b-c is the cheap way
from a to c, a-d-c the dear one).

* each OSPF slice converges on its own: every sliver learns every other loopback from BIRD,
  its routes never name another slice's addresses, its BIRD's neighbours are its own
  slice's routers;
* neither sees the other's OSPF packets, and no OSPF packet is ever multicast: captures in
  every sliver and node namespace over several hello intervals;
* `vispd link down` moves the OSPF path (within seconds) and the static path (at once),
  `vispd link up` brings both back, and `vispd plan` stays clean throughout;
* `routing: none` slivers have connected routes only and no BIRD;
* `vispd check` judges each mode: it waits for OSPF, does not judge `none`'s reach, and
  expects nothing over failed links.

One deployment serves the whole module (the tests leave every link up as they found it)."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import textwrap
import time
from dataclasses import dataclass
from ipaddress import ip_address, ip_network

import pytest

from conftest import unique_name, vispd, wait_for
from compiler.addressing import allocate_slice_prefixes
from compiler.loader import load_topology
from compiler.planner import compile_plan

pytestmark = pytest.mark.root

RING = """\
    name: NAME
    asn: 64512
    address-space: [198.18.0.0/16]
    nodes: [{name: a}, {name: b}, {name: c}, {name: d}]
    links:
      - {between: [a, b], bandwidth: 1G, cost: 1}
      - {between: [b, c], bandwidth: 1G, cost: 1}
      - {between: [c, d], bandwidth: 1G, cost: 5}
      - {between: [a, d], bandwidth: 1G, cost: 1}
    slices:
      - {name: st, nodes: all, links: all, bandwidth: 100M}
      - name: oa
        nodes: all
        links: all
        bandwidth: 100M
        routing: ospf
        pseudo-devices: [{node: c, type: tun, name: oa0}]
      - {name: ob, nodes: all, links: all, bandwidth: 100M, routing: ospf, ospf: {hello: 1, dead: 3}}
      - {name: nn, nodes: all, links: all, bandwidth: 100M, routing: none}
"""
NODES = "abcd"
OSPF_SLICES = ("oa", "ob")
NEIGHBOURS = {"a": "bd", "b": "ac", "c": "bd", "d": "ac"}
CAPTURE_SECONDS = 4.0  # four hello intervals


@dataclass
class Ring:
    name: str
    path: str
    plan: object  # vispd.plan.Plan
    prefixes: dict

    def ns(self, node: str, slice_name: str | None = None) -> str:
        return f"vispd.{self.name}.{node}" + (f".{slice_name}" if slice_name else "")

    def loopback(self, slice_name: str, node: str) -> str:
        return self.plan.sliver(slice_name, node).loopback

    def link_address(self, slice_name: str, node: str, peer: str) -> str:
        """The address of `node`'s end of the virtual link toward `peer`."""
        return next(cidr.split("/")[0] for ifname, cidr, _ in self.plan.sliver(slice_name, node).interfaces
                    if ifname == f"v-{peer}")


def _missing() -> str | None:
    for tool in ("bird", "birdc", "tcpdump"):
        if shutil.which(tool) is None:
            return f"needs the '{tool}' binary (apt bird2, tcpdump)"
    return None


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("ospf")
    name = unique_name("oh")
    path = tmp / f"{name}.yaml"
    path.write_text(textwrap.dedent(RING).replace("NAME", name))
    topo = load_topology(str(path))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VISPD_STATE_DIR", str(tmp / "state"))
        try:
            vispd("up", str(path))
            yield Ring(name, str(path), compile_plan(topo), allocate_slice_prefixes(topo))
        finally:
            vispd("down", name, check=False)


# --- helpers ------------------------------------------------------------------------------------

def routes(ns: str) -> list[dict]:
    out = subprocess.run(["ip", "-j", "-n", ns, "route", "show", "table", "main"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def gateways(route: dict) -> set[str]:
    found = {route["gateway"]} if "gateway" in route else set()
    return found | {hop["gateway"] for hop in route.get("nexthops", []) if "gateway" in hop}


def route_to(ns: str, address: str) -> dict | None:
    """The route the kernel picks for `address` (longest prefix match: vispd's static
    routes cover several destinations with one prefix where they can); None if none does."""
    covering = [r for r in routes(ns) if r["dst"] != "default" and ip_address(address) in ip_network(r["dst"])]
    return max(covering, key=lambda r: ip_network(r["dst"]).prefixlen, default=None)


def via(ring: Ring, slice_name: str, node: str, dest: str) -> set[str]:
    """The next hops (link addresses) of `node`'s route to `dest`'s loopback."""
    route = route_to(ring.ns(node, slice_name), ring.loopback(slice_name, dest))
    return gateways(route) if route else set()


def birdc(ring: Ring, slice_name: str, node: str, *command: str) -> str:
    return subprocess.run(["birdc", "-s", f"/run/vispd/{ring.name}/ospf-{slice_name}-{node}.ctl", *command],
                          capture_output=True, text=True, timeout=10).stdout


def converged(ring: Ring) -> bool:
    return all(route_to(ring.ns(n, s), ring.loopback(s, d)) is not None
               for s in OSPF_SLICES for n in NODES for d in NODES if d != n)


def wait_converged(ring: Ring) -> None:
    assert wait_for(lambda: converged(ring), timeout=30, interval=0.2), "OSPF did not converge in 30 s"


def pings(ns: str, address: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-n", "-c1", "-W1", address],
                          capture_output=True).returncode == 0


def plan_is_clean(ring: Ring) -> bool:
    return vispd("plan", ring.name).stdout.strip().endswith("no changes")


def processes_in(ns: str) -> list[str]:
    """Command names of the processes running in namespace `ns`."""
    inode = os.stat(f"/run/netns/{ns}").st_ino
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                found.append(open(f"/proc/{entry}/comm").read().strip())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def link(ring: Ring, action: str, a: str, b: str) -> subprocess.CompletedProcess:
    return vispd("link", action, ring.name, a, b)


# --- tests (in this order: the first runs right after up) ---------------------------------------

def test_check_waits_for_ospf_and_does_not_judge_routing_none(ring):
    result = vispd("check", ring.name, "--timeout", "1", check=False)
    lines = result.stdout.splitlines()
    print("\n".join(line for line in lines if line.startswith("reach")))
    assert result.returncode == 0, result.stdout
    assert "reach st: 12/12 pairs ok" in lines
    for name in OSPF_SLICES:  # right after up, OSPF is usually still converging: check waits
        assert any(re.fullmatch(rf"reach {name}: 12/12 pairs ok( \(ospf converged within [\d.]+ s\))?", line)
                   for line in lines), result.stdout
    assert "reach nn: routing: none: reach not checked" in lines
    assert "cross-ping nn -> oa: ok (0/16 echoes answered)" in lines
    assert "isolation oa -> ob: ok (0 frames leaked, 16 controls seen)" in lines
    assert "isolation nn -> st: ok (0 frames leaked, 16 controls seen)" in lines
    assert lines[-1] == f"{ring.name}: ok"


def test_each_ospf_slice_learns_every_loopback_from_its_own_routers(ring):
    wait_converged(ring)
    for s in OSPF_SLICES:
        prefix = ring.prefixes[s]
        for node in NODES:
            ns = ring.ns(node, s)
            table = routes(ns)
            for dest in NODES:
                if dest != node:
                    route = route_to(ns, ring.loopback(s, dest))
                    assert route["protocol"] == "bird" and route["prefsrc"] == ring.loopback(s, node), route
            if node != "c":  # the TUN's subnet on c is a stub network, learned everywhere else
                tun = next(sub for n, _, sub in ring.plan.sliver("oa", "c").pseudo_devices if n == "oa0")
                assert (s == "oa") == any(r["dst"] == tun and r["protocol"] == "bird" for r in table)
            # routes never mix: every destination, next hop and source is this slice's own
            for route in table:
                assert ip_network(route["dst"]).subnet_of(prefix), (ns, route)
                assert all(ip_address(g) in prefix for g in gateways(route)), (ns, route)
                assert "prefsrc" not in route or ip_address(route["prefsrc"]) in prefix, (ns, route)
            neighbours = birdc(ring, s, node, "show", "ospf", "neighbors").splitlines()
            rows = [line.split() for line in neighbours if re.match(r"^\d+\.\d+\.\d+\.\d+\s", line)]
            assert sorted((row[0], row[2], row[4], row[5]) for row in rows) == sorted(
                (ring.loopback(s, peer), "Full/PtP", f"v-{peer}", ring.link_address(s, peer, node))
                for peer in NEIGHBOURS[node]), neighbours


def test_ospf_packets_stay_in_their_slice_and_are_never_multicast(ring, tmp_path):
    from scapy.layers.inet import IP
    from scapy.utils import rdpcap

    wait_converged(ring)
    places = [(ring.ns(n, s), s) for n in NODES for s in ("st", "oa", "ob", "nn")] + [(ring.ns(n), None) for n in NODES]
    captures = []
    try:
        for ns, _ in places:
            pcap, log = tmp_path / f"{ns}.pcap", open(tmp_path / f"{ns}.log", "w")
            proc = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-Z", "root", "-i", "any", "-U", "-n",
                                     "-w", str(pcap), "ip proto 89"], stdout=log, stderr=log)
            captures.append((ns, proc, pcap, tmp_path / f"{ns}.log"))
        assert wait_for(lambda: all("listening on" in log.read_text() for _, _, _, log in captures), timeout=15), \
            [log.read_text() for _, _, _, log in captures]
        time.sleep(CAPTURE_SECONDS)
    finally:
        for _, proc, _, _ in captures:
            proc.send_signal(signal.SIGINT)
        for _, proc, _, _ in captures:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    addresses = {s: {ring.loopback(s, n) for n in NODES}
                 | {cidr.split("/")[0] for n in NODES for _, cidr, _ in ring.plan.sliver(s, n).interfaces}
                 for s in ("st", "oa", "ob", "nn")}
    seen_per_slice: dict[str, int] = {}
    for (ns, slice_name), (_, _, pcap, _) in zip(places, captures):
        packets = [(p[IP].src, p[IP].dst) for p in rdpcap(str(pcap)) if IP in p and p[IP].proto == 89]
        assert not [d for _, d in packets if ip_address(d).is_multicast], (ns, packets)
        if slice_name in OSPF_SLICES:
            assert packets, f"{ns} saw no OSPF packet in {CAPTURE_SECONDS} s: the capture proves nothing"
            foreign = [(src, dst) for src, dst in packets
                       if src not in addresses[slice_name] or dst not in addresses[slice_name]]
            assert not foreign, f"{ns} saw another slice's OSPF packets: {foreign}"
            node = ns.split(".")[2]
            heard = {src for src, _ in packets}
            assert {ring.link_address(slice_name, p, node) for p in NEIGHBOURS[node]} <= heard, (ns, heard)
        elif slice_name is not None:
            assert packets == [], f"{ns} ({slice_name}, no OSPF) saw OSPF packets: {packets}"
        else:  # the substrate: each packet belongs to one OSPF slice, source and destination
            owners = [next((s for s in OSPF_SLICES if src in addresses[s] and dst in addresses[s]), None)
                      for src, dst in packets]
            assert None not in owners, (ns, [p for p, o in zip(packets, owners) if o is None])
            for owner in owners:
                seen_per_slice[owner] = seen_per_slice.get(owner, 0) + 1
    assert set(seen_per_slice) == set(OSPF_SLICES), seen_per_slice
    print(f"\nOSPF packets on the substrate in {CAPTURE_SECONDS} s: {seen_per_slice}")


def test_routing_none_has_connected_routes_only_and_no_bird(ring):
    for node in NODES:
        table = routes(ring.ns(node, "nn"))
        assert len(table) == 2 and all(
            r["protocol"] == "kernel" and r["scope"] == "link" and not gateways(r) for r in table), table
        assert "bird" not in processes_in(ring.ns(node, "nn"))
        assert "bird" not in processes_in(ring.ns(node, "st"))
        assert processes_in(ring.ns(node, "oa")).count("bird") == 1
        assert not os.path.exists(f"/run/vispd/{ring.name}/ospf-nn-{node}.ctl")
        assert {r["protocol"] for r in routes(ring.ns(node, "st"))} == {"kernel", "77"}


def test_link_down_moves_the_ospf_and_static_paths_and_link_up_restores_them(ring, tmp_path):
    wait_converged(ring)
    b_side = {s: ring.link_address(s, "b", "a") for s in ("st", "oa")}
    d_side = {s: ring.link_address(s, "d", "a") for s in ("st", "oa")}
    assert wait_for(lambda: via(ring, "oa", "a", "c") == {b_side["oa"]}, timeout=10), via(ring, "oa", "a", "c")
    assert via(ring, "st", "a", "c") == {b_side["st"]}
    c_oa, c_st = ring.loopback("oa", "c"), ring.loopback("st", "c")
    # an echo every 10 ms from a to c across the failure: its longest silence is the outage
    out = tmp_path / "ping.out"
    with open(out, "w") as handle:
        pinger = subprocess.Popen(["ip", "netns", "exec", ring.ns("a", "oa"), "ping", "-n", "-D", "-i", "0.01",
                                   "-w", "6", c_oa], stdout=handle, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.0)
        start = time.monotonic()
        link(ring, "down", "a", "b")
        returned = time.monotonic()
        # static: moved by the time the command returns
        assert via(ring, "st", "a", "c") == {d_side["st"]}
        assert pings(ring.ns("a", "st"), c_st)
        # OSPF: BIRD notices the lost carrier and recomputes within its tick
        assert wait_for(lambda: via(ring, "oa", "a", "c") == {d_side["oa"]}, timeout=10, interval=0.02), \
            via(ring, "oa", "a", "c")
        moved = time.monotonic() - start
        assert wait_for(lambda: pings(ring.ns("a", "oa"), c_oa), timeout=10)
        pinger.wait(timeout=15)
    finally:
        if pinger.poll() is None:
            pinger.kill()
            pinger.wait()
    stamps = [float(m) for m in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from", out.read_text(), re.M)]
    outage = max(b - a for a, b in zip(stamps, stamps[1:]))
    print(f"\nlink a-b down: `vispd link down` took {returned - start:.2f} s; OSPF route a->c moved "
          f"{moved:.2f} s after the command started; longest gap between echo replies {outage:.2f} s")
    assert outage < 10
    try:
        assert plan_is_clean(ring)
        for node in "ab":
            state = json.loads(subprocess.run(["ip", "-j", "-n", ring.ns(node), "link", "show",
                                               "to-b" if node == "a" else "to-a"],
                                              capture_output=True, text=True, check=True).stdout)[0]
            assert "UP" not in state["flags"]
    finally:
        start = time.monotonic()
        link(ring, "up", "a", "b")
    assert via(ring, "st", "a", "c") == {b_side["st"]}
    assert wait_for(lambda: via(ring, "oa", "a", "c") == {b_side["oa"]}, timeout=20, interval=0.05), \
        via(ring, "oa", "a", "c")
    print(f"link a-b up: OSPF route a->c back {time.monotonic() - start:.2f} s after the command started")
    assert pings(ring.ns("a", "st"), c_st)
    # routers recompute on their own ticks: a transient micro-loop may last up to a second
    assert wait_for(lambda: pings(ring.ns("a", "oa"), c_oa), timeout=10)
    assert plan_is_clean(ring)


def test_check_expects_nothing_over_failed_links(ring):
    wait_converged(ring)
    try:
        link(ring, "down", "a", "b")
        link(ring, "down", "b", "c")  # b is cut off from a, c and d in every slice
        result = vispd("check", ring.name, "--timeout", "1", check=False)  # OSPF is still rerouting
        lines = result.stdout.splitlines()
        print("\n".join(line for line in lines if line.startswith("reach")))
        assert result.returncode == 0, result.stdout
        assert "links down: a-b, b-c (their virtual links are not expected to carry anything)" in lines
        assert "reach st: 6/6 pairs ok; 6 pairs cut off by failed links: unreachable by design" in lines
        for name in OSPF_SLICES:
            assert any(re.fullmatch(rf"reach {name}: 6/6 pairs ok( \(ospf converged within [\d.]+ s\))?; "
                                    r"6 pairs cut off by failed links: unreachable by design", line)
                       for line in lines), result.stdout
        assert "isolation oa -> ob: ok (0 frames leaked, 8 controls seen)" in lines
        assert plan_is_clean(ring)
    finally:
        link(ring, "up", "a", "b")
        link(ring, "up", "b", "c")
    assert plan_is_clean(ring)
