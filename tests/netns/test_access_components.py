"""The access components on the real kernel, each in namespaces of its own (`vacc-*`)
joined by veths, with the real daemons: OpenVPN (server and clients, our PKI, revocation
while another client stays connected), WireGuard in user space (right key reaches the
address behind the server, a wrong key gets no handshake), and the local socket relay (an
unprivileged program round-trips an ICMP echo through it; another uid gets EACCES; a
spoofed source is dropped). Every process is stopped by PID and every namespace deleted.

`test_measure_access_throughput_and_connect_times` prints one JSON line of measurements
(run with -s to see it); it asserts nothing about speed."""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid

import pytest

from access import localsock, openvpn, pki
from access import wireguard as wg

pytestmark = pytest.mark.root

SYSTEM_PYTHON = "/usr/bin/python3"  # the unprivileged user cannot read root's pyenv
PREFIX = "10.200.0.0/16"            # the "slice prefix"
BEHIND = "10.200.0.1"               # an address behind the server (its namespace's loopback)
SERVER_PUBLIC = "198.18.0.1"
PROGRAM_UID, OTHER_UID = 64901, 64902


def need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")


class Lab:
    """Namespaces `vacc-TAG-ROLE`: a server joined to every client by a bridge on
    198.18.0.0/24; processes started here are stopped by PID."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:5]
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.logs: dict[str, str] = {}
        self.dir = tempfile.mkdtemp(prefix=f"vacc-{self.tag}-")
        os.chmod(self.dir, 0o755)

    def ns(self, role: str) -> str:
        return f"vacc-{self.tag}-{role}"

    def ip(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True, check=check)

    def exec(self, ns: str, *argv: str, check: bool = False, timeout: float = 30,
             **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=check,
                              timeout=timeout, **kwargs)

    def add_ns(self, role: str) -> str:
        name = self.ns(role)
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.namespaces.append(name)
        self.ip(name, "link", "set", "lo", "up")
        return name

    def server(self) -> str:
        name = self.add_ns("srv")
        self.ip(name, "link", "add", "br0", "type", "bridge")
        self.ip(name, "address", "add", f"{SERVER_PUBLIC}/24", "dev", "br0")
        self.ip(name, "link", "set", "br0", "up")
        self.ip(name, "address", "add", f"{BEHIND}/32", "dev", "lo")
        return name

    def client(self, role: str, index: int) -> str:
        server, name = self.ns("srv"), self.add_ns(role)
        subprocess.run(["ip", "link", "add", f"p{index}", "netns", server, "type", "veth", "peer", "name", "eth0",
                        "netns", name], check=True)
        self.ip(server, "link", "set", f"p{index}", "master", "br0", "up")
        self.ip(name, "address", "add", f"198.18.0.{10 + index}/24", "dev", "eth0")
        self.ip(name, "link", "set", "eth0", "up")
        return name

    def start(self, ns: str, argv: list[str], log: str, env: dict | None = None,
              cwd: str | None = None) -> subprocess.Popen:
        path = os.path.join(self.dir, log)
        with open(path, "ab") as handle:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL, stdout=handle,
                                    stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd or self.dir,
                                    env={**os.environ, **(env or {})})
        self.procs.append(proc)
        self.logs[log] = path
        return proc

    def log(self, name: str) -> str:
        with open(self.logs[name], errors="replace") as handle:
            return handle.read()

    def stop(self, proc: subprocess.Popen, grace: float = 3.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()

    def close(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
        for name in self.namespaces:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def address_of(self, ns: str, dev: str) -> str | None:
        out = self.ip(ns, "-4", "-o", "address", "show", "dev", dev, check=False).stdout.split()
        return out[out.index("inet") + 1] if "inet" in out else None

    def wait_address(self, ns: str, dev: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            address = self.address_of(ns, dev)
            if address:
                return address
            time.sleep(0.01)
        return None

    def pings(self, ns: str, target: str, count: int = 1, wait: float = 1.0) -> bool:
        result = self.exec(ns, "ping", "-n", "-c", str(count), "-W", str(wait), target)
        return result.returncode == 0

    def iperf(self, server_ns: str, client_ns: str, address: str, seconds: int = 3, port: int = 5201) -> float:
        """Mbit/s received, one bounded run."""
        server = self.start(server_ns, ["iperf3", "-s", "-1", "-B", address, "-p", str(port)], f"iperf-{port}.log")
        try:
            time.sleep(0.3)
            out = self.exec(client_ns, "iperf3", "-c", address, "-p", str(port), "-t", str(seconds), "-J",
                            timeout=seconds + 20)
            return json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6
        finally:
            self.stop(server)


@pytest.fixture
def lab():
    made = Lab()
    try:
        yield made
    finally:
        made.close()


# --------------------------------------------------------------------------- OpenVPN

def openvpn_server(lab: Lab) -> tuple[openvpn.OpenVPNServer, subprocess.Popen, str]:
    """A running access point in the lab's server namespace; returns (cfg, proc, run_dir)."""
    pki_dir, run_dir = os.path.join(lab.dir, "pki"), os.path.join(lab.dir, "run")
    os.makedirs(run_dir)
    cfg = openvpn.OpenVPNServer(name="ovpn-t", pki_dir=pki_dir, dev=openvpn.device_name("vacc", lab.tag, "srv"),
                                local=SERVER_PUBLIC, pool="10.200.3.0/24", routes=(PREFIX,), port=1194)
    openvpn.ensure_pki(cfg, ("alice", "bob", "carol"), label="vacc")
    spec = openvpn.daemon(cfg, run_dir)
    for leaf, content in spec.files.items():
        with open(os.path.join(run_dir, leaf), "w") as handle:
            handle.write(content)
    proc = lab.start(lab.ns("srv"), list(spec.argv), "ovpn-server.log", cwd=run_dir)
    mgmt = os.path.join(run_dir, cfg.file("mgmt"))
    deadline = time.monotonic() + 10
    while not os.path.exists(mgmt) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.path.exists(mgmt), lab.log("ovpn-server.log")
    return cfg, proc, run_dir


