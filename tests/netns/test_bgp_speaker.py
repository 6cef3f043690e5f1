"""The egress BGP speaker (ExaBGP + bgp.helper) against real providers: BIRD 2 and FRR, each
in its own namespace joined to the speaker's namespace by a veth. Everything made here is
named vbgp-*, every process is stopped by its PID, every namespace deleted.

Proves: sessions reach Established; the provider sees our prefix with our AS path (and
prepends, communities); an announcement outside the allocation never leaves; provider routes
land in our FIB with protocol 78 and leave when the session goes down (with an event on the
socket); a path carrying our AS is not installed; max-prefix caps one neighbour without
touching the session or the other neighbour; best-path picks and fails over."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from bgp.speaker import preference_code

from compiler.daemons import exabgp as exabgp_conf
from conftest import ROOT

pytestmark = pytest.mark.root

LOCAL_AS = 64512
ALLOCATION = "198.18.0.0/22"
RT_PROTO = 78


# -- small lab kit ---------------------------------------------------------------------
def run(*argv: str, check: bool = True) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result.stdout


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def stop_pid(pid: int, timeout: float = 5.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}") or _zombie(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def bird_static(prefixes, name: str = "announce", path: list[int] | None = None) -> str:
    """A BIRD static protocol originating the prefixes (optionally with a preset AS path)."""
    action = "".join(f" bgp_path.prepend({asn});" for asn in reversed(path or []))
    body = "".join(f"  route {p} blackhole{' {' + action + ' }' if action else ''};\n" for p in prefixes)
    return f"protocol static {name} {{\n  ipv4;\n{body}}}\n"


def generated(count: int, first_octet: int = 10, start: int = 0) -> list[str]:
    return [f"{first_octet + ((start + i) >> 16)}.{((start + i) >> 8) & 255}.{(start + i) & 255}.0/24"
            for i in range(count)]


class Lab:
    """Namespaces vbgp-<id>-*, one speaker namespace and providers attached by veths."""

    NS_PREFIX = "vbgp"

    def __init__(self, directory: str):
        self.id = uuid.uuid4().hex[:6]
        self.dir = directory
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []
        self.extra_pids: list[int] = []
        self.speaker_ns = self.netns("s")
        self.providers = 0
        self.events = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.event_path = os.path.join(self.dir, "events.sock")
        self.events.bind(self.event_path)
        self.events.settimeout(0.05)

    def netns(self, role: str) -> str:
        name = f"{self.NS_PREFIX}-{self.id}-{role}"
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def provider_link(self) -> tuple[str, str, str]:
        """A provider namespace joined to the speaker: (namespace, provider address, ours)."""
        index = self.providers
        self.providers += 1
        ns = self.netns(f"p{index}")
        ours, theirs = f"vb{self.id}s{index}", f"vb{self.id}p{index}"
        run("ip", "link", "add", ours, "netns", self.speaker_ns, "type", "veth", "peer", "name", theirs,
            "netns", ns)
        provider_address, our_address = f"192.0.2.{2 * index}", f"192.0.2.{2 * index + 1}"
        run("ip", "-n", ns, "addr", "add", f"{provider_address}/31", "dev", theirs)
        run("ip", "-n", self.speaker_ns, "addr", "add", f"{our_address}/31", "dev", ours)
        run("ip", "-n", ns, "link", "set", theirs, "up")
        run("ip", "-n", self.speaker_ns, "link", "set", ours, "up")
        return ns, provider_address, our_address

    def start(self, argv, log_name: str, env=None, user_dir: str | None = None) -> subprocess.Popen:
        log = open(os.path.join(self.dir, log_name), "ab")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=user_dir or self.dir)
        log.close()
        self.processes.append(process)
        return process

    # -- BIRD --------------------------------------------------------------------------
    def bird(self, ns: str, address: str, peer: str, asn: int, extra: str, name: str,
             protocol: str = "up") -> str:
        conf = os.path.join(self.dir, f"{name}.conf")
        sock = os.path.join(self.dir, f"{name}.ctl")
        with open(conf, "w") as handle:
            handle.write(f"router id {address};\nprotocol device {{}}\n{extra}\n"
                         f"protocol bgp {protocol} {{\n  local {address} as {asn};\n"
                         f"  neighbor {peer} as {LOCAL_AS};\n"
                         f"  ipv4 {{ import all; export where source = RTS_STATIC; }};\n}}\n")
        self.start(["ip", "netns", "exec", ns, "bird", "-f", "-c", conf, "-s", sock,
                    "-P", os.path.join(self.dir, f"{name}.pid")], f"{name}.log")
        wait_until(lambda: os.path.exists(sock), 10, what="BIRD's control socket")
        return sock

    # -- the speaker -------------------------------------------------------------------
    def speaker(self, neighbors: list[dict], announce: list[dict], path_in_conf: bool = True, **extra) -> dict:
        """Start ExaBGP + helper as vispd does. path_in_conf=False: render(config) alone, the
        helper finds its config through the environment command() sets."""
        config = {
            "slice": "plb", "node": "washington", "local_as": LOCAL_AS, "router_id": "198.18.0.9",
            "allowed_prefixes": [ALLOCATION], "announce": announce, "neighbors": neighbors,
            "rt_proto": RT_PROTO, "table": 254,
            "status_file": os.path.join(self.dir, "bgp", "plb.washington.status.json"),
            "event_socket": self.event_path,
            "log_file": os.path.join(self.dir, "exabgp.log"),
            **extra,
        }
        paths = {key: os.path.join(self.dir, name) for key, name in
                 (("config", "speaker.json"), ("conf", "exabgp.conf"), ("pid", "exabgp.pid"))}
        with open(paths["config"], "w") as handle:
            json.dump(config, handle)
        with open(paths["conf"], "w") as handle:
            handle.write(exabgp_conf.render(config, paths["config"], python=sys.executable) if path_in_conf
                         else exabgp_conf.render(config, python=sys.executable))
        argv, env = exabgp_conf.command(paths["config"], paths["conf"], paths["pid"], config["log_file"],
                                        python=sys.executable, project_root=ROOT)
        self.start(["ip", "netns", "exec", self.speaker_ns, *argv], "exabgp.log", env={**os.environ, **env})
        return config

    def status(self, config: dict) -> dict:
        try:
            with open(config["status_file"]) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def notices(self) -> list[dict]:
        found = []
        while True:
            try:
                found.append(json.loads(self.events.recv(65536)))
            except (socket.timeout, BlockingIOError):
                return found

    def fib(self) -> dict[str, str]:
        routes = json.loads(run("ip", "-n", self.speaker_ns, "-j", "route", "show", "proto", str(RT_PROTO)) or "[]")
        return {r["dst"] if "/" in r["dst"] else r["dst"] + "/32": r.get("gateway") for r in routes}

    def fib_count(self) -> int:
        return run("ip", "-n", self.speaker_ns, "route", "show", "proto", str(RT_PROTO)).count("\n")

    def close(self) -> None:
        for process in reversed(self.processes):
            stop_pid(process.pid)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for pid in self.extra_pids:
            stop_pid(pid)
        for ns in self.namespaces:
            run("ip", "netns", "del", ns, check=False)
        self.events.close()


def birdc(sock: str, *command: str) -> str:
    return run("birdc", "-s", sock, *command)


def established(sock: str, protocol: str = "up") -> bool:
    return "Established" in birdc(sock, "show", "protocols", protocol)


@pytest.fixture
def lab():
    directory = tempfile.mkdtemp(prefix="vbgp-")
    os.chmod(directory, 0o755)
    made = Lab(directory)
    try:
        yield made
    finally:
        made.close()
        if os.environ.get("VBGP_KEEP"):
            print(f"lab directory kept: {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def neighbor(name: str, address: str, local: str, asn: int, **extra) -> dict:
    return {"name": name, "address": address, "local_address": local, "peer_as": asn,
            "local_pref": 100, "max_prefix": 10000, **extra}


def session_state(lab: Lab, config: dict, name: str) -> str | None:
    return lab.status(config).get("neighbors", {}).get(name, {}).get("state")


FIB_PROGRAM = r"""
import json, sys
from dataplane.fib import Fib
prefixes = [f"10.{i >> 8}.{i & 255}.0/24" for i in range(10000)]
out = {}
with Fib(proto=78, table=254, metric=20) as fib:
    out["install"] = [str(e) for e in fib.apply((p, "192.0.2.0") for p in prefixes)]
    out["count"] = len(fib.routes())
    out["replace"] = [str(e) for e in fib.apply([(prefixes[0], "192.0.2.2")])]
    out["gateway"] = fib.routes()[prefixes[0]]
    out["bad"] = [str(e) for e in fib.apply([("10.200.0.0/24", "203.0.113.99"), ("10.201.0.0/24", None)])]
    out["delete"] = [str(e) for e in fib.apply([(prefixes[1], None)])]
    out["flushed"] = fib.flush()
    out["left"] = len(fib.routes())
