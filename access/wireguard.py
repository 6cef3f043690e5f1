"""WireGuard access points in user space (wireguard-go; this kernel has no WireGuard module).

An access point is one `wireguard-go -f IFNAME` process in the sliver's namespace. Its
control socket /var/run/wireguard/IFNAME.sock lives in the machine-wide /var/run, not per
namespace, so interface names must be unique across the machine: `interface_name` derives
them from a hash of (topology, slice, node, instance), 15 characters. After the interface
appears, `wg set` gives it the server's private key (a 0600 file in the caller's key
directory, never in the run directory), the listen port and one peer per user with
allowed-ips = the user's /32 from the pool; `ip` gives it the server's address (with the
pool's length, hence the route to the pool) and brings it up. A client whose key is not a
configured peer gets no handshake, hence no access.

`python -m access.wireguard --config FILE` is the process vispd runs: it starts
wireguard-go as its child (killed with it: PR_SET_PDEATHSIG), applies `server_steps`, and
waits; SIGTERM stops wireguard-go, which removes the interface and its socket. `daemon`
gives its argv and files.

Pure: names, key derivation, address assignment, `server_setup`/`server_steps`,
`client_config`, `parse_wg_quick`, `client_steps`, `daemon`. I/O: key files
(`ensure_key`, `ensure_client_key`, `client_profile`), the supervisor.
"""
from __future__ import annotations

import argparse
import base64
import ctypes
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from dataclasses import asdict, dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .spec import DaemonSpec, atomic_write, hashed_ifname, module_env, python

WIREGUARD_GO = "wireguard-go"
WG = "wg"
SOCKET_DIR = "/var/run/wireguard"
DEFAULT_MTU = 1420


# --------------------------------------------------------------------------- pure

def interface_name(topology: str, slice_name: str, node: str, instance: str = "") -> str:
    """Machine-wide unique interface name: `vw` + 13 hex characters of a hash."""
    return hashed_ifname("vw", "wireguard", topology, slice_name, node, instance)


def generate_private_key() -> str:
    raw = X25519PrivateKey.generate().private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                    serialization.NoEncryption())
    return base64.b64encode(raw).decode()


