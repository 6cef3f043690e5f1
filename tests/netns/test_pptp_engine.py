"""PPTP end to end on the real kernel: real pptpd (with our PPP engine as its pppd) in one
namespace, the real pptp client (driven by our engine) in another, joined by a veth.

Two namespaces of our own (`vppt-` prefix), nothing else touched: clients connect, get
addresses from the pool, ping an address behind the server (on the server namespace's
loopback, reached through the TUN); a wrong password is refused while the others keep
working; everything is stopped by PID and the namespaces are deleted.

`python3 tests/netns/test_pptp_engine.py --bench` measures TCP throughput through the
engines with iperf3 (both directions, median of runs) and prints JSON."""
from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # conftest's helpers, also when run as a script

from access.pptp import client_command, server_command  # noqa: E402
from access.pptp.launch import write_server_files  # noqa: E402
from conftest import wait_for  # noqa: E402

pytestmark = pytest.mark.root

SERVER_IP, CLIENT_IP = "100.64.0.5", "100.64.0.6"
BEHIND_SERVER = "198.18.1.1"
POOL = "198.18.2.0/26"
USERS = {"bob": "s3cret", "carol": "pw-carol"}


def run(*argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


def stop(process: subprocess.Popen, timeout: float = 5.0) -> int:
    """SIGTERM by PID, then SIGKILL by PID if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    return process.returncode


class Lab:
    """The two namespaces, pptpd, and the clients started in them."""

    def __init__(self, base: str) -> None:
        tag = uuid.uuid4().hex[:6]
        self.server_ns, self.client_ns = f"vppt-s-{tag}", f"vppt-c-{tag}"
        self.base = base
        self.run_dir = os.path.join(base, "server")
        self.processes: list[subprocess.Popen] = []
        self.pptpd: subprocess.Popen | None = None

    # ---- set-up ------------------------------------------------------------------------
    def build(self) -> None:
        run("ip", "netns", "add", self.server_ns)
        run("ip", "netns", "add", self.client_ns)
        tag = self.server_ns[-6:]
        run("ip", "link", "add", f"vppt{tag}s", "netns", self.server_ns, "type", "veth",
            "peer", "name", f"vppt{tag}c", "netns", self.client_ns)
        for ns, dev, address in ((self.server_ns, f"vppt{tag}s", SERVER_IP),
                                 (self.client_ns, f"vppt{tag}c", CLIENT_IP)):
            run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            run("ip", "-n", ns, "link", "set", dev, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", self.server_ns, "addr", "add", f"{BEHIND_SERVER}/32", "dev", "lo")

    def start_server(self) -> None:
        users_file = os.path.join(self.base, "users.json")
        with open(users_file, "w") as handle:
            json.dump({"users": USERS}, handle)
        write_server_files(self.run_dir, {
            "slice": "plb", "listen": SERVER_IP, "pool": POOL, "users_file": users_file,
            "tun_prefix": "pptp-plb", "log_file": os.path.join(self.run_dir, "engine.log"),
        })
        with open(os.path.join(self.run_dir, "pptpd.out"), "wb") as out:
            self.pptpd = subprocess.Popen(["ip", "netns", "exec", self.server_ns,
                                           *server_command(self.run_dir)],
                                          stdout=out, stderr=subprocess.STDOUT, cwd=self.run_dir)
        assert wait_for(lambda: self.listening(), 10), "pptpd does not listen on 1723"

    def listening(self) -> bool:
        out = run("ip", "netns", "exec", self.server_ns, "ss", "-ltnH", "sport", "= :1723").stdout
        return bool(out.strip())

    def start_client(self, name: str, user: str, password: str, tun: str) -> tuple[subprocess.Popen, str]:
        directory = os.path.join(self.base, name)
        os.makedirs(directory, exist_ok=True)
        config_path = os.path.join(directory, "client.json")
        status = os.path.join(directory, "status.json")
        with open(config_path, "w") as handle:
            json.dump({"user": user, "password": password, "tun": tun, "routes": ["198.18.1.0/24"],
                       "status_file": status, "log_file": os.path.join(directory, "engine.log"),
                       "connect_timeout": 20}, handle)
        env = {**os.environ, "PYTHONPATH": ROOT}
        process = subprocess.Popen(["ip", "netns", "exec", self.client_ns,
                                    *client_command(SERVER_IP, config_path)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   cwd=ROOT, env=env)
        self.processes.append(process)
        return process, status

    # ---- tear-down ---------------------------------------------------------------------
    def namespace_pids(self) -> list[int]:
        pids = []
        for ns in (self.server_ns, self.client_ns):
            out = run("ip", "netns", "pids", ns, check=False).stdout
            pids += [int(p) for p in out.split()]
        return pids

    def teardown(self) -> list[int]:
        """Stop everything by PID; returns the PIDs that had to be killed afterwards."""
        for process in self.processes:
            stop(process)
        if self.pptpd is not None:
            stop(self.pptpd)
        wait_for(lambda: not self.namespace_pids(), 5)
        leftovers = self.namespace_pids()
        for pid in leftovers:  # only processes inside our own namespaces
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for ns in (self.server_ns, self.client_ns):
            run("ip", "netns", "delete", ns, check=False)
        return leftovers


def status_of(path: str) -> dict:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def wait_up(process: subprocess.Popen, status: str, timeout: float = 25) -> dict:
    state = wait_for(lambda: status_of(status).get("state") in ("up", "down") or process.poll() is not None,
                     timeout)
    current = status_of(status)
    assert state and current.get("state") == "up", (current, process.poll(), process.stderr and
                                                     process.poll() is not None and process.stderr.read())
    return current


def ping(ns: str, target: str, count: int = 3) -> bool:
    return run("ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", "0.2", "-W", "2", target,
               check=False).returncode == 0


def links(ns: str) -> list[str]:
    out = run("ip", "-n", ns, "-o", "link", "show").stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def missing_tools() -> str | None:
    for tool in ("pptpd", "pptp", "ip", "ping", "ss", "unshare"):
        if shutil.which(tool) is None:
            return f"needs '{tool}' (apt pptpd pptp-linux iproute2 iputils-ping util-linux)"
    if importlib.util.find_spec("Crypto") is None:
        return "needs pycryptodome"
    return None


@pytest.fixture
def lab(tmp_path):
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    lab = Lab(str(tmp_path))
    lab.build()
    try:
        lab.start_server()
        yield lab
    finally:
        lab.lab_leftovers = lab.teardown()


def test_clients_connect_ping_and_a_wrong_password_is_refused(lab):
    pool = ipaddress.IPv4Network(POOL)
    bob, bob_status = lab.start_client("bob", "bob", USERS["bob"], "pptp-bob")
    up = wait_up(bob, bob_status)
    assert ipaddress.IPv4Address(up["local"]) in pool and up["peer"] == "198.18.2.1"
    assert up["encrypted"] is False
    assert ping(lab.client_ns, BEHIND_SERVER), "no reply from behind the server through the tunnel"

    # the server side: one TUN per call, named from the client's place in the pool
    server_tuns = [name for name in links(lab.server_ns) if name.startswith("pptp-plb")]
    assert len(server_tuns) == 1

    carol, carol_status = lab.start_client("carol", "carol", USERS["carol"], "pptp-carol")
    carol_up = wait_up(carol, carol_status)
    assert carol_up["local"] != up["local"] and ipaddress.IPv4Address(carol_up["local"]) in pool

    started = time.monotonic()
    mallory, mallory_status = lab.start_client("mallory", "bob", "not-the-password", "pptp-bad")
    code = mallory.wait(30)
    stderr = mallory.stderr.read()
    assert code == 2, (code, stderr)
    assert "authentication failed" in stderr
    assert status_of(mallory_status)["state"] == "down" and time.monotonic() - started < 20
    assert "pptp-bad" not in links(lab.client_ns)

    # a TUN name already taken in the namespace: a clear configuration error, nothing hurt
    clash, _ = lab.start_client("clash", "carol", USERS["carol"], "pptp-bob")
    assert clash.wait(30) == 1
    assert "cannot set up TUN pptp-bob" in clash.stderr.read()

    # the others are unaffected
    assert ping(lab.client_ns, BEHIND_SERVER)
    assert run("ip", "netns", "exec", lab.client_ns, "ping", "-c", "2", "-i", "0.2", "-W", "2",
               "-I", "pptp-carol", BEHIND_SERVER, check=False).returncode == 0
    assert bob.poll() is None and carol.poll() is None
    engine_log = open(os.path.join(lab.run_dir, "engine.log")).read()
    assert "wrong password" in engine_log and "UNENCRYPTED" in engine_log

    # a clean stop: SIGTERM by PID, LCP terminates, TUNs disappear on both sides
    assert stop(bob) == 0 and stop(carol) == 0
    assert status_of(bob_status)["state"] == "down"
    assert "pptp-bob" not in links(lab.client_ns)
    assert wait_for(lambda: not [n for n in links(lab.server_ns) if n.startswith("pptp-plb")], 10)


def test_everything_stops_by_pid(tmp_path):
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    lab = Lab(str(tmp_path))
    lab.build()
    try:
        lab.start_server()
        client, status = lab.start_client("bob", "bob", USERS["bob"], "pptp-bob")
        wait_up(client, status)
        # stopping pptpd by PID ends the calls: the engines see their pty close
        stop(lab.pptpd)
        assert wait_for(lambda: client.poll() is not None, 15), "client did not notice the server going"
        assert client.returncode == 4
        assert wait_for(lambda: not lab.namespace_pids(), 10), lab.namespace_pids()
    finally:
        leftovers = lab.teardown()
    assert leftovers == []
    assert lab.server_ns not in run("ip", "netns", "list").stdout


def iperf(lab: Lab, reverse: bool, seconds: int = 3) -> float:
    server = subprocess.Popen(["ip", "netns", "exec", lab.server_ns, "iperf3", "-s", "-1", "-B",
                               BEHIND_SERVER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: run("ip", "netns", "exec", lab.server_ns, "ss", "-ltnH", "sport", "= :5201"
                             ).stdout.strip(), 5)
        out = run("ip", "netns", "exec", lab.client_ns, "iperf3", "-c", BEHIND_SERVER, "-t",
                  str(seconds), "-J", *(["-R"] if reverse else []), timeout=seconds + 20).stdout
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6
    finally:
        stop(server)


def test_tcp_flows_through_the_engines(lab):
    if shutil.which("iperf3") is None:
        pytest.skip("needs iperf3")
    client, status = lab.start_client("bob", "bob", USERS["bob"], "pptp-bob")
    wait_up(client, status)
    upstream, downstream = iperf(lab, False, 2), iperf(lab, True, 2)
    print(json.dumps({"pptp_up_mbps": round(upstream, 1), "pptp_down_mbps": round(downstream, 1)}))
    assert upstream > 1 and downstream > 1  # a sanity floor: the machine is shared and noisy


def bench(runs: int = 3, seconds: int = 5) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vppt-bench-") as base:
        lab = Lab(base)
        lab.build()
        try:
            lab.start_server()
            started = time.monotonic()
            client, status = lab.start_client("bob", "bob", USERS["bob"], "pptp-bob")
            wait_up(client, status)
            connect_s = time.monotonic() - started
            up = [iperf(lab, False, seconds) for _ in range(runs)]
            down = [iperf(lab, True, seconds) for _ in range(runs)]
        finally:
            lab.teardown()
    return {"pptp_connect_s": round(connect_s, 2), "pptp_up_mbps": round(statistics.median(up), 1),
            "pptp_down_mbps": round(statistics.median(down), 1),
            "pptp_mbps": round(statistics.median(up + down), 1), "runs": {"up": up, "down": down}}


if __name__ == "__main__":
    if "--bench" in sys.argv:
        print(json.dumps(bench()))
