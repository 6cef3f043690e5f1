"""OpenVPN access points (TLS only): the server's configuration, its command line, the
`.ovpn` profile a user imports into a stock OpenVPN 2.x client, and revocation.

One server per access point runs in the sliver's namespace, listening on the node's public
address; its tun device carries the client pool (a subnet of the slice's prefix: the
server takes the first address, clients the rest, `topology subnet`) and clients are told
to route the slice's prefix into the tunnel. Certificates come from the slice's PKI
(`access.pki`): the server requires a client certificate of the slice's CA that is not on
the CRL (`crl-verify`, re-read by OpenVPN whenever the file changed, at each new TLS
handshake, so revocation needs no restart), and clients check the server's CN.

An already connected client is not re-checked until its next renegotiation, so revocation
also disconnects it: the server has a management interface on a UNIX socket in the run
directory (root only), and `disconnect(socket, user)` looks up the sessions whose CN is
USER (`status 2`) and sends `client-kill CID HALT` for each: the server drops the session
and tells the client to exit. (Plain `kill CN` drops it on the server only: a UDP client
notices after its ping-restart timeout, reconnects, and is then refused by the CRL.)

Rendering (`server_files`, `client_profile_text`, commands, reply parsing) is pure; the
rest (reading the PKI, talking to the management socket) is I/O.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import time
from dataclasses import dataclass

from . import pki
from .spec import DaemonSpec, hashed_ifname

OPENVPN = "openvpn"


@dataclass(frozen=True)
class OpenVPNServer:
    """One access point.

    name     instance name: file stems in the run directory (NAME.conf, NAME.status,
             NAME.mgmt) and the server certificate's name in the PKI (CN server-NAME)
    pki_dir  the slice's PKI directory (access.pki layout)
    dev      tun device name in the sliver (see `device_name`)
    local    public address the server listens on
    pool     client subnet, e.g. "10.1.3.0/26" (a subnet of the slice prefix)
    routes   prefixes pushed to clients, e.g. ("10.1.0.0/16",) (the slice prefix)
    port     UDP/TCP port
    proto    "udp" or "tcp"
    remote   address clients dial, if not `local` (NAT in front of the node)
    """

    name: str
    pki_dir: str
    dev: str
    local: str
    pool: str
    routes: tuple[str, ...]
    port: int = 1194
    proto: str = "udp"
    remote: str | None = None
    keepalive: tuple[int, int] = (10, 60)
    verb: int = 3

    def __post_init__(self) -> None:
        if self.proto not in ("udp", "tcp"):
            raise ValueError(f"proto must be udp or tcp, not {self.proto!r}")
        if not 0 < len(self.dev) <= 15:
            raise ValueError(f"device name {self.dev!r} must have 1..15 characters")
        pool = ipaddress.IPv4Network(self.pool)
        if pool.prefixlen > 29:
            raise ValueError(f"pool {self.pool} is too small for OpenVPN (at most /29)")
        ipaddress.IPv4Address(self.local)
        for route in self.routes:
            ipaddress.IPv4Network(route)

    @property
    def server_address(self) -> str:
        """The server's own address on its tun device (first address of the pool)."""
        return str(next(ipaddress.IPv4Network(self.pool).hosts()))

    def file(self, suffix: str) -> str:
        return f"{self.name}.{suffix}"


def device_name(topology: str, slice_name: str, node: str, instance: str = "") -> str:
    """tun device name of an access point: `vo` + 13 hex characters of a hash."""
    return hashed_ifname("vo", "openvpn", topology, slice_name, node, instance)


def _net_mask(prefix: str) -> str:
    network = ipaddress.IPv4Network(prefix)
    return f"{network.network_address} {network.netmask}"


# --------------------------------------------------------------------------- pure rendering

def server_config(cfg: OpenVPNServer) -> str:
    cert_file, key_file = pki.leaf_paths(cfg.pki_dir, "server", cfg.name)
    lines = [
        f"# vispd: OpenVPN access point {cfg.name} (foreground, started and stopped by PID)",
        "mode server",
        "tls-server",
        f"dev {cfg.dev}",
        "dev-type tun",
        "disable-dco",  # no ovpn-dco kernel module here; say so instead of probing
        f"proto {cfg.proto}4" if cfg.proto == "udp" else "proto tcp4-server",
        f"local {cfg.local}",
        f"port {cfg.port}",
        "topology subnet",
        f"server {_net_mask(cfg.pool)}",
        *(f'push "route {_net_mask(route)}"' for route in cfg.routes),
        f"ca {pki.ca_paths(cfg.pki_dir)[0]}",
        f"cert {cert_file}",
        f"key {key_file}",
        "dh none",
        f"crl-verify {pki.crl_path(cfg.pki_dir)}",
        "remote-cert-tls client",
        "tls-version-min 1.2",
        f"keepalive {cfg.keepalive[0]} {cfg.keepalive[1]}",
        "persist-key",
        *(["explicit-exit-notify 1"] if cfg.proto == "udp" else []),
        f"status {cfg.file('status')} 2",
        "status-version 2",
        f"management {cfg.file('mgmt')} unix",
        "management-client-user root",
        f"verb {cfg.verb}",
    ]
    return "\n".join(lines) + "\n"


def server_files(cfg: OpenVPNServer) -> dict[str, str]:
    """{file name in the run directory: content}. Keys stay in the PKI directory (0600)."""
    return {cfg.file("conf"): server_config(cfg)}


