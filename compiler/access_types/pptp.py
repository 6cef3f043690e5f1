"""PPTP access (legacy and unencrypted), the access type (pure): the real `pptpd` handles
the control channel and GRE and runs vispd's user-space PPP engine (access.pptp) in place
of pppd. This module owns the server side's configuration format (the engine's JSON, with
defaults and validation, `pptpd.conf` and the options file), pptpd's command line, and a
user's profile; access.pptp.config reads the same format at run time.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re

from model.errors import VispdError

from ..resources import Daemon
from .base import AccessType, ServerContext, client_routes, pptp_users_file

IFNAMSIZ = 15
IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
AUTH_METHODS = ("mschapv2", "chap-md5")  # CHAP methods the engine speaks (access.pptp.auth)
TUN_PREFIX = "ppp"
PPTP_PORT = 1723  # pptpd's control channel (TCP)


class ConfigError(ValueError):
    pass


SERVER_DEFAULTS = {"tun_prefix": "pptp", "auth": list(AUTH_METHODS), "mtu": 1400, "dns": [],
                   "restart": 1.0, "echo_interval": 10.0, "echo_failures": 4, "log_file": None}


def pool_hosts(config: dict) -> tuple[ipaddress.IPv4Address, list[ipaddress.IPv4Address]]:
    """(server's address, the client addresses in pool order)."""
    pool = ipaddress.IPv4Network(config["pool"], strict=True)
    hosts = list(pool.hosts())
    local = ipaddress.IPv4Address(config["local_address"]) if config.get("local_address") else hosts[0]
    return local, [h for h in hosts if h != local]


def check_common(merged: dict) -> None:
    bad = [m for m in merged["auth"] if m not in AUTH_METHODS]
    if bad or not merged["auth"]:
        raise ConfigError(f"auth must be a non-empty list of {list(AUTH_METHODS)}, not {merged['auth']}")
    if not 576 <= int(merged["mtu"]) <= 1500:
        raise ConfigError(f"mtu {merged['mtu']} outside 576..1500")


def validate_server(config: dict) -> dict:
    """The config with defaults filled in; ConfigError naming the bad key otherwise."""
    merged = {**SERVER_DEFAULTS, **config}
    for key in ("pool", "users_file"):
        if not merged.get(key):
            raise ConfigError(f"server config needs {key!r}")
    try:
        local, clients = pool_hosts(merged)
    except ValueError as error:
        raise ConfigError(f"pool/local_address: {error}") from None
    if not clients:
        raise ConfigError(f"pool {merged['pool']} has no address left for clients")
    merged["local_address"] = str(local)
    longest = f"{merged['tun_prefix']}{len(clients) - 1}"
    if not IFNAME.match(longest):
        raise ConfigError(f"tun_prefix {merged['tun_prefix']!r} makes names like {longest!r}, "
                          f"longer than {IFNAMSIZ} characters or with bad characters")
    check_common(merged)
    for address in merged["dns"]:
        ipaddress.IPv4Address(address)
    return merged


def remoteip_spec(config: dict) -> str:
    """pptpd.conf's `remoteip` for the pool: comma-separated ranges a.b.c.x-y per /24."""
    _, clients = pool_hosts(config)
    parts, run = [], []
    for address in clients:
        if run and (int(address) != int(run[-1]) + 1 or address.packed[:3] != run[0].packed[:3]):
            parts.append(run)
            run = []
        run.append(address)
    if run:
        parts.append(run)
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1].packed[3]}" for r in parts)


def server_files(config: dict, python: str) -> dict[str, str]:
    """The run directory's files for one PPTP access point: pptpd.conf, the options file
    pptpd hands its PPP program (our engine reads only its `python` line) and engine.json."""
    merged = validate_server(config)
    _, clients = pool_hosts(merged)
    connections = int(merged.get("connections") or len(clients))
    conf = [
        "# pptpd for vispd: one call per client; PPP is vispd's user-space engine",
        f"localip {merged['local_address']}",
        f"remoteip {remoteip_spec(merged)}",
        f"connections {min(connections, len(clients))}",
        "stimeout 10",
    ]
    if merged.get("listen"):
        conf.insert(1, f"listen {merged['listen']}")
    options = [
        "# Read by vispd's PPP engine (access.pptp.engine), not by pppd: pptpd passes this",
        "# file's path, and the engine takes engine.json from the same directory.",
        f"python {merged.get('python') or python}",
    ]
    engine = {k: v for k, v in merged.items() if v is not None}
    return {
        "pptpd.conf": "\n".join(conf) + "\n",
        "options.pptp": "\n".join(options) + "\n",
        "engine.json": json.dumps(engine, indent=2, sort_keys=True) + "\n",
    }


def server_command(run_dir: str, shim: str) -> list[str]:
    """pptpd in the foreground, everything from `run_dir`; `shim` is the PPP program pptpd
    runs per call (access/pptp/pppd-engine, which starts the engine)."""
    run_dir = os.path.abspath(run_dir)
    return ["pptpd", "--fg",
            "-c", os.path.join(run_dir, "pptpd.conf"),
            "-o", os.path.join(run_dir, "options.pptp"),
            "-p", os.path.join(run_dir, "pptpd.pid"),
            "-e", shim]


def shim_path(project_root: str) -> str:
    return os.path.join(project_root, "access", "pptp", "pppd-engine")


class Pptp(AccessType):
    NAME = "pptp"
    DEFAULT_PORT = 1723
    TRANSPORT = "tcp"
    FORWARDABLE = False  # its data is GRE beside the TCP control channel: a NAT helper's job

    def check(self, entry, path, say) -> None:
        if not entry.insecure_legacy:
            say(path + ("type",), "pptp is unencrypted legacy: set 'insecure-legacy: true' to accept that")

    def warnings(self, entry) -> list[str]:
        return [f"PPTP access for slice '{entry.slice}' is unencrypted legacy (MS-CHAPv2, no MPPE): "
                "anyone on the path reads its traffic"]

    def server(self, ctx: ServerContext) -> Daemon:
        point, runtime = ctx.point, ctx.runtime
        name = f"pptp-{point.slice}-{point.node}"
        config = {"slice": point.slice, "listen": point.public_address, "pool": point.pool,
                  "users_file": pptp_users_file(runtime.state_dir, point.slice), "tun_prefix": TUN_PREFIX,
                  "log_file": runtime.run_file(f"{name}.engine.log")}
        files = tuple(sorted((f"{name}/{leaf}", text) for leaf, text in server_files(config, runtime.python).items()))
        return Daemon(node=point.node, ns=ctx.ns, name=name,
                      argv=tuple(server_command(runtime.run_file(name), shim_path(runtime.project_root))),
                      files=files, env=runtime.module_env(), listens=(("tcp", point.public_address, PPTP_PORT),))

    def make_credentials(self, topology, slice_name, points, store) -> None:
        store.ensure_passwords(slice_name, {u.name: u.credential for entry, _ in points for u in entry.users})

    def profile(self, ctx, user, store) -> str:
        password = store.password(ctx.point.slice, user)
        if password is None:
            raise VispdError(f"no PPTP password for '{user}' yet: run `vispd up` first")
        return (f"# vispd: PPTP for {user} in slice {ctx.point.slice} (UNENCRYPTED legacy access)\n"
                f"server {ctx.point.public_address}\nuser {user}\npassword {password}\n"
                f"routes {' '.join(client_routes(ctx.slice, ctx.slice_prefix))}\n")
