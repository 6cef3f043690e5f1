"""Slice access end to end with the real daemons: OpenVPN and WireGuard clients on the
lab's public underlay connect to access points built by `vispd up`, reach slivers on
other nodes and the Internet host behind the providers; bad credentials get nothing;
a client of one slice cannot reach another slice; the local socket serves only its
slice's user; `down` stops every access daemon.

One deployment (a renamed copy of abilene.yaml with a second OpenVPN user and an OpenVPN
access point for `research` too) serves the whole module."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import ROOT, TOPOLOGIES, renamed_topology, unique_name, vispd, wait_for

pytestmark = pytest.mark.root

SYSTEM_PYTHON = "/usr/bin/python3"
INTERNET_HOST = "203.0.113.10"


def _edit(text: str) -> str:
    text = text.replace("{slice: plb, type: openvpn, nodes: [new-york], users: [{name: alice}]}",
                        "{slice: plb, type: openvpn, nodes: [new-york], users: [{name: alice}, {name: bob}]}")
    return text + "  - {slice: research, type: openvpn, nodes: [new-york], users: [{name: carol}]}\n"


@pytest.fixture(scope="module")
def lab():
    if not (shutil.which("openvpn") and shutil.which("wireguard-go") and shutil.which("wg")):
        pytest.skip("needs openvpn, wireguard-go and wg (scripts/install.sh)")
    tmp = tempfile.mkdtemp(prefix="vispd-access-")
    old = os.environ.get("VISPD_STATE_DIR")
    os.environ["VISPD_STATE_DIR"] = os.path.join(tmp, "state")
    name = unique_name("ta")
    path = renamed_topology(_Path(tmp), os.path.join(TOPOLOGIES, "abilene.yaml"), name, _edit)
    procs: list[subprocess.Popen] = []
    try:
        vispd("up", path)
        yield _Lab(name, tmp, procs)
    finally:
        _Lab(name, tmp, procs, read_status=False).stop_all()
        vispd("down", path, check=False)
        if old is None:
            os.environ.pop("VISPD_STATE_DIR", None)
        else:
            os.environ["VISPD_STATE_DIR"] = old
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(autouse=True)
def clients_stop_after_each_test(request):
    """Each test's clients go when it ends: two clients with one certificate in one client
    host would fight over the same routes (and OpenVPN drops the older session)."""
    yield
    lab_ = request.node.funcargs.get("lab")
    if lab_ is not None:
        lab_.stop_all()


class _Path(str):
    def __truediv__(self, leaf: str):
        return _Written(os.path.join(self, leaf))


class _Written(str):
    def write_text(self, text: str) -> None:
        with open(self, "w") as handle:
            handle.write(text)


class _Lab:
    def __init__(self, name: str, tmp: str, procs: list, read_status: bool = True):
        self.name, self.tmp, self.procs = name, tmp, procs
        self.status = json.loads(vispd("status", name, "--json").stdout) if read_status else {}

    def loopback(self, slice_name: str, node: str) -> str:
        return next(s["loopback"] for s in self.status["slivers"] if s["slice"] == slice_name and s["node"] == node)

    def client_ns(self, kind: str, slice_name: str, node: str) -> str:
        return f"vispd.{self.name}.+c-{kind}-{slice_name}-{node}"

    def start(self, ns: str, argv: list[str], log: str) -> subprocess.Popen:
        handle = open(os.path.join(self.tmp, log), "w")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=handle, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()

    def log(self, leaf: str) -> str:
        with open(os.path.join(self.tmp, leaf)) as handle:
            return handle.read()

    def pings(self, ns: str, target: str, count: int = 2, via: str | None = None) -> bool:
        pin = ["-I", via] if via else []
        return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", str(count), "-W", "2", *pin, target],
                              capture_output=True).returncode == 0

    def profile(self, slice_name: str, user: str, kind: str) -> str:
        leaf = os.path.join(self.tmp, f"{slice_name}-{user}.{kind}")
        vispd("access", "profile", self.name, slice_name, user, "--type", kind, "-o", leaf)
        return leaf



def tun_address(ns: str, dev: str) -> str | None:
    out = subprocess.run(["ip", "-n", ns, "-j", "addr", "show", "dev", dev], capture_output=True, text=True).stdout
    try:
        return next(a["local"] for link in json.loads(out) for a in link["addr_info"] if a["family"] == "inet")
    except (ValueError, StopIteration):
        return None


def openvpn_client(lab: _Lab, ns: str, profile: str, dev: str) -> subprocess.Popen:
    return lab.start(ns, ["openvpn", "--config", profile, "--dev", dev, "--dev-type", "tun", "--verb", "3"],
                     f"{dev}.log")


def test_openvpn_client_gets_a_pool_address_and_reaches_other_nodes_and_the_internet(lab):
    ns = lab.client_ns("openvpn", "plb", "new-york")
    client = openvpn_client(lab, ns, lab.profile("plb", "alice", "openvpn"), "tovpa")
    address = wait_for(lambda: tun_address(ns, "tovpa"))
    assert address, lab.log("tovpa.log")
    assert address.startswith("198.18.3.")  # the plb pool (198.18.0.0/22's access quarter)
    assert lab.pings(ns, lab.loopback("plb", "seattle"))  # across the country, through the vISP
    assert wait_for(lambda: lab.pings(ns, INTERNET_HOST, 1), timeout=20)  # out through a provider and back
    assert client.poll() is None


def test_revoked_and_unknown_certificates_get_nothing_and_others_stay(lab):
    ns = lab.client_ns("openvpn", "plb", "new-york")
    alice = openvpn_client(lab, ns, lab.profile("plb", "alice", "openvpn"), "tovpr")
    assert wait_for(lambda: tun_address(ns, "tovpr")), lab.log("tovpr.log")
    bob_profile = lab.profile("plb", "bob", "openvpn")
    bob = openvpn_client(lab, ns, bob_profile, "tovpb")
    assert wait_for(lambda: tun_address(ns, "tovpb")), lab.log("tovpb.log")
    said = vispd("access", "revoke", lab.name, "plb", "bob").stdout
    assert "revoked bob" in said and "1 live session(s) closed" in said
    assert wait_for(lambda: bob.poll() is not None or tun_address(ns, "tovpb") is None, timeout=10)
    again = openvpn_client(lab, ns, bob_profile, "tovpb2")
    time.sleep(4)
    assert tun_address(ns, "tovpb2") is None  # refused: the certificate is on the CRL
    assert alice.poll() is None and lab.pings(ns, lab.loopback("plb", "new-york"), via="tovpr")  # unaffected
    again.terminate()
    # a certificate from another CA, with a user name the server knows
    from access import pki

    rogue_dir = os.path.join(lab.tmp, "rogue-pki")
    pki.ensure_ca(rogue_dir, "rogue")
    pki.ensure_client(rogue_dir, "alice")
    profile_text = open(lab.profile("plb", "alice", "openvpn")).read()
    ca, cert, key = pki.read_client_material(rogue_dir, "alice")
    start = profile_text.index("<cert>")
    rogue = profile_text[:start] + f"<cert>\n{cert.strip()}\n</cert>\n<key>\n{key.strip()}\n</key>\n"
    rogue_path = os.path.join(lab.tmp, "rogue.ovpn")
    with open(rogue_path, "w") as handle:
        handle.write(rogue)
    rogue_client = openvpn_client(lab, ns, rogue_path, "tovpx")
    time.sleep(4)
    assert tun_address(ns, "tovpx") is None
    rogue_client.terminate()


def test_a_client_of_one_slice_cannot_reach_another_slice(lab):
    ns = lab.client_ns("openvpn", "research", "new-york")
    carol = openvpn_client(lab, ns, lab.profile("research", "carol", "openvpn"), "tovpc")
    assert wait_for(lambda: tun_address(ns, "tovpc")), lab.log("tovpc.log")
    assert lab.pings(ns, lab.loopback("research", "denver"))  # her own slice, elsewhere
    for node in ("new-york", "denver", "seattle"):
        assert not lab.pings(ns, lab.loopback("plb", node), 1)  # plb, even on the same node
    assert carol.poll() is None


def wireguard_client(lab: _Lab, ns: str, profile_path: str, ifname: str) -> subprocess.Popen:
    from access import wireguard as wg

    parsed = wg.parse_wg_quick(open(profile_path).read())
    key_file = os.path.join(lab.tmp, f"{ifname}.key")
    with open(os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
        handle.write(parsed["interface"]["PrivateKey"] + "\n")
    proc = lab.start(ns, [wg.WIREGUARD_GO, "-f", ifname], f"{ifname}.log")
    assert wait_for(lambda: os.path.exists(wg.socket_path(ifname)), timeout=10), lab.log(f"{ifname}.log")
    for step in wg.client_steps(parsed, ifname, key_file):
        subprocess.run(["ip", "netns", "exec", ns, *step], check=True, capture_output=True)
    return proc


def test_wireguard_right_key_reaches_the_vispd_and_wrong_key_does_not(lab):
    from access import wireguard as wg

    ns = lab.client_ns("wireguard", "plb", "seattle")
    tag = lab.name[-4:]
    profile = lab.profile("plb", "alice", "wireguard")
    good = wireguard_client(lab, ns, profile, f"twga{tag}")
    assert wait_for(lambda: lab.pings(ns, lab.loopback("plb", "new-york"), 1), timeout=10)
    assert wait_for(lambda: lab.pings(ns, INTERNET_HOST, 1), timeout=20)
    good.terminate()
    good.wait(timeout=5)
    text = open(profile).read()
    wrong = os.path.join(lab.tmp, "wrong.conf")
    with open(wrong, "w") as handle:
        handle.write(text.replace(wg.parse_wg_quick(text)["interface"]["PrivateKey"], wg.generate_private_key()))
    bad = wireguard_client(lab, ns, wrong, f"twgb{tag}")
    assert not lab.pings(ns, lab.loopback("plb", "seattle"), 2)
    bad.terminate()


def pptp_client(lab: _Lab, ns: str, server: str, user: str, password: str, tun: str, routes: list[str]):
    from access.pptp import launch

    config = os.path.join(lab.tmp, f"{tun}.json")
    with open(config, "w") as handle:
        json.dump({"user": user, "password": password, "tun": tun, "routes": routes,
                   "status_file": os.path.join(lab.tmp, f"{tun}.status")}, handle)
    return lab.start(ns, launch.client_command(server, config), f"{tun}.log")


def test_pptp_client_gets_in_with_the_right_password_only(lab):
    fields = dict(line.split(" ", 1) for line in vispd("access", "profile", lab.name, "plb", "bob", "--type", "pptp")
                  .stdout.splitlines() if not line.startswith("#"))
    ns = lab.client_ns("pptp", "plb", "chicago")
    client = pptp_client(lab, ns, fields["server"], "bob", fields["password"], "tpptp", fields["routes"].split())
    address = wait_for(lambda: tun_address(ns, "tpptp"), timeout=20)
    assert address and address.startswith("198.18.3."), lab.log("tpptp.log")
    assert lab.pings(ns, lab.loopback("plb", "denver"), via="tpptp")
    assert wait_for(lambda: lab.pings(ns, INTERNET_HOST, 1, via="tpptp"), timeout=20)
    assert "UNENCRYPTED" in lab.log("tpptp.log")
    wrong = pptp_client(lab, ns, fields["server"], "bob", "not-" + fields["password"], "tpptq", [])
    assert wrong.wait(timeout=30) == 2  # the engine's "authentication failed"
    assert tun_address(ns, "tpptq") is None
    assert client.poll() is None and lab.pings(ns, lab.loopback("plb", "chicago"), via="tpptp")


def test_local_socket_serves_its_slice_user_only(lab):
    point = next(s for s in lab.status["slivers"] if s["slice"] == "plb" and s["node"] == "seattle")
    sock = f"/run/vispd/{lab.name}/sockets/plb.seattle.sock"
    assert wait_for(lambda: os.path.exists(sock), timeout=5)
    status = json.loads((open(os.path.join(os.environ["VISPD_STATE_DIR"], lab.name, "run",
                                           "socket-plb-seattle.json")).read()))
    network = status["subnet"].split("/")[0]
    program_address = network[: network.rfind(".") + 1] + str(int(network.rsplit(".", 1)[1]) + 2)
    nyc = lab.loopback("plb", "new-york")

    def as_user(uid: int):
        return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                               SYSTEM_PYTHON, "tests/netns/socket_ping.py", sock, program_address, nyc, "3"],
                              capture_output=True, text=True, cwd=ROOT)

    ok = as_user(point["uid"])
    assert ok.returncode == 0 and ok.stdout.strip() == f"reply from {nyc} to {program_address}", ok.stdout + ok.stderr
    other = next(s["uid"] for s in lab.status["slivers"] if s["slice"] == "research")
    denied = as_user(other)
    assert denied.returncode == 3 and denied.stdout.strip() == "EACCES"


def test_down_stops_every_access_daemon(tmp_path, state_dir):
    name = unique_name("ta")
    path = renamed_topology(tmp_path, os.path.join(TOPOLOGIES, "abilene.yaml"), name)
    vispd("up", path)
    run = state_dir / name / "run"
    pids = {p.name[:-4]: int(p.read_text().split()[0]) for p in run.glob("*.pid")}
    kinds = sorted({n.split("-")[0] for n in pids})
    try:
        # the border router and its BFD daemon (washington and sunnyvale peer with providers)
        # and the delay processes of Abilene's geographic link delays, one per node
        assert kinds == ["bfdd", "bird", "border", "delay", "egress", "exabgp", "openvpn", "pptp", "socket",
                         "wireguard"], kinds
        assert sum(n.startswith("socket-") for n in pids) == 11
        assert sum(n.startswith("delay-") for n in pids) == 11
    finally:
        vispd("down", path)  # also when the census fails: a failed test leaves nothing up
    time.sleep(0.2)
    alive = [n for n, pid in pids.items() if os.path.exists(f"/proc/{pid}")
             and open(f"/proc/{pid}/stat").read().rsplit(")", 1)[-1].split()[0] != "Z"]
    assert alive == []
    assert not os.path.exists(f"/run/vispd/{name}")
    assert not [n for n in os.listdir("/run/netns") if n.startswith(f"vispd.{name}.")]
