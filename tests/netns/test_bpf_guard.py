"""The node's BPF guard on a real line of namespaces (root): the isolation cases of `vispd
check` under each guard (the nftables one for comparison), HTB classes fed by the BPF
classifier, guarantees under a flood, a hostile `routing: own` slice (issue 14), and
apply/observe/delete touching only what is ours.

The line (bench/guardline.py): nodes a-b-c-d, 100 Mbit/s substrate links; kernel-path
slices k1 (40M) and k2 (30M) on private macvlans; own slices o1 (10M, the hostile one) and
o2 (10M) on per-link veths steered by the node. Namespaces are hbt<random>.*, removed
after the module, with every process started (by PID).
"""
from __future__ import annotations

import os
import secrets
import subprocess
import time
import uuid

import pytest

from bench import guardline as gl
from dataplane.bpf import detect, hooks, loader, node as bpfnode, spec, syscall
from dataplane import netns

from guard_probes import Iperf, Sniffer, class_packets, finish, send_raw, send_udp, spray, udp_frame

pytestmark = pytest.mark.root

CAPACITY = 100_000_000
SLICES = [gl.SliceSpec("k1", 40_000_000), gl.SliceSpec("k2", 30_000_000),
          gl.SliceSpec("o1", 10_000_000, own=True), gl.SliceSpec("o2", 10_000_000, own=True)]
SETTLE = 0.3  # seconds for the last frames to reach the sniffers


def bpf_modes() -> list:
    capability = detect.available()
    reasons = {mode: detect.hook_works(mode) if capability.ok else capability.reason for mode in hooks.MODES}
    return [pytest.param(mode, marks=pytest.mark.skipif(reasons[mode] is not None, reason=f"{mode}: {reasons[mode]}"))
            for mode in hooks.MODES]


@pytest.fixture(scope="module")
def line():
    if subprocess.run(["which", "iperf3", "nsenter", "setpriv"], capture_output=True).returncode:
        pytest.skip("needs iperf3, nsenter and setpriv")
    built = gl.build(f"hbt{uuid.uuid4().hex[:5]}", CAPACITY, SLICES)
    try:
        yield built
    finally:
        gl.teardown(built)


def slivers(line, names=None):
    return [(sl.name, node, line.sliver(sl.name, node)) for sl in line.slices
            if names is None or sl.name in names for node in gl.NODES]


def addresses(line, slice_name: str) -> list[str]:
    out = [line.loopback(slice_name, n) for n in gl.NODES]
    return out + [line.link_address(slice_name, n, p) for n in gl.NODES for p in gl.peers(n)]


def isolation_round(line, spraying: list[str]) -> tuple[list[str], set, set]:
    """Every sliver of `spraying` sprays as an unprivileged user what `vispd check` sprays;
    sniffers everywhere. Returns (leaks, controls expected, controls seen)."""
    marker = "hb-" + secrets.token_hex(6)
    sniffers = {ns: (name, Sniffer(ns)) for name, _, ns in slivers(line)}
    expected, procs = set(), []
    try:
        for name, node, ns in slivers(line, spraying):
            others = [a for o in line.slices if o.name != name for a in addresses(line, o.name)]
            controls = [line.link_address(name, p, node) for p in gl.peers(node)]
            expected |= {(name, node, c) for c in controls}
            procs.append(spray(ns, marker, name, node, others, controls))
        for proc in procs:
            assert sum(finish(proc)["sent"].values()) > 0
        time.sleep(SETTLE)
        leaks, seen = [], set()
        for ns, (name, sniffer) in sniffers.items():
            for tag in sniffer.tags(marker):
                if tag["slice"] != name:
                    leaks.append(f"{ns} got {tag['kind']} from {tag['slice']}@{tag['node']} on {tag['if']}")
                elif tag["kind"] == "control":
                    seen.add((tag["slice"], tag["node"], tag["detail"]))
        return leaks, expected, seen
    finally:
        for _, sniffer in sniffers.values():
            sniffer.close()


@pytest.mark.parametrize("guard", ["nft", *bpf_modes()])
def test_check_isolation_cases(line, guard):
    """Broadcast, multicast and cross-slice unicast reach no other slice; same-slice
    unicast passes, under the nftables guard and the BPF guard alike."""
    gl.use_guard(line, guard)
    spraying = ["k1", "k2"] if guard == "nft" else ["k1", "k2", "o1", "o2"]  # own slices need the BPF guard
    leaks, expected, seen = isolation_round(line, spraying)
    assert leaks == []
    assert expected - seen == set(), "same-slice datagrams lost"