def ovpn_client(lab: Lab, ns: str, profile_text: str, who: str) -> subprocess.Popen:
    path = os.path.join(lab.dir, f"{who}.ovpn")
    with open(path, "w") as handle:
        handle.write(profile_text)
    os.chmod(path, 0o600)
    return lab.start(ns, openvpn.client_command(path, dev="tun0", extra=("--connect-retry", "1", "1")),
                     f"ovpn-{who}.log")


def test_openvpn_clients_connect_and_bad_or_revoked_certificates_do_not(lab):
    need("openvpn")
    lab.server()
    a, b, m = lab.client("alice", 1), lab.client("bob", 2), lab.client("mallory", 3)
    cfg, server, run_dir = openvpn_server(lab)
    mgmt = os.path.join(run_dir, cfg.file("mgmt"))

    # alice and bob connect, get pool addresses and reach the address behind the server
    alice = ovpn_client(lab, a, openvpn.client_profile(cfg.pki_dir, cfg, "alice"), "alice")
    bob = ovpn_client(lab, b, openvpn.client_profile(cfg.pki_dir, cfg, "bob"), "bob")
    alice_address = lab.wait_address(a, "tun0", 15)
    bob_address = lab.wait_address(b, "tun0", 15)
    assert alice_address and bob_address, lab.log("ovpn-server.log")[-3000:]
    for address in (alice_address, bob_address):
        assert ipaddress.IPv4Interface(address).network == ipaddress.IPv4Network(cfg.pool)
        assert address.split("/")[0] != cfg.server_address
    assert alice_address != bob_address
    assert PREFIX in lab.ip(a, "route").stdout  # the pushed slice route
    assert lab.pings(a, BEHIND) and lab.pings(b, BEHIND)
    assert {c["Common Name"] for c in openvpn.connected(mgmt)} == {"alice", "bob"}

    # a certificate of another CA (even with a known CN) is refused
    other = os.path.join(lab.dir, "other-ca")
    forged = pki.ensure_client(other, "carol")
    ca_text = open(pki.ca_paths(cfg.pki_dir)[0]).read()
    mallory = ovpn_client(lab, m, openvpn.client_profile_text(cfg, "carol", ca_text, open(forged.cert).read(),
                                                             open(forged.key).read()), "mallory")
    assert lab.wait_address(m, "tun0", 4) is None
    assert "VERIFY ERROR" in lab.log("ovpn-server.log")
    lab.stop(mallory)
    assert lab.pings(a, BEHIND)

    # revoking bob: the CRL is rewritten, bob's live session is dropped (the client is told
    # to halt), alice stays connected; bob cannot come back; no server restart
    pki.revoke(cfg.pki_dir, "bob")
    assert openvpn.disconnect(mgmt, "bob") == 1
    bob.wait(10)  # HALT pushed by the server: the client exits on its own
    assert lab.address_of(b, "tun0") is None
    assert lab.pings(a, BEHIND, count=3, wait=1)
    bob_again = ovpn_client(lab, b, openvpn.client_profile(cfg.pki_dir, cfg, "bob"), "bob-again")
    assert lab.wait_address(b, "tun0", 4) is None
    assert "certificate revoked" in lab.log("ovpn-server.log")
    lab.stop(bob_again)
    assert lab.pings(a, BEHIND)
    assert {c["Common Name"] for c in openvpn.connected(mgmt)} == {"alice"}
    assert server.poll() is None and alice.poll() is None

    # carol, issued before bob's revocation, still gets in: the CRL names bob only
    carol = ovpn_client(lab, m, openvpn.client_profile(cfg.pki_dir, cfg, "carol"), "carol")
    assert lab.wait_address(m, "tun0", 15)
    assert lab.pings(m, BEHIND)
    lab.stop(carol)

    # stopped by PID: the tun device goes with the server
    lab.stop(server)
    assert server.returncode is not None
    assert lab.ip(lab.ns("srv"), "link", "show", cfg.dev, check=False).returncode != 0