print(json.dumps(out))
"""


def test_fib_installs_replaces_deletes_and_reports_errors_inside_a_namespace(lab):
    ns = lab.speaker_ns
    run("ip", "link", "add", f"vb{lab.id}f0", "netns", ns, "type", "veth", "peer", "name", f"vb{lab.id}f1",
        "netns", ns)
    run("ip", "-n", ns, "addr", "add", "192.0.2.1/29", "dev", f"vb{lab.id}f0")
    for device in (f"vb{lab.id}f0", f"vb{lab.id}f1"):
        run("ip", "-n", ns, "link", "set", device, "up")
    # someone else's route for a prefix we will install and flush: metric 0, protocol static
    run("ip", "-n", ns, "route", "add", "10.0.5.0/24", "via", "192.0.2.3", "proto", "static")
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", FIB_PROGRAM], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["install"] == [] and out["count"] == 10000
    assert out["replace"] == [] and out["gateway"] == "192.0.2.2"
    assert out["bad"] == ["replace 10.200.0.0/24: Nexthop has invalid gateway (via 203.0.113.99)"]
    assert out["delete"] == [] and out["flushed"] == 9999 and out["left"] == 0
    left = run("ip", "-n", ns, "route", "show", "10.0.5.0/24")
    assert "via 192.0.2.3" in left and "proto static" in left and "metric" not in left


# -- the tests -------------------------------------------------------------------------
def test_bird_session_announcements_routes_and_withdrawal(lab):
    ns, provider, ours = lab.provider_link()
    provided = generated(1000, first_octet=10)
    looped = "100.64.0.0/24"
    statics = bird_static(provided) + bird_static([looped], "looped", path=[65333, LOCAL_AS])
    sock = lab.bird(ns, provider, ours, 65101, statics, "bird1")
    config = lab.speaker(
        [neighbor("mae-east", provider, ours, 65101)],
        [{"prefix": "198.18.0.0/22", "prepend": 0, "communities": []},
         {"prefix": "198.18.1.0/24", "prepend": 2, "communities": ["64512:100", "65101:666"]},
         {"prefix": "10.66.0.0/24", "prepend": 0, "communities": []},         # outside the allocation
         {"prefix": "198.18.2.0/25", "prepend": 0, "communities": []},        # longer than /24
         {"prefix": "198.18.3.0/24", "prepend": 6, "communities": []}])       # too many prepends
    wait_until(lambda: established(sock), 15, what="BGP session Established at BIRD")
    wait_until(lambda: lab.fib_count() >= 1000, 15, what="1000 provider routes in our FIB")

    routes = wait_until(lambda: (lambda out: out if "198.18.0.0/22" in out and "198.18.1.0/24" in out else None)(
        birdc(sock, "show", "route", "all", "protocol", "up")), 5, what="both announcements at BIRD")
    block = routes.split("198.18.0.0/22", 1)[1].split("198.18.1.0/24")[0]
    assert f"BGP.as_path: {LOCAL_AS}\n" in block
    block = routes.split("198.18.1.0/24", 1)[1]
    assert f"BGP.as_path: {LOCAL_AS} {LOCAL_AS} {LOCAL_AS}\n" in block
    assert "(64512,100)" in block and "(65101,666)" in block
    for refused in ("10.66.0.0", "198.18.2.0", "198.18.3.0"):
        assert refused not in birdc(sock, "show", "route", "all")

    fib = lab.fib()
    assert len(fib) == 1000 and set(fib) == set(provided)
    assert set(fib.values()) == {provider}
    assert looped not in fib
    detail = run("ip", "-n", lab.speaker_ns, "route", "show", provided[0])
    # the metric carries the route's preference (bgp.speaker.preference_code): local_pref 100, one AS
    assert f"via {provider}" in detail and f"proto {RT_PROTO}" in detail
    assert f"metric {20 + preference_code(100, 1)} " in detail

    status = wait_until(lambda: (lambda s: s if s.get("neighbors", {}).get("mae-east", {}).get("installed") == 1000
                                 else None)(lab.status(config)), 5, what="status with 1000 installed")
    east = status["neighbors"]["mae-east"]
    assert east["state"] == "up" and east["received"] == 1001 and east["accepted"] == 1000
    assert east["refused_own_as"] == 1 and east["max_prefix_exceeded"] is False
    # the UPDATEs came through the hook in ExaBGP's reader, decoded by bgp/wire.py
    assert status["wire"]["lines"] >= 1 and status["wire"]["updates"] >= 2 and status["wire"]["errors"] == 0
    assert [a["prefix"] for a in status["announced"]] == ["198.18.0.0/22", "198.18.1.0/24"]
    reasons = {r["prefix"]: r["reason"] for r in status["refused"]}
    assert "outside the slice's allocation" in reasons["10.66.0.0/24"]
    assert "longer than /24" in reasons["198.18.2.0/25"]
    assert "prepend 6 exceeds" in reasons["198.18.3.0/24"]
    with open(config["log_file"]) as handle:
        log = handle.read()
    assert "announcement refused: 10.66.0.0/24" in log
    notices = lab.notices()
    # the session, then its first routes in the kernel (what makes the egress live)
    assert [n["state"] for n in notices] == ["up", "routes"]
    assert notices[1]["neighbor"] == notices[0]["neighbor"]

    # the session goes down: every learned route leaves the FIB, an event is sent at once
    started = time.monotonic()
    birdc(sock, "disable", "up")
    wait_until(lambda: lab.fib_count() == 0, 5, interval=0.01, what="routes withdrawn from the FIB")
    withdrawn_after = time.monotonic() - started
    notices = wait_until(lab.notices, 2, what="a down event")
    assert notices[0]["state"] == "down" and notices[0]["neighbor"] == "mae-east"
    assert notices[0]["slice"] == "plb" and notices[0]["node"] == "washington"
    assert withdrawn_after < 1.0, f"FIB emptied {withdrawn_after:.2f} s after the session went down"
    wait_until(lambda: session_state(lab, config, "mae-east") == "down", 2, what="status down")

    # and back
    birdc(sock, "enable", "up")
    wait_until(lambda: lab.fib_count() >= 1000, 15, what="routes back after enable")
    assert any(n["state"] == "up" for n in wait_until(lab.notices, 2, what="an up event"))
    wait_until(lambda: "198.18.1.0/24" in birdc(sock, "show", "route", "protocol", "up"), 5,
               what="our announcement re-sent after the session returned")


def test_max_prefix_caps_one_neighbor_and_spares_the_other(lab):
    ns1, provider1, ours1 = lab.provider_link()
    ns2, provider2, ours2 = lab.provider_link()
    flood = generated(60, first_octet=10)
    modest = generated(30, first_octet=20)
    sock1 = lab.bird(ns1, provider1, ours1, 65101, bird_static(flood), "bird1")
    sock2 = lab.bird(ns2, provider2, ours2, 65102, bird_static(modest), "bird2")
    config = lab.speaker([neighbor("flood", provider1, ours1, 65101, max_prefix=25),
                          neighbor("modest", provider2, ours2, 65102, max_prefix=100)],
                         [{"prefix": ALLOCATION, "prepend": 0, "communities": []}])
    wait_until(lambda: established(sock1) and established(sock2), 15, what="both sessions Established")
    wait_until(lambda: lab.fib_count() >= 55, 10, what="25 + 30 routes installed")
    time.sleep(1.0)
    fib = lab.fib()
    from_flood = [p for p, gw in fib.items() if gw == provider1]
    from_modest = [p for p, gw in fib.items() if gw == provider2]
    assert len(from_flood) == 25 and set(from_flood) <= set(flood)
    assert sorted(from_modest) == sorted(modest)
    status = lab.status(config)["neighbors"]
    assert status["flood"]["max_prefix_exceeded"] is True
    assert status["flood"]["accepted"] == 25 and status["flood"]["received"] == 60
    assert status["flood"]["refused_max_prefix"] == 35 and status["flood"]["installed"] == 25
    assert status["modest"]["max_prefix_exceeded"] is False and status["modest"]["installed"] == 30
    assert status["flood"]["state"] == "up" and status["modest"]["state"] == "up"
    assert established(sock1) and established(sock2)
    assert "down" not in [n["state"] for n in lab.notices()]
    with open(config["log_file"]) as handle:
        assert "exceeded max-prefix 25" in handle.read()
    # both providers still hear our prefix
    assert ALLOCATION in birdc(sock1, "show", "route") and ALLOCATION in birdc(sock2, "show", "route")


def test_best_path_across_neighbors_and_failover(lab):
    ns1, provider1, ours1 = lab.provider_link()
    ns2, provider2, ours2 = lab.provider_link()
    shared = ["10.77.0.0/24", "10.78.0.0/24"]
    # provider 1: shorter path; provider 2: longer path but higher local_pref for 10.78 only?
    # local_pref is per neighbour, so: 10.77 from both at equal local_pref -> shorter path wins;
    sock1 = lab.bird(ns1, provider1, ours1, 65101, bird_static(shared), "bird1")
    sock2 = lab.bird(ns2, provider2, ours2, 65102, bird_static(shared, path=[65200]), "bird2")
    config = lab.speaker([neighbor("one", provider1, ours1, 65101),
                          neighbor("two", provider2, ours2, 65102)],
                         [{"prefix": ALLOCATION, "prepend": 0, "communities": []}])
    wait_until(lambda: established(sock1) and established(sock2), 15, what="both sessions Established")
    wait_until(lambda: session_state(lab, config, "two") == "up" and
               lab.status(config)["neighbors"]["two"]["accepted"] == 2, 10, what="two's routes received")
    time.sleep(0.3)
    assert lab.fib() == {p: provider1 for p in shared}     # shorter AS path
    lab.notices()
    started = time.monotonic()
    birdc(sock1, "disable", "up")
    notice = wait_until(lab.notices, 2, interval=0.001, what="the down event")[0]
    noticed = time.monotonic() - started
    wait_until(lambda: lab.fib() == {p: provider2 for p in shared}, 2, interval=0.01,
               what="failover to provider 2")
    assert notice["neighbor"] == "one" and notice["state"] == "down"
    assert noticed < 0.5, f"down event {noticed:.3f} s after birdc disable"
    birdc(sock1, "enable", "up")
    wait_until(lambda: lab.fib() == {p: provider1 for p in shared}, 10, what="back to provider 1")


def test_higher_local_pref_wins_over_shorter_path(lab):
    ns1, provider1, ours1 = lab.provider_link()
    ns2, provider2, ours2 = lab.provider_link()
    shared = ["10.77.0.0/24"]
    sock1 = lab.bird(ns1, provider1, ours1, 65101, bird_static(shared), "bird1")
    sock2 = lab.bird(ns2, provider2, ours2, 65102, bird_static(shared, path=[65200, 65201]), "bird2")
    config = lab.speaker([neighbor("one", provider1, ours1, 65101, local_pref=100),
                          neighbor("two", provider2, ours2, 65102, local_pref=200)],
                         [{"prefix": ALLOCATION, "prepend": 0, "communities": []}])
    wait_until(lambda: established(sock1) and established(sock2), 15, what="both sessions Established")
    wait_until(lambda: lab.fib() == {shared[0]: provider2}, 10, what="the local_pref 200 path installed")
    assert lab.status(config)["neighbors"]["two"]["installed"] == 1


def test_refused_announcement_never_reaches_the_provider(lab):
    ns, provider, ours = lab.provider_link()
    sock = lab.bird(ns, provider, ours, 65101, "", "bird1")
    config = lab.speaker([neighbor("mae-east", provider, ours, 65101)],
                         [{"prefix": "203.0.113.0/24", "prepend": 0, "communities": []},
                          {"prefix": "198.18.0.0/24", "prepend": 0,
                           "communities": ["1:1", "1:2", "1:3", "1:4", "1:5", "1:6"]}])
    wait_until(lambda: established(sock), 15, what="BGP session Established at BIRD")
    time.sleep(1.0)
    assert "203.0.113.0" not in birdc(sock, "show", "route", "all")
    assert "198.18.0.0" not in birdc(sock, "show", "route", "all")
    status = lab.status(config)
    assert status["announced"] == []
    reasons = {r["prefix"]: r["reason"] for r in status["refused"]}
    assert "outside the slice's allocation (198.18.0.0/22)" in reasons["203.0.113.0/24"]
    assert "6 communities exceed the limit of 5" in reasons["198.18.0.0/24"]


def test_a_killed_helper_is_respawned_and_rebuilds_the_fib(lab):
    ns, provider, ours = lab.provider_link()
    provided = generated(200, first_octet=10)
    sock = lab.bird(ns, provider, ours, 65101, bird_static(provided), "bird1")
    config = lab.speaker([neighbor("mae-east", provider, ours, 65101)],
                         [{"prefix": ALLOCATION, "prepend": 0, "communities": []}], path_in_conf=False)
    wait_until(lambda: lab.fib_count() == 200, 15, what="200 routes installed")
    first = wait_until(lambda: lab.status(config).get("pid"), 5, what="the helper's pid")
    os.kill(first, signal.SIGKILL)
    # ExaBGP starts a new helper; its route refresh makes BIRD send the table again
    wait_until(lambda: lab.status(config).get("pid") not in (None, first), 10, what="a new helper")
    wait_until(lambda: lab.status(config)["neighbors"]["mae-east"]["installed"] == 200, 10,
               what="the FIB rebuilt by the new helper")
    assert set(lab.fib()) == set(provided)
    assert established(sock) and lab.status(config)["neighbors"]["mae-east"]["state"] == "up"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_stopping_exabgp_by_pid_leaves_no_helper_and_no_routes(lab, how):
    ns, provider, ours = lab.provider_link()
    sock = lab.bird(ns, provider, ours, 65101, bird_static(generated(300)), "bird1")
    config = lab.speaker([neighbor("mae-east", provider, ours, 65101)],
                         [{"prefix": ALLOCATION, "prepend": 0, "communities": []}])
    wait_until(lambda: lab.fib_count() == 300, 15, what="300 routes installed")
    helper = lab.status(config)["pid"]
    exabgp = lab.processes[-1]
    lab.notices()
    os.kill(exabgp.pid, how)
    exabgp.wait(timeout=10)
    wait_until(lambda: not os.path.exists(f"/proc/{helper}") or _zombie(helper), 5, what="the helper to exit")
    assert lab.fib_count() == 0
    status = lab.status(config)
    assert status["running"] is False and status["neighbors"]["mae-east"]["state"] == "down"
    assert [n["state"] for n in lab.notices()] == ["down"]
    wait_until(lambda: ALLOCATION not in birdc(sock, "show", "route"), 5, what="BIRD to drop our prefix")


# -- FRR as the provider -----------------------------------------------------------------
FRR_DIR = "/usr/lib/frr"


@pytest.mark.skipif(not os.path.exists(f"{FRR_DIR}/bgpd"), reason="needs FRR (apt-get install frr)")
def test_frr_provider(lab):
    ns, provider, ours = lab.provider_link()
    frr = pwd.getpwnam("frr")
    state = os.path.join(lab.dir, "frr")
    os.makedirs(state)
    os.chown(state, frr.pw_uid, frr.pw_gid)
    provided = ["10.31.0.0/24", "10.32.0.0/24", "10.33.0.0/16"]
    zebra_conf = os.path.join(state, "zebra.conf")
    bgpd_conf = os.path.join(state, "bgpd.conf")
    with open(zebra_conf, "w") as handle:
        handle.write("hostname vbgp-zebra\n")
    with open(bgpd_conf, "w") as handle:
        handle.write("hostname vbgp-bgpd\n"
                     "router bgp 65201\n"
                     f" bgp router-id {provider}\n"
                     " no bgp ebgp-requires-policy\n"
                     " no bgp network import-check\n"
                     f" neighbor {ours} remote-as {LOCAL_AS}\n"
                     " neighbor " + ours + " timers connect 1\n"
                     " address-family ipv4 unicast\n"
                     + "".join(f"  network {p}\n" for p in provided) +
                     " exit-address-family\n")
    for path in (zebra_conf, bgpd_conf):
        os.chown(path, frr.pw_uid, frr.pw_gid)
    zsock = os.path.join(state, "zserv.api")
    common = ["-z", zsock, "--vty_socket", state]
    lab.start(["ip", "netns", "exec", ns, f"{FRR_DIR}/zebra", "-f", zebra_conf,
               "-i", os.path.join(state, "zebra.pid"), *common], "zebra.log")
    wait_until(lambda: os.path.exists(zsock), 10, what="zebra's socket")
    lab.start(["ip", "netns", "exec", ns, f"{FRR_DIR}/bgpd", "-f", bgpd_conf,
               "-i", os.path.join(state, "bgpd.pid"), *common], "bgpd.log")
    config = lab.speaker([neighbor("frr", provider, ours, 65201)],
                         [{"prefix": ALLOCATION, "prepend": 1, "communities": ["64512:1"]}])

    def vtysh(command: str) -> str:
        return run("ip", "netns", "exec", ns, "vtysh", "--vty_socket", state, "-c", command)

    wait_until(lambda: set(lab.fib()) == set(provided), 20, what="FRR's routes in our FIB")
    assert set(lab.fib().values()) == {provider}
    learned = wait_until(lambda: (lambda out: out if ALLOCATION in out else None)(
        vtysh(f"show ip bgp {ALLOCATION}")), 10, what="FRR learning our prefix")
    assert f"{LOCAL_AS} {LOCAL_AS}" in learned
    # FRR sends our own prefix back to us (path 65201 64512 64512): it must not be installed
    status = wait_until(lambda: (lambda s: s if s.get("neighbors", {}).get("frr", {}).get("refused_own_as")
                                 else None)(lab.status(config)), 5, what="our own prefix refused")
    assert status["neighbors"]["frr"]["accepted"] == 3
    assert ALLOCATION not in lab.fib()