def public_key(private_key: str) -> str:
    """The base64 public key of a base64 private key (what `wg pubkey` prints)."""
    raw = base64.b64decode(private_key.strip(), validate=True)
    if len(raw) != 32:
        raise ValueError("a WireGuard key is 32 bytes")
    public = X25519PrivateKey.from_private_bytes(raw).public_key()
    return base64.b64encode(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def valid_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 32
    except ValueError:
        return False


def assign_addresses(pool: str, users: list[str] | tuple[str, ...]) -> dict[str, str]:
    """{user: address} in `pool`, the first host being the server's. Each user's address
    is derived from its name (crc32, probing upward on a clash, users taken in sorted
    order), so adding a user does not move the others' addresses (and their profiles)."""
    network = ipaddress.IPv4Network(pool)
    hosts = list(network.hosts())[1:]
    if len(users) > len(hosts):
        raise ValueError(f"pool {pool} has room for {len(hosts)} clients, not {len(users)}")
    taken: set[int] = set()
    result = {}
    for user in sorted(set(users)):
        index = zlib.crc32(user.encode()) % len(hosts)
        while index in taken:
            index = (index + 1) % len(hosts)
        taken.add(index)
        result[user] = str(hosts[index])
    return result


@dataclass(frozen=True)
class WgPeer:
    user: str
    public_key: str
    address: str  # the client's tunnel address (allowed-ips ADDRESS/32)


@dataclass(frozen=True)
class WireGuardServer:
    """One access point.

    name              instance name (run-directory files NAME.json, NAME.log)
    ifname            interface name, unique machine-wide (`interface_name`)
    address           server address with the pool's length, e.g. "10.1.4.1/26"
    endpoint          public address clients dial (wireguard-go listens on every address
                      of the sliver's namespace)
    port              UDP listen port
    routes            prefixes clients send into the tunnel (AllowedIPs: the slice prefix)
    private_key_file  the server's key (0600, outside the run directory)
    public_key        its public key (for client configs)
    peers             one per user
    """

    name: str
    ifname: str
    address: str
    endpoint: str
    port: int
    routes: tuple[str, ...]
    private_key_file: str
    public_key: str
    peers: tuple[WgPeer, ...] = ()
    mtu: int = DEFAULT_MTU
    client_keepalive: int = 25

    def __post_init__(self) -> None:
        if not 0 < len(self.ifname) <= 15:
            raise ValueError(f"interface name {self.ifname!r} must have 1..15 characters")
        pool = ipaddress.IPv4Interface(self.address).network
        for peer in self.peers:
            if ipaddress.IPv4Address(peer.address) not in pool:
                raise ValueError(f"peer {peer.user} address {peer.address} outside the pool {pool}")
            if not valid_key(peer.public_key):
                raise ValueError(f"peer {peer.user} has no valid public key")

    def peer(self, user: str) -> WgPeer:
        for peer in self.peers:
            if peer.user == user:
                return peer
        raise KeyError(f"no WireGuard peer {user!r} at {self.name}")


def server_steps(cfg: WireGuardServer) -> list[list[str]]:
    """Commands run (in the sliver's namespace) once `wireguard-go -f IFNAME` is up."""
    wg_set = [WG, "set", cfg.ifname, "private-key", cfg.private_key_file, "listen-port", str(cfg.port)]
    for peer in sorted(cfg.peers, key=lambda p: p.user):
        wg_set += ["peer", peer.public_key, "allowed-ips", f"{peer.address}/32"]
    return [
        wg_set,
        ["ip", "address", "replace", cfg.address, "dev", cfg.ifname],
        ["ip", "link", "set", "dev", cfg.ifname, "mtu", str(cfg.mtu), "up"],
    ]


def server_setup(cfg: WireGuardServer) -> tuple[list[str], list[list[str]]]:
    """(the foreground process to start in the sliver's namespace, the commands to run
    there once its interface and control socket exist). `daemon` wraps both in one
    supervised process; this is for callers that sequence them themselves."""
    return [WIREGUARD_GO, "-f", cfg.ifname], server_steps(cfg)


def client_config(cfg: WireGuardServer, user: str, private_key: str) -> str:
    """A standard wg-quick file for `user` (its private key as vispd generated it)."""
    peer = cfg.peer(user)
    if public_key(private_key) != peer.public_key:
        raise ValueError(f"the private key given for {user!r} does not match its peer's public key")
    return "\n".join([
        f"# vispd: WireGuard profile for {user} at access point {cfg.name}",
        "[Interface]",
        f"PrivateKey = {private_key.strip()}",
        f"Address = {peer.address}/32",
        f"MTU = {cfg.mtu}",
        "",
        "[Peer]",
        f"PublicKey = {cfg.public_key}",
        f"Endpoint = {cfg.endpoint}:{cfg.port}",
        f"AllowedIPs = {', '.join(cfg.routes)}",
        *([f"PersistentKeepalive = {cfg.client_keepalive}"] if cfg.client_keepalive else []),
        "",
    ])


def parse_wg_quick(text: str) -> dict:
    """{'interface': {key: value}, 'peers': [{key: value}]} of a wg-quick file (keys as
    written; repeated keys such as Address or AllowedIPs are joined with ', ')."""
    result: dict = {"interface": {}, "peers": []}
    section = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip().lower()
            if name == "interface":
                section = result["interface"]
            elif name == "peer":
                section = {}
                result["peers"].append(section)
            else:
                raise ValueError(f"unknown section {line}")
            continue
        if section is None or "=" not in line:
            raise ValueError(f"unexpected line {raw!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        section[key] = f"{section[key]}, {value}" if key in section else value
    return result


def client_steps(parsed: dict, ifname: str, private_key_file: str) -> list[list[str]]:
    """What wg-quick would do for a parsed client file, once `wireguard-go -f IFNAME` runs
    (used by tests; users run `wg-quick up FILE`)."""
    interface = parsed["interface"]
    wg_set = [WG, "set", ifname, "private-key", private_key_file]
    routes = []
    for peer in parsed["peers"]:
        allowed = [a.strip() for a in peer["AllowedIPs"].split(",")]
        wg_set += ["peer", peer["PublicKey"], "endpoint", peer["Endpoint"], "allowed-ips", ",".join(allowed)]
        if "PersistentKeepalive" in peer:
            wg_set += ["persistent-keepalive", peer["PersistentKeepalive"]]
        routes += allowed
    steps = [wg_set]
    steps += [["ip", "address", "add", a.strip(), "dev", ifname] for a in interface["Address"].split(",")]
    steps.append(["ip", "link", "set", "dev", ifname, "mtu", interface.get("MTU", str(DEFAULT_MTU)), "up"])
    steps += [["ip", "route", "replace", r, "dev", ifname] for r in routes]
    return steps


def supervisor_config(cfg: WireGuardServer) -> dict:
    return {"name": cfg.name, "ifname": cfg.ifname, "steps": server_steps(cfg), "server": asdict(cfg)}


def daemon(cfg: WireGuardServer, run_dir: str, interpreter: str | None = None) -> DaemonSpec:
    """The supervisor (wireguard-go + configuration) as a process to run in the sliver's
    namespace with cwd = run_dir."""
    conf = f"{cfg.name}.json"
    return DaemonSpec(name=cfg.name,
                      argv=(interpreter or python(), "-m", "access.wireguard", "--config", os.path.join(run_dir, conf)),
                      files={conf: json.dumps(supervisor_config(cfg), indent=1, sort_keys=True) + "\n"},
                      env=module_env())


# --------------------------------------------------------------------------- I/O

def ensure_key(directory: str, name: str) -> tuple[str, str]:
    """(private key file, public key) of `name` in `directory`, generated once (0600)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, f"{name}.key")
    try:
        with open(path) as handle:
            private = handle.read().strip()
    except FileNotFoundError:
        private = generate_private_key()
        atomic_write(path, private + "\n", 0o600)
    return path, public_key(private)


def ensure_client_key(key_dir: str, user: str) -> tuple[str, str]:
    """(private key file, public key) of `user` in the slice's key directory."""
    return ensure_key(key_dir, f"client-{user}")


def client_profile(key_dir: str, cfg: WireGuardServer, user: str) -> str:
    """`user`'s wg-quick file, its private key read from the key directory."""
    return client_config(cfg, user, read_key(os.path.join(key_dir, f"client-{user}.key")))


def read_key(path: str) -> str:
    with open(path) as handle:
        return handle.read().strip()


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def socket_path(ifname: str) -> str:
    return os.path.join(SOCKET_DIR, f"{ifname}.sock")


def start_wireguard_go(ifname: str, stdout=None) -> subprocess.Popen:
    """`wireguard-go -f IFNAME` in the calling thread's namespace, dying with its parent."""
    env = {**os.environ, "WG_PROCESS_FOREGROUND": "1"}
    return subprocess.Popen([WIREGUARD_GO, "-f", ifname], stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=subprocess.STDOUT if stdout is not None else None, env=env,
                            preexec_fn=_die_with_parent)


def _has_interface(ifname: str) -> bool:
    """Whether `ifname` exists in this thread's namespace (/sys may show another's: a
    process that entered a namespace with setns keeps its old sysfs mount)."""
    try:
        socket.if_nametoindex(ifname)
        return True
    except OSError:
        return False


def wait_for_socket(ifname: str, child: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"wireguard-go exited with {child.returncode} before {ifname} came up")
        if os.path.exists(socket_path(ifname)) and _has_interface(ifname):
            return
        time.sleep(0.01)
    raise RuntimeError(f"{ifname}: no control socket after {timeout} s")


def run_steps(steps: list[list[str]]) -> None:
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(step)}: {result.stderr.strip() or result.returncode}")


def supervise(config: dict) -> int:
    ifname = config["ifname"]
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    child = start_wireguard_go(ifname, stdout=sys.stdout)
    try:
        wait_for_socket(ifname, child)
        run_steps(config["steps"])
        print(f"vispd-wireguard: {ifname} up", flush=True)
        while not stopping and child.poll() is None:
            time.sleep(0.2)
        return 0 if stopping else 1
    except RuntimeError as error:
        print(f"vispd-wireguard: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(3)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m access.wireguard",
                                     description="Run one WireGuard access point (wireguard-go + wg set) in this namespace.")
    parser.add_argument("--config", required=True, help="JSON file (or inline JSON) from access.wireguard.daemon")
    args = parser.parse_args(argv)
    text = args.config if args.config.lstrip().startswith("{") else open(args.config).read()
    return supervise(json.loads(text))


if __name__ == "__main__":
    sys.exit(main())