# --------------------------------------------------------------------------- WireGuard

def wg_server(lab: Lab, users: dict[str, str]) -> tuple[wg.WireGuardServer, subprocess.Popen]:
    """A running WireGuard access point (supervisor + wireguard-go) for {user: public key}."""
    keys = os.path.join(lab.dir, "wgkeys")
    key_file, public = wg.ensure_key(keys, "server")
    addresses = wg.assign_addresses("10.200.4.0/24", list(users))
    cfg = wg.WireGuardServer(name="wg-t", ifname=wg.interface_name("vacc", lab.tag, "srv"), address="10.200.4.1/24",
                             endpoint=SERVER_PUBLIC, port=51820, routes=(PREFIX,), private_key_file=key_file,
                             public_key=public,
                             peers=tuple(wg.WgPeer(u, k, addresses[u]) for u, k in sorted(users.items())))
    run_dir = os.path.join(lab.dir, "run-wg")
    os.makedirs(run_dir)
    spec = wg.daemon(cfg, run_dir)
    for leaf, content in spec.files.items():
        with open(os.path.join(run_dir, leaf), "w") as handle:
            handle.write(content)
    proc = lab.start(lab.ns("srv"), list(spec.argv), "wg-server.log", env=spec.env, cwd=run_dir)
    deadline = time.monotonic() + 10
    while f"{cfg.ifname} up" not in lab.log("wg-server.log") and time.monotonic() < deadline:
        assert proc.poll() is None, lab.log("wg-server.log")
        time.sleep(0.02)
    assert lab.address_of(lab.ns("srv"), cfg.ifname) == "10.200.4.1/24", lab.log("wg-server.log")
    return cfg, proc


def wg_client(lab: Lab, ns: str, profile: str, who: str) -> tuple[str, subprocess.Popen]:
    ifname = wg.interface_name("vacc", lab.tag, who)
    key_file = os.path.join(lab.dir, f"{who}.wgkey")
    parsed = wg.parse_wg_quick(profile)
    with open(os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
        handle.write(parsed["interface"]["PrivateKey"] + "\n")
    proc = lab.start(ns, [wg.WIREGUARD_GO, "-f", ifname], f"wg-{who}.log")
    deadline = time.monotonic() + 10
    while lab.ip(ns, "link", "show", ifname, check=False).returncode != 0 or not os.path.exists(wg.socket_path(ifname)):
        assert proc.poll() is None and time.monotonic() < deadline, lab.log(f"wg-{who}.log")
        time.sleep(0.02)
    for step in wg.client_steps(parsed, ifname, key_file):
        assert lab.exec(ns, *step).returncode == 0, step
    return ifname, proc


def handshakes(ifname: str, ns: str, lab: Lab) -> dict[str, int]:
    out = lab.exec(ns, "wg", "show", ifname, "latest-handshakes").stdout
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if line.strip()}


