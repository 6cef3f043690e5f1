"""vispd with the node's BPF guard (root; issue 12 part 2): where the kernel runs tc BPF,
`vispd up` guards and classifies with it — no nftables table, no u32 filter — `vispd
check` passes unchanged, `status` is in sync, the border's source guard (BCP 38) and its
classes by source prefix work; switching between the BPF guard and the nftables fallback
($VISPD_BPF) is an ordinary reconcile that touches nobody else's programs, and `down`
removes everything."""
from __future__ import annotations

import os
import subprocess
import textwrap
import uuid

import pytest

from compiler.loader import load_topology
from compiler.resources import BpfGuard, Shaping
from conftest import vispd, wait_for
from dataplane import netns
from dataplane.bpf import asm, detect, hooks, node as bpfnode, spec, syscall
from vispd.engine import node_guard, topology_plan

from guard_probes import class_packets

pytestmark = pytest.mark.root
INTERNET_HOST = "203.0.113.10"


@pytest.fixture(scope="module", autouse=True)
def bpf_guard():
    capability = detect.available()
    if not capability.ok:
        pytest.skip(f"no BPF guard here: {capability.reason}")
    return capability.mode


def name_of(path: str) -> str:
    return os.path.basename(path)[: -len(".yaml")]


def nft_tables(ns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"], capture_output=True, text=True).stdout


def filters(ns: str, ifname: str) -> str:
    return subprocess.run(["tc", "-n", ns, "filter", "show", "dev", ifname], capture_output=True, text=True).stdout


def guards_of(plan) -> list[BpfGuard]:
    return [r for r in plan.resources if isinstance(r, BpfGuard)]


def test_up_guards_abilene_with_bpf_and_check_passes_unchanged(deployed, bpf_guard):
    path = deployed(prefix="hp")
    name = name_of(path)
    plan = topology_plan(load_topology(path))
    guards = guards_of(plan)
    assert node_guard() == f"bpf-{bpf_guard}" and len(guards) == 11 and all(g.hook == bpf_guard for g in guards)
    for guard in guards:
        assert "netdev vispd" not in nft_tables(guard.ns)
        assert bpfnode.pending(spec.node_guard(guard.ns, guard.devices), bpf_guard) == []
    for shaping in (r for r in plan.resources if isinstance(r, Shaping) and r.ns.startswith(f"vispd.{name}.")
                    and not r.ns.startswith(f"vispd.{name}.+")):
        assert "u32" not in filters(shaping.ns, shaping.ifname), shaping.describe()
    result = vispd("check", path)
    lines = result.stdout.splitlines()
    for expected in ("reach plb: 110/110 pairs ok", "reach research: 56/56 pairs ok",
                     "isolation plb -> research: ok (0 frames leaked, 46 controls seen)",
                     "isolation research -> plb: ok (0 frames leaked, 46 controls seen)",
                     "egress plb: 11/11 slivers reach 203.0.113.10", f"{name}: ok"):
        assert expected in lines, result.stdout
    assert "in sync with its plan" in vispd("status", name).stdout
    assert "no changes" in vispd("plan", name).stdout


def test_the_border_classes_a_slices_packets_to_a_provider_by_their_source(deployed):
    """On washington's access link to mae-east, plb's packets land in plb's HTB class
    (the classifier by source prefix), the border's own BGP packets in the default class."""
    path = deployed(prefix="hp")
    name = name_of(path)
    plan = topology_plan(load_topology(path))
    shaping = next(r for r in plan.resources if isinstance(r, Shaping) and r.ifname == "x-mae-east")
    plb = next(c.classid for c in shaping.classes if c.label == "plb")
    sliver, ns = f"vispd.{name}.washington.plb", f"vispd.{name}.washington"
    ping = ["ip", "netns", "exec", sliver, "ping", "-c", "1", "-W", "1", INTERNET_HOST]
    assert wait_for(lambda: subprocess.run(ping, capture_output=True).returncode == 0, timeout=30)

    def measured() -> dict:
        """How many packets each class sent while plb pinged the Internet host 50 times."""
        before = class_packets(ns, "x-mae-east")
        subprocess.run(["ip", "netns", "exec", sliver, "ping", "-c", "50", "-i", "0.01", "-q", INTERNET_HOST],
                       capture_output=True)
        return {minor: count - before.get(minor, 0) for minor, count in class_packets(ns, "x-mae-east").items()}

    # while the providers' tables still arrive, the egress manager may steer the Internet host
    # through sunnyvale for a moment (it is then at one egress only) and the border acknowledges
    # the table's packets: measure once plb's pings all leave here and the border is quiet
    grew: dict = {}

    def settled() -> bool:
        grew.update(measured())
        return grew.get(plb, 0) >= 50 and grew.get(0xFFFF, 0) < 20
    assert wait_for(settled, timeout=30), grew   # < 20 in the default class: keepalives, BFD, the odd update


def test_a_slice_cannot_pick_another_slices_class_with_so_priority(deployed):
    """HTB takes skb->priority as the class before any filter: a slice's unprivileged
    process may set 0-6 only (the kernel's rule without CAP_NET_ADMIN), never 1:x; and
    the BPF guard overwrites whatever it set."""
    path = deployed(prefix="hp")
    name = name_of(path)
    plan = topology_plan(load_topology(path))
    other = next(c.classid for r in plan.resources if isinstance(r, Shaping) for c in r.classes if c.label == "research")
    probe = textwrap.dedent(f"""
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, 6)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, {0x10000 | other})
            print("allowed")
        except PermissionError:
            print("refused")
    """)
    result = vispd("exec", name, "plb", "denver", "--", "python3", "-c", probe)
    assert result.stdout.strip() == "refused", result.stdout + result.stderr


def small_topology(tmp_path, name: str) -> str:
    text = textwrap.dedent(f"""
        name: {name}
        asn: 64512
        address-space: [198.18.0.0/16]
        nodes: [{{name: a}}, {{name: b}}, {{name: c}}]
        links:
          - {{between: [a, b], bandwidth: 1G}}
          - {{between: [b, c], bandwidth: 1G}}
        slices:
          - {{name: s1, nodes: all, links: all, bandwidth: 300M}}
          - {{name: s2, nodes: all, links: all, bandwidth: 200M}}
    """)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def foreign_program(ns: str, mode: str, ifname: str) -> int:
    """Someone else's program (not named like ours) on the device's egress; its descriptor."""
    fd = syscall.prog_load(syscall.PROG_SCHED_CLS, asm.assemble([asm.mov(asm.R0, 0), asm.exit_()]), "hpforeign")
    with netns.entered(ns), hooks.opened(mode) as where:
        if mode == "tcx":
            where.attach(ifname, "egress", fd, "hpforeign", replacing=None)
        else:
            where.ipr.tc("add", "clsact", where._index(ifname))
            where.ipr.tc("add-filter", "bpf", where._index(ifname), handle=7, prio=9,
                         parent=hooks.CLSACT_PARENTS["egress"], fd=fd, name="hpforeign", direct_action=True)
    return fd


def programs_on(ns: str, mode: str, ifname: str) -> list[str]:
    with netns.entered(ns), hooks.opened(mode) as where:
        return where.names(ifname, "egress")


def test_switching_to_the_fallback_and_back_is_a_reconcile(tmp_path, state_dir, bpf_guard, monkeypatch):
    name = f"hp{uuid.uuid4().hex[:6]}"
    path = small_topology(tmp_path, name)
    ns = f"vispd.{name}.b"
    fd = None
    try:
        off = dict(os.environ, VISPD_BPF="off")
        vispd("up", path, env=off)
        assert "netdev vispd" in nft_tables(ns) and "u32" in filters(ns, "to-a")
        assert bpfnode.observe(ns, bpf_guard) == {}
        assert "in sync with its plan" in vispd("status", name, env=off).stdout
        fd = foreign_program(ns, bpf_guard, "to-a")
        up = vispd("up", path, "-v")  # the machine's default: the BPF guard
        assert "~ shaping" in up.stdout and "- isolation filter" in up.stdout and "+ BPF guard" in up.stdout, up.stdout
        assert "netdev vispd" not in nft_tables(ns) and "u32" not in filters(ns, "to-a")
        assert sorted(bpfnode.observe(ns, bpf_guard)) == [("to-a", "egress"), ("to-c", "egress")]
        assert "hpforeign" in programs_on(ns, bpf_guard, "to-a")
        assert "in sync with its plan" in vispd("status", name).stdout
        assert "no changes" in vispd("up", path).stdout
        check = vispd("check", path).stdout.splitlines()
        assert "isolation s1 -> s2: ok (0 frames leaked, 8 controls seen)" in check, check
        back = vispd("up", path, "-v", env=off)
        assert "- BPF guard" in back.stdout and "+ isolation filter" in back.stdout, back.stdout
        assert bpfnode.observe(ns, bpf_guard) == {} and "netdev vispd" in nft_tables(ns)
        assert programs_on(ns, bpf_guard, "to-a") == ["hpforeign"]  # ours went, theirs stayed
    finally:
        if fd is not None:
            os.close(fd)
        vispd("down", path, check=False)
    assert not netns.list_names(f"vispd.{name}.")


def kernel_ids(ns: str, mode: str) -> set[tuple[str, int]]:
    """("prog" | "map", id) of our programs in `ns` and of the maps they hold."""
    ids = set()
    with netns.entered(ns), hooks.opened(mode) as where:
        for ifname in ("to-a", "to-c"):
            for name, prog_id in where.prog_ids(ifname, "egress").items():
                if spec.parse_program_name(name):
                    ids.add(("prog", prog_id))
                    fd = syscall.prog_fd_by_id(prog_id)
                    try:
                        ids |= {("map", map_id) for map_id in syscall.prog_info(fd)["map_ids"]}
                    finally:
                        os.close(fd)
    return ids


def still_in_kernel(kind: str, obj_id: int) -> bool:
    try:
        fd = (syscall.prog_fd_by_id if kind == "prog" else syscall.map_fd_by_id)(obj_id)
    except syscall.BpfError:
        return False
    os.close(fd)
    return True


def test_down_frees_every_program_and_map(tmp_path, state_dir, bpf_guard):
    """Nothing is pinned: once `down` removed the namespaces, the kernel frees the programs
    and their maps (checked by id)."""
    name = f"hp{uuid.uuid4().hex[:6]}"
    path = small_topology(tmp_path, name)
    try:
        vispd("up", path)
        ids = kernel_ids(f"vispd.{name}.b", bpf_guard)
        assert len([i for i in ids if i[0] == "prog"]) == 2 and len(ids) == 4
        assert all(still_in_kernel(*i) for i in ids)
        assert f"{name}: removed" in vispd("down", path).stdout
    finally:
        vispd("down", path, check=False)
    assert not netns.list_names(f"vispd.{name}.")
    assert wait_for(lambda: not any(still_in_kernel(*i) for i in ids), timeout=20)  # netns cleanup is asynchronous
