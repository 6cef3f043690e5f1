"""Local-socket access, the access type (pure): per (slice, node) a relay daemon
(access.localsock) in the sliver with a SOCK_SEQPACKET socket owned by the slice's user
and a TUN with a /30 of the slice prefix, through which an unprivileged program on the node
sends and receives raw IPv4 packets into the vISP. This module owns the relay's
configuration format; the relay itself is access.localsock.
"""
from __future__ import annotations

import ipaddress
import json

from ..resources import Daemon
from .base import AccessType, ServerContext

TUN_NAME = "sock0"


def addresses(subnet: str) -> tuple[str, str, int]:
    """(relay address, program address, prefix length) of the subnet: first two hosts."""
    network = ipaddress.IPv4Network(subnet)
    hosts = list(network.hosts()) if network.prefixlen < 31 else list(network)
    if len(hosts) < 2:
        raise ValueError(f"subnet {subnet} has no room for two addresses")
    return str(hosts[0]), str(hosts[1]), network.prefixlen


def normalise(config: dict) -> dict:
    """The relay's config with defaults, validated."""
    required = ("socket", "uid", "gid", "tun", "subnet")
    missing = [k for k in required if k not in config]
    if missing:
        raise ValueError(f"local socket config lacks {', '.join(missing)}")
    mode = config.get("mode", 0o600)
    mode = int(mode, 8) if isinstance(mode, str) else int(mode)
    if mode not in (0o600, 0o660):
        raise ValueError(f"mode must be 0600 or 0660, not {mode:o}")
    if not 0 < len(config["tun"]) <= 15:
        raise ValueError(f"tun name {config['tun']!r} must have 1..15 characters")
    addresses(config["subnet"])
    return {**config, "mode": mode, "uid": int(config["uid"]), "gid": int(config["gid"]),
            "mtu": int(config.get("mtu", 1500))}


def socket_path(runtime, slice_name: str, node: str) -> str:
    return runtime.socket(f"sockets/{slice_name}.{node}.sock")


def relay_daemon(name: str, config: dict, node: str, ns: str, runtime) -> Daemon:
    """The relay as a process to run as root in the sliver's namespace (cwd = run dir)."""
    conf = f"{name}.json"
    text = json.dumps(normalise(config), indent=1, sort_keys=True) + "\n"
    return Daemon(node=node, ns=ns, name=name,
                  argv=runtime.module_command("access.localsock", "--config", runtime.run_file(conf)),
                  files=((conf, text),), env=runtime.module_env(), listens=(("unix", config["socket"], 0),))


class Socket(AccessType):
    NAME = "socket"
    REMOTE = False
    NEEDS_USERS = False
    SUBNET = "socket"

    def server(self, ctx: ServerContext) -> Daemon:
        point = ctx.point
        name = f"socket-{point.slice}-{point.node}"
        config = {"socket": point.socket_path, "uid": ctx.uid, "gid": ctx.uid, "tun": TUN_NAME,
                  "subnet": point.pool, "log": ctx.runtime.run_file(f"{name}.relay.log")}
        return relay_daemon(name, config, point.node, ctx.ns, ctx.runtime)
