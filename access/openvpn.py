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

The server's configuration and the profile are rendered by compiler.access_types.openvpn
(imported here for callers that run a server themselves, as tests do); this module is the
runtime side: the PKI on disk, the management socket, the client command line.

I/O: the PKI on disk and the management socket (the rendering it re-exports is pure).
"""
from __future__ import annotations

import os
import socket
import time

from compiler.access_types.openvpn import (  # the server's and profile's format is the compiler's
    OPENVPN,
    OpenVPNServer,
    client_profile_text,
    device_name,
    server_command,
    server_config,
    server_files,
)

from . import pki
from .spec import DaemonSpec

__all__ = [  # the component's API: its runtime, and the configuration format it runs on
    "OPENVPN",
    "OpenVPNServer",
    "client_command",
    "client_kill_command",
    "client_profile",
    "client_profile_text",
    "connected",
    "daemon",
    "device_name",
    "disconnect",
    "ensure_pki",
    "management",
    "parse_status",
    "server_command",
    "server_config",
    "server_files",
    "sessions_of",
]


def daemon(cfg: OpenVPNServer, run_dir: str) -> DaemonSpec:
    """The server as a process to run in the sliver's namespace (cwd = run_dir)."""
    return DaemonSpec(name=cfg.name, argv=tuple(server_command(run_dir, cfg.file("conf"))),
                      files=server_files(cfg))


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