def server_command(run_dir: str, conf: str) -> list[str]:
    """Foreground server: relative names in `conf` resolve against `run_dir`."""
    return [OPENVPN, "--cd", run_dir, "--config", conf]


def daemon(cfg: OpenVPNServer, run_dir: str) -> DaemonSpec:
    """The server as a process to run in the sliver's namespace (cwd = run_dir)."""
    return DaemonSpec(name=cfg.name, argv=tuple(server_command(run_dir, cfg.file("conf"))),
                      files=server_files(cfg))


def client_profile_text(cfg: OpenVPNServer, user: str, ca: str, cert: str, key: str) -> str:
    """A standard `.ovpn` profile with the certificates inline."""
    remote = cfg.remote or cfg.local
    lines = [
        f"# vispd: OpenVPN profile for {user} at access point {cfg.name}",
        "client",
        "dev tun",
        f"proto {cfg.proto}",
        f"remote {remote} {cfg.port}",
        "nobind",
        "remote-cert-tls server",
        f"verify-x509-name {pki.server_common_name(cfg.name)} name",
        "tls-version-min 1.2",
        "persist-key",
        "verb 3",
        "<ca>", ca.strip(), "</ca>",
        "<cert>", cert.strip(), "</cert>",
        "<key>", key.strip(), "</key>",
    ]
    return "\n".join(lines) + "\n"


def client_command(profile_path: str, dev: str | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    """A foreground client for tests (a user runs `openvpn --config PROFILE`)."""
    argv = [OPENVPN, "--config", profile_path]
    if dev:
        argv += ["--dev", dev]
    return argv + list(extra)


def client_kill_command(client_id: str, message: str = "HALT") -> str:
    """Management command dropping one client session; HALT tells the client to exit
    instead of reconnecting (it would be refused by the CRL anyway)."""
    if not str(client_id).isdigit() or message not in ("HALT", "RESTART"):
        raise ValueError(f"bad client-kill arguments {client_id!r} {message!r}")
    return f"client-kill {client_id} {message}\n"


def sessions_of(clients: list[dict[str, str]], common_name: str) -> list[str]:
    """Client IDs of the sessions authenticated as `common_name`."""
    return [c["Client ID"] for c in clients if c.get("Common Name") == common_name and "Client ID" in c]


def parse_status(text: str) -> list[dict[str, str]]:
    """Connected clients from a `status-version 2` file or management `status 2` reply."""
    header: list[str] = []
    clients = []
    for line in text.splitlines():
        fields = line.split(",")
        if fields[0] == "HEADER" and len(fields) > 1 and fields[1] == "CLIENT_LIST":
            header = fields[2:]
        elif fields[0] == "CLIENT_LIST":
            clients.append(dict(zip(header, fields[1:])) if header else {"Common Name": fields[1]})
    return clients


# --------------------------------------------------------------------------- I/O

def client_profile(pki_dir: str, cfg: OpenVPNServer, user: str) -> str:
    """The profile of `user` (its certificate must exist: `pki.ensure_client`)."""
    ca, cert, key = pki.read_client_material(pki_dir, user)
    return client_profile_text(cfg, user, ca, cert, key)


def ensure_pki(cfg: OpenVPNServer, users: tuple[str, ...] = (), label: str = "vispd") -> None:
    """CA, CRL, the server's certificate and the users' certificates (revoked users stay
    revoked)."""
    pki.ensure_ca(cfg.pki_dir, label)
    pki.ensure_server(cfg.pki_dir, cfg.name)
    for user in users:
        if user not in pki.revoked_users(cfg.pki_dir):
            pki.ensure_client(cfg.pki_dir, user)


def _connect_unix(path: str, timeout: float) -> socket.socket:
    """Connect to a UNIX socket whose path may exceed sun_path (108 bytes)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if len(path.encode()) < 100:
        sock.connect(path)
        return sock
    dir_fd = os.open(os.path.dirname(path) or ".", os.O_PATH)
    try:
        sock.connect(f"/proc/self/fd/{dir_fd}/{os.path.basename(path)}")
    finally:
        os.close(dir_fd)
    return sock


def management(socket_path: str, command: str, timeout: float = 3.0) -> str:
    """Send one command to an OpenVPN management socket and return its reply (up to
    `END` for multi-line replies, else the first SUCCESS/ERROR line)."""
    sock = _connect_unix(socket_path, timeout)
    try:
        buffer = b""
        sock.sendall(command.encode() if command.endswith("\n") else (command + "\n").encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
            lines = [l for l in buffer.decode(errors="replace").splitlines() if not l.startswith(">")]
            if any(l.startswith(("SUCCESS:", "ERROR:")) or l == "END" for l in lines):
                break
        return "\n".join(l for l in buffer.decode(errors="replace").splitlines() if not l.startswith(">"))
    finally:
        sock.close()


def disconnect(socket_path: str, user: str, timeout: float = 3.0) -> int:
    """Drop `user`'s live sessions (CN = user) at one server (`client-kill CID HALT`, so the
    client is told and exits); returns how many were dropped."""
    dropped = 0
    for client_id in sessions_of(connected(socket_path, timeout), user):
        if management(socket_path, client_kill_command(client_id), timeout).startswith("SUCCESS"):
            dropped += 1
    return dropped


def connected(socket_path: str, timeout: float = 3.0) -> list[dict[str, str]]:
    return parse_status(management(socket_path, "status 2", timeout))