@pytest.mark.parametrize("guard", ["nft", *bpf_modes()])
def test_htb_classes_get_their_slices_traffic(line, guard):
    gl.use_guard(line, guard)
    ns = line.node_ns("a")
    before = class_packets(ns, "to-b")
    send_udp(line.sliver("k2", "a"), line.loopback("k2", "a"), line.loopback("k2", "d"), 300, "hb-count")
    if guard != "nft":
        send_udp(line.sliver("o2", "a"), line.loopback("o2", "a"), line.loopback("o2", "d"), 200, "hb-count")
    time.sleep(0.2)
    after = class_packets(ns, "to-b")
    grew = {minor: after[minor] - before.get(minor, 0) for minor in after}
    assert grew[line.classid("k2")] >= 300
    assert grew[line.classid("k1")] < 20 and grew[0xFFFF] < 20
    if guard != "nft":
        assert 200 <= grew[line.classid("o2")] < 260  # its datagrams and the odd ARP


def guaranteed_tcp_under_flood(line, guard: str, flooder: str, victim: str) -> float:
    """Mbit/s of the victim's TCP flow a->d while the flooder sends 200M of UDP a->d."""
    gl.use_guard(line, guard)
    iperf = Iperf()
    try:
        for name in (flooder, victim):
            iperf.server(line.sliver(name, "d"), line.loopback(name, "d"))
        flood = iperf.client(line.sliver(flooder, "a"), line.loopback(flooder, "a"), line.loopback(flooder, "d"),
                             5, udp_rate="200M")
        time.sleep(0.5)
        tcp = iperf.client(line.sliver(victim, "a"), line.loopback(victim, "a"), line.loopback(victim, "d"), 3)
        mbps = Iperf.mbps(tcp, timeout=20)
        Iperf.mbps(flood, timeout=20)
        return mbps
    finally:
        iperf.stop()


@pytest.mark.parametrize("guard", bpf_modes()[:1])
@pytest.mark.parametrize("flooder,victim", [("k1", "k2"), ("o1", "k2"), ("o1", "o2")])
def test_guarantee_holds_under_a_flood(line, guard, flooder, victim):
    rate = line.slice(victim).rate / 1e6
    mbps = guaranteed_tcp_under_flood(line, guard, flooder, victim)
    assert mbps >= 0.8 * rate, f"{victim} got {mbps:.1f} Mbit/s of its {rate:.0f} under {flooder}'s flood"


def hostile_frames(line, marker: str) -> list[bytes]:
    """What o1@b sends toward c: frames posing as k1 and o2 (their MACs and addresses),
    broadcast and multicast, 40 of each."""
    frames = []
    for victim in ("k1", "o2"):
        src_mac, dst_mac = line.mac(victim, "b", "c"), line.mac(victim, "c", "b")
        src_ip = line.link_address(victim, "b", "c")
        for dst_ip in (line.link_address(victim, "c", "b"), line.loopback(victim, "c"), line.loopback(victim, "d")):
            frames.append(udp_frame(dst_mac, src_mac, src_ip, dst_ip, f"{marker}|pose|{victim}|b|{dst_ip}\n".encode()))
    frames.append(udp_frame("ff:ff:ff:ff:ff:ff", line.mac("k1", "b", "c"), line.loopback("k1", "b"),
                            "255.255.255.255", f"{marker}|broadcast|o1|b|x\n".encode()))
    frames.append(udp_frame("01:00:5e:00:00:05", line.mac("o2", "b", "c"), line.loopback("o2", "b"),
                            "224.0.0.5", f"{marker}|multicast|o1|b|x\n".encode()))
    return frames * 40


@pytest.mark.parametrize("guard", bpf_modes())
def test_hostile_own_slice_gets_nothing_into_other_slices(line, guard):
    """o1 is root in its sliver on b: it takes k1's MAC on its link to c, adds a macvlan
    with o2's MAC, and sends raw frames with k1's and o2's MACs and addresses, broadcast and
    multicast. None reaches k1, k2 or o2 anywhere; o1's own peer gets them (rewritten)."""
    gl.use_guard(line, guard)
    hostile = line.sliver("o1", "b")
    marker = "hb-" + secrets.token_hex(6)
    sniffers = {ns: (name, Sniffer(ns)) for name, _, ns in slivers(line)}
    ip = ["ip", "-n", hostile]
    try:
        subprocess.run(ip + ["link", "set", "v-c", "address", line.mac("k1", "b", "c")], check=True)
        subprocess.run(ip + ["link", "add", "link", "v-c", "name", "evil", "address", line.mac("o2", "b", "c"),
                             "up", "type", "macvlan", "mode", "bridge"], check=True)
        frames = hostile_frames(line, marker)
        sent = send_raw(hostile, "v-c", frames) + send_raw(hostile, "evil", frames) + send_raw(hostile, "v-a", frames)
        assert sent == 3 * len(frames)
        time.sleep(SETTLE)
        got = {ns: (name, sniffer.tags(marker)) for ns, (name, sniffer) in sniffers.items()}
    finally:
        subprocess.run(ip + ["link", "del", "evil"], capture_output=True)
        subprocess.run(ip + ["link", "set", "v-c", "address", line.mac("o1", "b", "c")], check=True)
        for _, sniffer in sniffers.values():
            sniffer.close()
    leaks = [f"{ns}: {t['kind']} {t['src']}->{t['dst']} on {t['if']}" for ns, (name, tags) in got.items()
             if name != "o1" for t in tags]
    assert leaks == []
    at_peer = got[line.sliver("o1", "c")][1]
    assert len(at_peer) >= 2 * len(frames)  # from v-c and from the macvlan on it
    assert {(t["src"], t["dst"]) for t in at_peer} == {(line.mac("o1", "b", "c"), line.mac("o1", "c", "b"))}


