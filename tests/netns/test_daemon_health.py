"""Failures nobody reported: a provider daemon killed, one that runs but does not serve, and
a foreign process on a daemon's port. `status` and `check` must show them, `up` must repair
what it can and, where a foreign process holds the port, fail naming it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import unique_name, vispd, wait_for

pytestmark = pytest.mark.root

TOPOLOGY = """\
name: NAME
asn: 64512
address-space: [198.18.0.0/16]
nodes: [{name: a}, {name: b}]
links: [{between: [a, b], bandwidth: 1G}]
providers:
  - {name: up, node: a, asn: 65101, bandwidth: 1G, peering: 192.0.2.0/28}
slices:
  - {name: s, prefix: 198.18.0.0/22, bandwidth: 100M, egress: [up]}
"""


@pytest.fixture
def lab(tmp_path, state_dir):
    name = unique_name("th")
    path = tmp_path / f"{name}.yaml"
    path.write_text(TOPOLOGY.replace("NAME", name))
    vispd("up", str(path))
    yield name, state_dir / name / "run"
    vispd("down", str(path), check=False)


def bird_pid(run) -> int:
    return int((run / "bird-up.pid").read_text().split()[0])


def daemons(name: str) -> dict:
    status = json.loads(vispd("status", name, "--json", check=False).stdout)
    return {d["name"]: d for d in status["daemons"]}


def test_a_killed_provider_is_reported_by_status_and_check_and_restarted_by_up(lab):
    name, run = lab
    os.kill(bird_pid(run), signal.SIGKILL)
    assert wait_for(lambda: daemons(name)["bird-up"]["problem"] == "not running", timeout=10)
    assert vispd("status", name, check=False).returncode == 1
    check = vispd("check", name, "--converge", "3", check=False)
    assert check.returncode == 1
    assert "daemon bird-up in" in check.stdout and "not running" in check.stdout
    # the provider's session is the border's (the slice's session to the border stays up)
    assert "bgp border@a: 1/2 sessions Established" in check.stdout and "not Established: up (down)" in check.stdout
    vispd("up", name)
    assert daemons(name)["bird-up"]["problem"] == ""
    assert vispd("check", name).returncode == 0


def test_a_daemon_that_runs_but_does_not_serve_is_restarted(lab):
    name, run = lab
    pid = bird_pid(run)
    (run / "bird-up.conf").write_text("router id 192.0.2.0;\nprotocol device {}\n")  # no BGP: no port 179
    os.kill(pid, signal.SIGHUP)
    assert wait_for(lambda: "does not serve on tcp 0.0.0.0:179" in daemons(name)["bird-up"]["problem"], timeout=10)
    assert "runs but does not serve" in vispd("status", name, check=False).stdout
    vispd("up", name)
    assert bird_pid(run) != pid and daemons(name)["bird-up"]["serving"]


def test_up_names_a_foreign_process_on_a_daemons_port(lab):
    name, run = lab
    os.kill(bird_pid(run), signal.SIGKILL)
    wait_for(lambda: daemons(name)["bird-up"]["problem"] == "not running", timeout=10)
    squatter = subprocess.Popen(
        ["ip", "netns", "exec", f"vispd.{name}.+up", sys.executable, "-c",
         "import socket, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
         "s.bind(('0.0.0.0', 179)); s.listen(); print('ready', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout.readline().strip() == "ready"
        result = vispd("up", name, check=False)
        assert result.returncode == 1
        assert f"is already held by pid {squatter.pid} (python" in result.stderr
        assert "tcp 0.0.0.0:179" in result.stderr and "not by vispd" in result.stderr
    finally:
        squatter.kill()
        squatter.wait()
    time.sleep(0.2)
    vispd("up", name)
    assert daemons(name)["bird-up"]["serving"]
