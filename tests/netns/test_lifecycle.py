"""The vISP's life cycle on the real kernel, driven through the CLI as a user would:
up builds, a second up changes nothing, a changed cost changes only routes, a TUN packet
crosses the vISP, exec runs unprivileged, down removes exactly what vispd made, and an up
killed midway is repaired by the next up or cleaned by down."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, renamed_topology, unique_name, vispd

pytestmark = pytest.mark.root

SYSTEM_PYTHON = "/usr/bin/python3"  # the slice user cannot read root's pyenv interpreter


def namespaces(prefix: str) -> list[str]:
    return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix)) if os.path.isdir("/run/netns") else []


def name_of(path: str) -> str:
    return os.path.basename(path)[: -len(".yaml")]


def assert_delay_section(planned: list[str]) -> None:
    """`vispd plan` of Abilene opens with its 14 geographic link delays and how they are
    realised (this machine: the delay line)."""
    assert planned[0] == "link delays (14 links, one way):", planned[:2]
    assert all(re.fullmatch(r"  [a-z-]+-[a-z-]+ +[\d.]+ms \(geo\) by delay line \(delay-[a-z-]+, delay-[a-z-]+\)", line)
               for line in planned[1:15]), planned[1:15]


def test_up_builds_every_sliver_and_second_up_changes_nothing(deployed):
    path = deployed(prefix="tn")
    name = name_of(path)
    found = namespaces(f"vispd.{name}.")
    # 11 node namespaces, 11 plb slivers, 8 research slivers, 2 providers and the Internet,
    # the public underlay and a client host for each of plb's 3 remote access points
    assert len(found) == 37
    assert f"vispd.{name}.seattle.plb" in found and f"vispd.{name}.seattle.research" not in found
    again = vispd("up", path)
    assert again.stdout.strip() == f"{name}: no changes"
    assert vispd("plan", path).stdout.strip().endswith("no changes")
    status = json.loads(vispd("status", name, "--json").stdout)
    assert status["in_sync"] is True
    assert sum(s["present"] for s in status["slivers"]) == 19


def test_exec_runs_as_the_slice_user_without_capabilities(deployed):
    path = deployed(prefix="tn")
    name = name_of(path)
    out = vispd("exec", name, "plb", "seattle", "--", "sh", "-c",
                "id -u; id -G; grep -E '^Cap(Eff|Prm)' /proc/self/status").stdout.split("\n")
    status = json.loads(vispd("status", name, "--json").stdout)
    uid = next(s["uid"] for s in status["slivers"] if s["slice"] == "plb")
    assert 60000 <= uid < 64000
    assert out[0] == str(uid) and out[1] == str(uid)
    assert "CapEff:\t0000000000000000" in out and "CapPrm:\t0000000000000000" in out
    # unprivileged ping (ICMP datagram socket) to new-york's loopback, four hops away
    nyc = next(s for s in status["slivers"] if s["slice"] == "plb" and s["node"] == "new-york")
    ping = vispd("exec", name, "plb", "seattle", "--", "ping", "-c1", "-W2", nyc["loopback"])
    assert "1 received" in ping.stdout
    # the slice user cannot change its sliver's network configuration
    denied = vispd("exec", name, "plb", "seattle", "--", "ip", "route", "add", "10.99.0.0/24", "dev", "lo",
                   check=False)
    assert denied.returncode != 0


def test_tun_packet_written_on_seattle_reaches_new_york_and_back(deployed):
    path = deployed(prefix="tn")
    name = name_of(path)
    status = json.loads(vispd("status", name, "--json").stdout)
    seattle = next(s for s in status["slivers"] if s["slice"] == "plb" and s["node"] == "seattle")
    nyc = next(s for s in status["slivers"] if s["slice"] == "plb" and s["node"] == "new-york")
    tun = next(d for d in seattle["pseudo_devices"] if d["type"] == "tun")
    network = tun["subnet"].split("/")[0]
    program_address = network[: network.rfind(".") + 1] + str(int(network.rsplit(".", 1)[1]) + 2)
    result = vispd("exec", name, "plb", "seattle", "--", SYSTEM_PYTHON, "tests/netns/tun_ping.py",
                   tun["name"], program_address, nyc["loopback"], "3")
    assert result.stdout.strip() == f"reply from {nyc['loopback']} to {program_address}"
    # research has no such device, and its user cannot create one
    denied = vispd("exec", name, "research", "denver", "--", SYSTEM_PYTHON, "tests/netns/tun_ping.py",
                   tun["name"], program_address, nyc["loopback"], "1", check=False)
    assert denied.returncode != 0


def test_changing_a_link_cost_changes_only_routes(deployed, tmp_path, state_dir):
    path = deployed(prefix="tn")
    name = name_of(path)
    text = open(path).read()
    edited = text.replace("{between: [seattle, denver],           bandwidth: 1G, cost: 16,",
                          "{between: [seattle, denver],           bandwidth: 1G, cost: 60,")
    assert edited != text
    open(path, "w").write(edited)
    manager_pid = (state_dir / name / "run" / "egress-manager.pid").read_text().split()[0]
    planned = vispd("plan", path).stdout.strip().split("\n")
    assert_delay_section(planned)
    changes, summary = planned[15:-1], planned[-1]
    # routes (aggregated per next hop: some are re-cut into other prefixes), and the egress
    # manager's copy of the path costs (reloaded in place, not restarted)
    assert changes and all(line[:8] in ("~ route ", "+ route ", "- route ") for line in changes[:-1]), changes
    assert changes[-1] == "~ daemon egress-manager in the host namespace"
    counts = {a: sum(1 for line in changes if line[0] == s) for a, s in (("create", "+"), ("update", "~"),
                                                                         ("delete", "-"))}
    assert summary == ", ".join(f"{counts[a]} to {a}" for a in ("create", "update", "delete") if counts[a])
    assert "to update" in vispd("up", path).stdout
    assert (state_dir / name / "run" / "egress-manager.pid").read_text().split()[0] == manager_pid
    # seattle now reaches denver through sunnyvale, not over the direct link
    status = json.loads(vispd("status", name, "--json").stdout)
    denver = next(s for s in status["slivers"] if s["slice"] == "plb" and s["node"] == "denver")
    route = subprocess.run(["ip", "-n", f"vispd.{name}.seattle.plb", "route", "get", denver["loopback"]],
                           capture_output=True, text=True, check=True).stdout
    assert "dev v-snva" in route
    assert vispd("up", path).stdout.strip() == f"{name}: no changes"


def _vispd_links_in_root_namespace(name: str) -> list[str]:
    out = subprocess.run(["ip", "-d", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if f"vispd:{name}" in line]


def test_down_removes_exactly_what_vispd_created(deployed, tmp_path, state_dir):
    path = deployed(prefix="tn")
    name = name_of(path)
    # a process a slice left running, and a look-alike namespace vispd did not create
    sleeper = subprocess.Popen([sys.executable, "-m", "vispd.cli", "exec", name, "plb", "denver", "--",
                                "sleep", "300"], cwd=ROOT)
    intruder = f"vispd.{name}.intruder"
    subprocess.run(["ip", "netns", "add", intruder], check=True)
    try:
        time.sleep(0.3)
        down = vispd("down", path)
        assert "removed 37 namespaces" in down.stdout
        assert namespaces(f"vispd.{name}.") == [intruder]
        assert sleeper.wait(timeout=5) != 0  # terminated with its sliver
        assert _vispd_links_in_root_namespace(name) == []
        assert not (state_dir / name).exists()
        # the look-alike is untouched: no vispd marker, not in the journal
        assert subprocess.run(["ip", "-n", intruder, "link", "show", "lo"], capture_output=True).returncode == 0
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        subprocess.run(["ip", "netns", "del", intruder])


def test_up_refuses_a_namespace_it_does_not_own(tmp_path, state_dir):
    name = unique_name("tn")
    path = renamed_topology(tmp_path, os.path.join(ROOT, "topologies", "abilene.yaml"), name)
    squatter = f"vispd.{name}.chicago"
    subprocess.run(["ip", "netns", "add", squatter], check=True)
    try:
        result = vispd("up", path, check=False)
        assert result.returncode == 1
        assert "not created by vispd" in result.stderr and squatter in result.stderr
        assert namespaces(f"vispd.{name}.") == [squatter]
    finally:
        vispd("down", name, check=False)
        subprocess.run(["ip", "netns", "del", squatter])


def test_up_killed_midway_is_repaired_by_the_next_up_and_cleaned_by_down(tmp_path, state_dir):
    name = unique_name("tn")
    path = renamed_topology(tmp_path, os.path.join(ROOT, "topologies", "abilene.yaml"), name)
    try:
        for attempt in range(2):
            proc = subprocess.Popen([sys.executable, "-m", "vispd.cli", "up", path], cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while len(namespaces(f"vispd.{name}.")) < 10 + 10 * attempt and time.monotonic() < deadline:
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            planned = vispd("plan", path).stdout.strip().split("\n")[-1]
            if attempt == 0:
                assert planned != "no changes", "the kill came too late to test a partial up"
                repaired = vispd("up", path)
                assert "to create" in repaired.stdout or "to update" in repaired.stdout
                assert vispd("plan", path).stdout.strip().split("\n")[15:] == ["no changes"]
                assert vispd("up", path).stdout.strip() == f"{name}: no changes"
                vispd("down", path)
        # second round: killed midway, then down alone leaves nothing
        vispd("down", path)
        assert namespaces(f"vispd.{name}.") == []
    finally:
        vispd("down", name, check=False)
