"""OpenVPN access (TLS only), the access type (pure): its server's configuration and
command line, the `.ovpn` profile a user imports into a stock OpenVPN 2.x client, the
credentials it needs, and revocation.

One server per access point runs in the sliver's namespace, listening on the node's public
address; its tun device carries the client pool (a subnet of the slice's prefix: the
server takes the first address, clients the rest, `topology subnet`) and clients are told
to route the slice's prefix into the tunnel. Certificates come from the slice's PKI
(layout: pki_layout; made by access.pki): the server requires a client certificate of the
slice's CA that is not on the CRL (`crl-verify`, re-read by OpenVPN whenever the file
changed, at each new TLS handshake, so revocation needs no restart), and clients check the
server's CN. An already connected client is not re-checked until its next renegotiation,
so revocation also disconnects it through the server's management socket (access.openvpn).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from model.errors import VispdError
from model.naming import hashed_ifname

from ..resources import Daemon
from .base import DEFAULT_ROUTE, AccessType, ServerContext, pki_dir, tunnel_routes
from .pki_layout import ca_paths, crl_path, leaf_paths, server_common_name

OPENVPN = "openvpn"


@dataclass(frozen=True)
class OpenVPNServer:
    """One access point.

    name     instance name: file stems in the run directory (NAME.conf, NAME.status,
             NAME.mgmt) and the server certificate's name in the PKI (CN server-NAME)
    pki_dir  the slice's PKI directory (pki_layout)
    dev      tun device name in the sliver (see `device_name`)
    local    public address the server listens on
    pool     client subnet, e.g. "10.1.3.0/26" (a subnet of the slice prefix)
    routes   prefixes pushed to clients, e.g. ("10.1.0.0/16",) (the slice prefix); 0.0.0.0/0
             is pushed as `redirect-gateway def1`: the client keeps a host route to the
             server through its old gateway, so a machine with only a default route works
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


def server_config(cfg: OpenVPNServer) -> str:
    cert_file, key_file = leaf_paths(cfg.pki_dir, "server", cfg.name)
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
        *(f'push "route {_net_mask(route)}"' for route in cfg.routes if route != DEFAULT_ROUTE),
        *(['push "redirect-gateway def1"'] if DEFAULT_ROUTE in cfg.routes else []),
        f"ca {ca_paths(cfg.pki_dir)[0]}",
        f"cert {cert_file}",
        f"key {key_file}",
        "dh none",
        f"crl-verify {crl_path(cfg.pki_dir)}",
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
        f"verify-x509-name {server_common_name(cfg.name)} name",
        "tls-version-min 1.2",
        "persist-key",
        "verb 3",
        "<ca>", ca.strip(), "</ca>",
        "<cert>", cert.strip(), "</cert>",
        "<key>", key.strip(), "</key>",
    ]
    return "\n".join(lines) + "\n"


def server_of(ctx: ServerContext) -> OpenVPNServer:
    """The server of the access point in `ctx`."""
    point = ctx.point
    return OpenVPNServer(
        name=f"openvpn-{point.slice}-{point.node}", pki_dir=pki_dir(ctx.runtime.state_dir, point.slice),
        dev=device_name(ctx.topology.name, point.slice, point.node), local=point.public_address,
        pool=point.pool, routes=tunnel_routes(ctx.slice, ctx.slice_prefix), port=point.port,
        remote=point.dial)


class OpenVpn(AccessType):
    NAME = "openvpn"
    DEFAULT_PORT = 1194
    REVOCABLE = True

    def server(self, ctx: ServerContext) -> Daemon:
        cfg = server_of(ctx)
        return Daemon(node=ctx.point.node, ns=ctx.ns, name=cfg.name,
                      argv=tuple(server_command(ctx.runtime.run_dir, cfg.file("conf"))),
                      files=tuple(sorted(server_files(cfg).items())),
                      listens=((cfg.proto, cfg.local, cfg.port),) if cfg.proto == "udp" else (("tcp", cfg.local, cfg.port),))

    def make_credentials(self, topology, slice_name, points, store) -> None:
        store.ensure_ca(slice_name, f"vispd {topology.name} {slice_name}")
        revoked = store.revoked_users(slice_name)
        for entry, node in points:
            store.ensure_server_certificate(slice_name, f"openvpn-{slice_name}-{node}")
            for user in entry.users:
                if user.name not in revoked:
                    store.ensure_client_certificate(slice_name, user.name)

    def profile(self, ctx, user, store) -> str:
        try:
            ca, cert, key = store.client_material(ctx.point.slice, user)
        except FileNotFoundError:
            raise VispdError(f"no certificate for '{user}' (revoked, or run `vispd up` first)") from None
        return client_profile_text(server_of(ctx), user, ca, cert, key)

    def revoke(self, contexts, user, store, control) -> list[str]:
        """Revoke `user` in the slice (its CRL) and close their live sessions at each of the
        slice's OpenVPN access points in `contexts`, through the server's management socket
        (`control.disconnect`); other clients are not touched."""
        slice_name = contexts[0].point.slice
        serial = store.revoke_client(slice_name, user)
        said = [f"revoked {user} (certificate serial {serial:x}) in slice {slice_name}"]
        for ctx in contexts:
            socket_path = ctx.runtime.run_file(f"{ctx.point.daemon}.mgmt")
            try:
                dropped = control.disconnect(socket_path, user)
                said.append(f"{ctx.point.node}: {dropped} live session(s) closed")
            except OSError as exc:
                said.append(f"{ctx.point.node}: server not reachable ({exc.strerror or exc}); "
                            "the CRL applies at its next start")
        return said
