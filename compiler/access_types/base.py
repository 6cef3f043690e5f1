"""What every access type shares (pure): the access point, where a slice's credentials
live, the contract a type fulfils, and the credential store port it acts through.

An access type (OpenVPN, WireGuard, PPTP, the local socket) is one module of this package:
its rules (`check`), what addressing it takes from the slice's prefix (`SUBNET`), the
server it plans in a sliver (`server`), the credentials it needs (`make_credentials`,
`public_credentials`), a user's client configuration (`profile`) and revocation
(`revoke`). Planning is pure; credentials, profiles and revocation act only through the
`CredentialStore` and `control` objects the application hands them (access.credentials,
access.openvpn).
"""
from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, ClassVar, Protocol

from model.errors import VispdError

if TYPE_CHECKING:
    from ..resources import Daemon
    from ..runtime import Runtime


@dataclass
class AccessPoint:
    """One access point (what `vispd access`, `check` and the tests need to know of it)."""

    slice: str
    node: str
    type: str
    users: tuple[str, ...]
    public_address: str | None = None
    port: int | None = None
    pool: str | None = None  # remote clients' addresses, or the socket's /30
    client_ns: str | None = None  # the lab's client host on the public underlay, if emulated
    daemon: str | None = None
    socket_path: str | None = None
    public_interface: str | None = None  # reached through the machine's interface (port forward)
    dial: str | None = None  # the address clients dial, when not `public_address` (forwarded, NAT)


@dataclass(frozen=True)
class ServerContext:
    """What an access type needs to plan the server of one access point."""

    topology: object  # model.schema.Topology
    slice: object  # model.schema.Slice
    slice_prefix: IPv4Network
    point: AccessPoint
    ns: str
    uid: int
    runtime: "Runtime"
    credentials: dict  # public credentials made before planning (see public_credentials)


def pki_dir(state_dir: str, slice_name: str) -> str:
    return os.path.join(state_dir, "pki", slice_name)


def keys_dir(state_dir: str, slice_name: str) -> str:
    return os.path.join(state_dir, "keys", slice_name)


def pptp_users_file(state_dir: str, slice_name: str) -> str:
    """The slice's PPTP credential store ({"users": {name: password}}, mode 0600)."""
    return os.path.join(keys_dir(state_dir, slice_name), "pptp-users.json")


def placeholder_key(*identity: str) -> str:
    """A well-formed WireGuard public key standing in for one not generated yet."""
    return base64.b64encode(hashlib.sha256("\0".join(identity).encode()).digest()).decode()


DEFAULT_ROUTE = "0.0.0.0/0"


def tunnel_routes(slice_, prefix: IPv4Network) -> tuple[str, ...]:
    """What a remote client sends into the vISP: the slice's prefix and, when the slice has
    egress, everything (DEFAULT_ROUTE). The client type must keep its way to the server
    outside the tunnel — on a machine whose only route is a default route, two halves
    0/1 + 128/1 would capture the server's address too: OpenVPN pushes `redirect-gateway
    def1` (a host route to the server through the old gateway, then the halves), and
    wg-quick's AllowedIPs 0.0.0.0/0 marks its own packets and routes everything else
    through a table of its own."""
    return (str(prefix),) + ((DEFAULT_ROUTE,) if slice_.egress else ())


def client_routes(slice_, prefix: IPv4Network) -> tuple[str, ...]:
    """Routes for a client that installs them itself (vispd's PPTP client): the slice's
    prefix and, with egress, two halves of the rest, which its server route outlives."""
    return (str(prefix),) + (("0.0.0.0/1", "128.0.0.0/1") if slice_.egress else ())


class CredentialStore(Protocol):
    """Where a topology's credentials are kept (implemented by access.credentials)."""

    def ensure_ca(self, slice_name: str, label: str) -> None: ...
    def ensure_server_certificate(self, slice_name: str, name: str) -> None: ...
    def ensure_client_certificate(self, slice_name: str, user: str) -> None: ...
    def revoked_users(self, slice_name: str) -> set[str]: ...
    def client_material(self, slice_name: str, user: str) -> tuple[str, str, str]: ...
    def revoke_client(self, slice_name: str, user: str) -> int: ...
    def key_pair(self, slice_name: str, name: str, create: bool) -> tuple[str, str] | None: ...
    def private_key(self, slice_name: str, name: str) -> str | None: ...
    def ensure_passwords(self, slice_name: str, users: dict[str, str | None]) -> None: ...
    def password(self, slice_name: str, user: str) -> str | None: ...
    def revoked_keys(self, slice_name: str) -> set[str]: ...
    def revoke_key(self, slice_name: str, user: str) -> None: ...


class AccessType:
    """The contract of an access type; defaults suit a type without users or profiles."""

    NAME: ClassVar[str] = ""
    REMOTE: ClassVar[bool] = True  # reached by remote clients on a public address, from a pool
    DEFAULT_PORT: ClassVar[int | None] = None
    TRANSPORT: ClassVar[str] = "udp"  # the protocol of its port
    FORWARDABLE: ClassVar[bool] = True  # its traffic is all on its port (a port forward carries it)
    NEEDS_USERS: ClassVar[bool] = True
    SUBNET: ClassVar[str] = "pool"  # "pool": a /28 client pool; "socket": a /30 like a pseudo-device
    REVOCABLE: ClassVar[bool] = False  # a user can be revoked (`vispd access revoke`)

    def check(self, entry, path: tuple, say) -> None:
        """Rules of this type beyond the schema; `say(path, message)` reports a problem."""

    def warnings(self, entry) -> list[str]:
        """What `up` says about a choice that works but deserves a second thought."""
        return []

    def server(self, ctx: ServerContext) -> "Daemon | None":
        """The daemon serving this access point in the sliver (None: nothing to run)."""
        return None

    def make_credentials(self, topology, slice_name: str, points: list, store: CredentialStore) -> None:
        """Make what the slice's access points of this type need (`up` only); `points` are
        (access entry, node) pairs."""

    def public_credentials(self, topology, slice_name: str, points: list, store: CredentialStore,
                           create: bool) -> dict:
        """Public material the plan needs (e.g. WireGuard public keys), read or made."""
        return {}

    def profile(self, ctx: ServerContext, user: str, store: CredentialStore) -> str:
        raise VispdError(f"{self.NAME} access has no profile to hand out")

    def revoke(self, contexts: list[ServerContext], user: str, store: CredentialStore, control) -> list[str]:
        """Take `user`'s access away at the slice's access points of this type (`contexts`)."""
        raise VispdError(f"{self.NAME} access cannot revoke a user")