@pytest.mark.parametrize("guard", bpf_modes())
def test_apply_is_idempotent_and_delete_leaves_others_programs(line, guard):
    gl.use_guard(line, guard)
    ns = line.node_ns("b")
    guard_b = gl.node_guard(line, "b")
    assert bpfnode.pending(guard_b, guard) == []
    assert bpfnode.apply(guard_b, guard) == []
    found = bpfnode.observe(ns, guard)
    assert sorted(found) == sorted((p.ifname, p.hook) for p in spec.programs(guard_b, lambda n: 1))
    maps = bpfnode.contents(ns, guard, "to-c", "egress")
    assert maps == {"vispd_pairs": spec.egress_entries(guard_b, guard_b.devices[1])}
    foreign = spec.Program("to-c", "ingress", "e", {})  # someone else's program, by name
    fd = syscall.prog_load(syscall.PROG_SCHED_CLS, loader.code(foreign, _empty_map()), "not_vispd")
    try:
        with netns.entered(ns), hooks.opened(guard) as where:
            if guard == "tcx":
                where.attach("lo", "ingress", fd, "not_vispd", replacing=None)
            else:
                where.ipr.tc("add", "clsact", 1)
                where.ipr.tc("add-filter", "bpf", 1, handle=7, prio=9, parent=hooks.CLSACT_PARENTS["ingress"],
                             fd=fd, name="not_vispd", direct_action=True)
        removed = bpfnode.delete(ns, guard)
        assert sorted(removed) == sorted(f"{i}/{h}" for i, h in found)
        assert bpfnode.observe(ns, guard) == {}
        with netns.entered(ns), hooks.opened(guard) as where:
            assert where.names("lo", "ingress") == ["not_vispd"]
    finally:
        os.close(fd)
        with netns.entered(ns), hooks.opened(guard) as where:
            if guard == "tcx":
                where.detach("lo", "ingress", "not_vispd")
            else:
                where.ipr.tc("del", "clsact", 1)
        gl.use_guard(line, guard)


@pytest.mark.parametrize("guard", bpf_modes())
def test_a_changed_guard_is_swapped_in_place(line, guard):
    """Adding the own slices changes every egress program's map: each is replaced where it
    sits (one program of ours per hook, never none), and the own slices then reach across."""
    gl.use_guard(line, guard, with_own=False)
    ns = line.node_ns("b")
    todo = bpfnode.pending(gl.node_guard(line, "b"), guard)
    with netns.entered(ns), hooks.opened(guard) as where:
        before = where.prog_ids("to-c", "egress")
    changed = bpfnode.apply(gl.node_guard(line, "b"), guard)
    assert {"to-c/egress", "to-c/ingress", "oo1-c/ingress", "oo2-a/ingress"} <= set(changed)
    assert sorted(todo) == sorted(changed)
    with netns.entered(ns), hooks.opened(guard) as where:
        after = where.prog_ids("to-c", "egress")
    assert len(after) == 1 and set(after.values()).isdisjoint(before.values())
    for node in ("a", "c", "d"):
        bpfnode.apply(gl.node_guard(line, node), guard)
    ping = subprocess.run(["ip", "netns", "exec", line.sliver("o2", "a"), "ping", "-c", "1", "-W", "2",
                           line.loopback("o2", "d")], capture_output=True)
    assert ping.returncode == 0
    assert bpfnode.apply(gl.node_guard(line, "b"), guard) == []


def _empty_map() -> int:
    fd = syscall.map_create(syscall.MAP_HASH, 12, 4, 1, "not_vispd")
    return fd
