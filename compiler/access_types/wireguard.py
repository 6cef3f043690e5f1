"""WireGuard access in user space, the access type (pure): names, keys' public halves,
addresses, the supervisor's configuration, a user's wg-quick profile, and the keys it needs.

An access point is one `wireguard-go -f IFNAME` process in the sliver's namespace, run by
vispd's supervisor (`python -m access.wireguard --config FILE`: it starts wireguard-go,
then applies `server_steps`). wireguard-go's control socket /var/run/wireguard/IFNAME.sock
lives in the machine-wide /var/run, so interface names are unique across the machine
(`interface_name`, a hash of topology, slice, node). `wg set` gives the interface the
server's private key (a 0600 file in the slice's key directory, never in the run
directory), the listen port and one peer per user with allowed-ips = the user's /32 from
the pool. A client whose key is not a configured peer gets no handshake, hence no access.

Revocation (`vispd access revoke`) records the user in the slice's key directory, removes
the peer from the running interface at once (`wg set IF peer KEY remove`), and leaves the
user out of the peers from then on: the next `up` reloads the supervisor (SIGHUP: it
applies its new peer list, removing peers no longer listed) without disturbing the others.
"""
from __future__ import annotations

import base64
import ipaddress
import json
import os
import signal
import zlib
from dataclasses import asdict, dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from model.errors import VispdError
from model.naming import hashed_ifname

from ..resources import Daemon
from .base import AccessType, ServerContext, keys_dir, placeholder_key, tunnel_routes

WIREGUARD_GO = "wireguard-go"
WG = "wg"
DEFAULT_MTU = 1420


def interface_name(topology: str, slice_name: str, node: str, instance: str = "") -> str:
    """Machine-wide unique interface name: `vw` + 13 hex characters of a hash."""
    return hashed_ifname("vw", "wireguard", topology, slice_name, node, instance)


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
    routes            prefixes clients send into the tunnel (AllowedIPs: the slice prefix, and
                      0.0.0.0/0 with egress: wg-quick then routes everything but its own,
                      marked, packets through the tunnel, so the endpoint stays reachable)
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
    there once its interface and control socket exist), for callers that sequence them
    themselves rather than through the supervisor."""
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


def supervisor_daemon(cfg: WireGuardServer, node: str, ns: str, runtime) -> Daemon:
    """The supervisor (wireguard-go + configuration) as a process in the sliver's namespace."""
    conf = f"{cfg.name}.json"
    return Daemon(node=node, ns=ns, name=cfg.name,
                  argv=runtime.module_command("access.wireguard", "--config", runtime.run_file(conf)),
                  files=((conf, json.dumps(supervisor_config(cfg), indent=1, sort_keys=True) + "\n"),),
                  env=runtime.module_env(), listens=(("udp", "0.0.0.0", cfg.port),), reload_signal=signal.SIGHUP)


def server_of(ctx: ServerContext) -> WireGuardServer:
    point, topology = ctx.point, ctx.topology
    server_key = ctx.credentials.get(("wireguard-server", point.slice, point.node))
    key_dir = keys_dir(ctx.runtime.state_dir, point.slice)
    private_file = server_key[0] if server_key else os.path.join(key_dir, f"server-{point.node}.key")
    public = server_key[1] if server_key else placeholder_key(topology.name, point.slice, point.node)
    pool = ipaddress.IPv4Network(point.pool)
    addresses = assign_addresses(str(pool), list(point.users))  # revoked or not: nobody else moves
    peers = tuple(WgPeer(user, ctx.credentials.get(("wireguard-user", point.slice, user))
                         or placeholder_key(topology.name, point.slice, user), addresses[user])
                  for user in point.users if not revoked(ctx.credentials, point.slice, user))
    return WireGuardServer(
        name=f"wireguard-{point.slice}-{point.node}", ifname=interface_name(topology.name, point.slice, point.node),
        address=f"{next(pool.hosts())}/{pool.prefixlen}", endpoint=point.dial or point.public_address,
        port=point.port, routes=tunnel_routes(ctx.slice, ctx.slice_prefix), private_key_file=private_file,
        public_key=public, peers=peers)


def revoked(credentials: dict, slice_name: str, user: str) -> bool:
    return bool(credentials.get(("wireguard-revoked", slice_name, user)))


class WireGuard(AccessType):
    NAME = "wireguard"
    DEFAULT_PORT = 51820
    REVOCABLE = True

    def server(self, ctx: ServerContext) -> Daemon:
        return supervisor_daemon(server_of(ctx), ctx.point.node, ctx.ns, ctx.runtime)

    def public_credentials(self, topology, slice_name, points, store, create) -> dict:
        """Server keys (private key file, public key) and users' public keys: a user whose
        `credential:` is a public key brings their own."""
        found: dict = {}
        gone = store.revoked_keys(slice_name)
        for entry, node in points:
            server = store.key_pair(slice_name, f"server-{node}", create)
            if server:
                found[("wireguard-server", slice_name, node)] = server
            for user in entry.users:
                if user.name in gone:
                    found[("wireguard-revoked", slice_name, user.name)] = True
                    continue
                if user.credential and valid_key(user.credential):
                    found[("wireguard-user", slice_name, user.name)] = user.credential
                    continue
                client = store.key_pair(slice_name, f"client-{user.name}", create)
                if client:
                    found[("wireguard-user", slice_name, user.name)] = client[1]
        return found

    def profile(self, ctx, user, store) -> str:
        if revoked(ctx.credentials, ctx.point.slice, user):
            raise VispdError(f"'{user}''s WireGuard key is revoked in slice '{ctx.point.slice}'")
        private = store.private_key(ctx.point.slice, f"client-{user}")
        if private is None:
            raise VispdError(f"'{user}' brings their own WireGuard key, or `vispd up` has not run yet")
        return client_config(server_of(ctx), user, private)

    def revoke(self, contexts, user, store, control) -> list[str]:
        """Revoke `user`'s key in the slice and remove its peer from each running access point
        of `contexts` (`control.remove_peer`); the other peers are not touched."""
        slice_name = contexts[0].point.slice
        store.revoke_key(slice_name, user)
        said = [f"revoked {user}'s WireGuard key in slice {slice_name}"]
        for ctx in contexts:
            server = server_of(ctx)
            if not any(peer.user == user for peer in server.peers):
                continue  # revoked before
            try:
                control.remove_peer(ctx.ns, server.ifname, server.peer(user).public_key)
                said.append(f"{ctx.point.node}: peer removed")
            except OSError as exc:
                said.append(f"{ctx.point.node}: server not reachable ({exc.strerror or exc}); "
                            "the peer is left out at its next start")
        return said