def test_wireguard_right_key_reaches_the_slice_and_wrong_key_does_not(lab):
    need("wireguard-go", "wg")
    lab.server()
    a, e = lab.client("alice", 1), lab.client("eve", 2)
    alice_key = wg.generate_private_key()
    cfg, server = wg_server(lab, {"alice": wg.public_key(alice_key)})
    alice_if, alice = wg_client(lab, a, wg.client_config(cfg, "alice", alice_key), "alice")
    assert lab.pings(a, BEHIND, count=1, wait=3)
    assert handshakes(cfg.ifname, lab.ns("srv"), lab)[wg.public_key(alice_key)] > 0
    # eve holds alice's profile but her own key: no handshake, no access
    eve_profile = wg.client_config(cfg, "alice", alice_key).replace(alice_key, wg.generate_private_key())
    eve_if, eve = wg_client(lab, e, eve_profile, "eve")
    assert not lab.pings(e, BEHIND, count=2, wait=1)
    assert handshakes(eve_if, e, lab)[cfg.public_key] == 0
    assert lab.pings(a, BEHIND)
    # stop by PID: the supervisor takes wireguard-go, its interface and its socket along
    lab.stop(server)
    assert server.returncode == 0, lab.log("wg-server.log")
    deadline = time.monotonic() + 5
    while os.path.exists(wg.socket_path(cfg.ifname)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(wg.socket_path(cfg.ifname))
    assert lab.ip(lab.ns("srv"), "link", "show", cfg.ifname, check=False).returncode != 0
    for proc in (alice, eve):
        lab.stop(proc)
    assert not os.path.exists(wg.socket_path(alice_if)) and not os.path.exists(wg.socket_path(eve_if))


# --------------------------------------------------------------------------- local socket

PROGRAM = r'''
import socket, struct, sys, select, time
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
def echo(src, dst, ident):
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"vacc-localsock"
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), ident, 0, 64, 1, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + icmp
path, src, dst, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
try:
    s.connect(path)
except PermissionError:
    print("EACCES"); sys.exit(3)
ident = 0x4242
s.send(echo(src, dst, ident))
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    if not select.select([s], [], [], max(0, deadline - time.monotonic()))[0]:
        break
    p = s.recv(65535)
    ihl = (p[0] & 15) * 4
    if p[9] == 1 and p[ihl] == 0 and struct.unpack("!H", p[ihl + 4:ihl + 6])[0] == ident:
        print("reply from %s to %s uid %d" % (socket.inet_ntoa(p[12:16]), socket.inet_ntoa(p[16:20]),
                                             __import__("os").getuid()))
        sys.exit(0)
print("no reply"); sys.exit(1)
'''


def test_local_socket_unprivileged_round_trip_and_others_refused(lab):
    need("setpriv")
    assert os.path.exists(SYSTEM_PYTHON)
    sliver = lab.add_ns("sliver")
    far = lab.add_ns("far")
    subprocess.run(["ip", "link", "add", "v0", "netns", sliver, "type", "veth", "peer", "name", "v0", "netns", far],
                   check=True)
    lab.ip(sliver, "address", "add", "10.200.9.1/30", "dev", "v0")
    lab.ip(far, "address", "add", "10.200.9.2/30", "dev", "v0")
    for ns in (sliver, far):
        lab.ip(ns, "link", "set", "v0", "up")
    lab.ip(far, "route", "add", PREFIX, "via", "10.200.9.1")
    lab.exec(sliver, "sysctl", "-qw", "net.ipv4.ip_forward=1", check=True)

    sock_dir = os.path.join(lab.dir, "sock")
    os.makedirs(sock_dir)
    os.chmod(sock_dir, 0o755)
    program = os.path.join(lab.dir, "program.py")
    with open(program, "w") as handle:
        handle.write(PROGRAM)
    os.chmod(program, 0o644)
    config = {"socket": os.path.join(sock_dir, "plb.sock"), "uid": PROGRAM_UID, "gid": PROGRAM_UID,
              "tun": "vls" + lab.tag, "subnet": "10.200.0.252/30", "log": os.path.join(lab.dir, "relay.log")}
    run_dir = os.path.join(lab.dir, "run-ls")
    os.makedirs(run_dir)
    spec = localsock.daemon("localsock-t", config, run_dir)
    for leaf, content in spec.files.items():
        with open(os.path.join(run_dir, leaf), "w") as handle:
            handle.write(content)
    relay = lab.start(sliver, list(spec.argv), "relay.out", env=spec.env, cwd=run_dir)
    deadline = time.monotonic() + 10
    while not os.path.exists(config["socket"]):
        assert relay.poll() is None and time.monotonic() < deadline, lab.log("relay.out")
        time.sleep(0.02)
    st = os.stat(config["socket"])
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (PROGRAM_UID, PROGRAM_UID, 0o600)
    assert lab.address_of(sliver, config["tun"]) == "10.200.0.253/30"

    def program_as(uid: int, src: str, dst: str = "10.200.9.2", timeout: str = "3"):
        return lab.exec(sliver, "setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups",
                        "--no-new-privs", SYSTEM_PYTHON, program, config["socket"], src, dst, timeout)

    ok = program_as(PROGRAM_UID, "10.200.0.254")
    assert ok.returncode == 0 and ok.stdout.strip() == f"reply from 10.200.9.2 to 10.200.0.254 uid {PROGRAM_UID}", \
        ok.stdout + ok.stderr + open(config["log"]).read()
    denied = program_as(OTHER_UID, "10.200.0.254", timeout="1")
    assert denied.returncode == 3 and denied.stdout.strip() == "EACCES"
    # a spoofed source (the far address of another sliver) never enters the vISP
    spoofed = program_as(PROGRAM_UID, "10.200.9.1", timeout="1")
    assert spoofed.returncode == 1
    assert "spoofed-source" in open(config["log"]).read()
    # stop by PID: socket and TUN go
    lab.stop(relay)
    assert relay.returncode == 0
    assert not os.path.exists(config["socket"])
    assert lab.ip(sliver, "link", "show", config["tun"], check=False).returncode != 0


# --------------------------------------------------------------------------- measurements

def test_measure_access_throughput_and_connect_times(lab):
    """One run, side by side: iperf3 over the plain veth, through OpenVPN, through
    WireGuard; connect times (client start -> tunnel address; WireGuard: first ping with a
    handshake). Printed as JSON; nothing asserted about speed."""
    need("openvpn", "wireguard-go", "wg", "iperf3")
    lab.server()
    a = lab.client("alice", 1)
    w = lab.client("wgalice", 2)
    cfg, _server, _ = openvpn_server(lab)
    profile = openvpn.client_profile(cfg.pki_dir, cfg, "alice")
    connects = []
    for attempt in range(3):
        started = time.monotonic()
        client = ovpn_client(lab, a, profile, f"alice{attempt}")
        assert lab.wait_address(a, "tun0", 15)
        connects.append(time.monotonic() - started)
        if attempt < 2:
            lab.stop(client)
            while lab.address_of(a, "tun0"):
                time.sleep(0.01)
    alice_key = wg.generate_private_key()
    wcfg, _wserver = wg_server(lab, {"alice": wg.public_key(alice_key)})
    started = time.monotonic()
    wg_client(lab, w, wg.client_config(wcfg, "alice", alice_key), "wgalice")
    assert lab.pings(w, BEHIND, count=1, wait=3)
    wg_connect = time.monotonic() - started

    plain = [lab.iperf("vacc-" + lab.tag + "-srv", a, SERVER_PUBLIC, port=5201)]
    ovpn = [lab.iperf("vacc-" + lab.tag + "-srv", a, BEHIND, port=5202)]
    wgm = [lab.iperf("vacc-" + lab.tag + "-srv", w, BEHIND, port=5203)]
    plain.append(lab.iperf("vacc-" + lab.tag + "-srv", a, SERVER_PUBLIC, port=5204))
    result = {
        "plain_veth_mbps": round(statistics.median(plain)),
        "openvpn_mbps": round(statistics.median(ovpn)),
        "wireguard_mbps": round(statistics.median(wgm)),
        "openvpn_vs_plain_ratio": round(statistics.median(ovpn) / statistics.median(plain), 4),
        "openvpn_connect_s": round(statistics.median(connects), 3),
        "wireguard_connect_s": round(wg_connect, 3),
    }
    print("\nACCESS-MEASUREMENTS " + json.dumps(result, sort_keys=True))
