"""The engine's JSON configuration: defaults, validation, the address pool, the TUN names.

Server keys (`--role server`; the JSON that `server_files` renders as engine.json):
  slice          str   the slice this access point serves (logs only)
  listen         str   the address pptpd listens on (TCP 1723 and GRE)
  pool           str   client address pool, e.g. "198.18.2.0/26" (a part of the slice prefix)
  local_address  str   the server's end of every link (default: the pool's first host; it
                       may also lie outside the pool); clients get the other hosts of the
                       pool (pptpd hands one to each engine as LOCAL:REMOTE)
  users_file     str   JSON credential store {"users": {"bob": "secret", ...}}, read at each
                       authentication (users can be added without a restart)
  tun_prefix     str   server TUN name = prefix + the client's index in the pool, so names are
                       unique in the namespace (default "pptp"; prefix + digits <= 15 chars)
  auth           list  CHAP methods in order of preference (default ["mschapv2", "chap-md5"])
  mtu            int   our MRU and the TUN's MTU at most (default 1400: GRE + IP fit in 1500)
  dns            list  DNS servers given to clients that ask (default none: rejected)
  connections    int   pptpd's limit of simultaneous clients (default: the pool's size)
  log_file       str   where the engines log (default stderr; under pptpd always set it)
  python         str   interpreter for the engine under pptpd (default: the current one)
Client keys (`--role client`):
  server         str   the PPTP server's address
  user, password str   credentials (or password_file: a file holding the password)
  tun            str   the client's TUN name (default "pptp0")
  routes         list  prefixes routed into the tunnel, e.g. the slice prefix
  auth           list  CHAP methods the client accepts (default both)
  mtu            int   as above
  status_file    str   JSON written when the link is up and when the engine ends
  connect_timeout float seconds until the link must be up (default 30)
  pptp           str   the pptp program (default "pptp")
  private_callmgr bool run pptp in a private mount namespace (default true): its call
                       manager socket /var/run/pptp/SERVER is machine-wide, so two clients of
                       the same server address would otherwise share one control connection
Both: restart (LCP/IPCP retransmit seconds, default 1), echo_interval (default 10),
echo_failures (default 4), log_file.
Pure except `load` and `read_users`/`read_password`, which read files.
"""
from __future__ import annotations

import ipaddress
import json
import sys

from compiler.access_types.pptp import (  # the server side's format is the compiler's
    IFNAME as _IFNAME,
    IFNAMSIZ,
    SERVER_DEFAULTS,
    ConfigError,
    check_common as _check_common,
    pool_hosts,
    remoteip_spec,
    validate_server,
)

from . import auth

__all__ = [  # the component's API: its runtime, and the configuration format it runs on
    "CLIENT_DEFAULTS",
    "ConfigError",
    "IFNAMSIZ",
    "SERVER_DEFAULTS",
    "interpreter",
    "load",
    "pool_hosts",
    "read_password",
    "read_users",
    "remoteip_spec",
    "tun_name",
    "validate_client",
    "validate_server",
]
CLIENT_DEFAULTS = {"tun": "pptp0", "routes": [], "auth": list(auth.METHODS), "mtu": 1400,
                   "restart": 1.0, "echo_interval": 10.0, "echo_failures": 4, "log_file": None,
                   "status_file": None, "connect_timeout": 30.0, "pptp": "pptp",
                   "private_callmgr": True}


def load(path: str) -> dict:
    with open(path) as handle:
        return json.load(handle)


def tun_name(config: dict, client: str) -> str:
    """The server TUN for the client at `client`: tun_prefix + its index in the pool."""
    _, clients = pool_hosts(config)
    address = ipaddress.IPv4Address(client)
    if address not in clients:
        raise ConfigError(f"client address {client} is not in the pool {config['pool']}")
    return f"{config.get('tun_prefix', SERVER_DEFAULTS['tun_prefix'])}{clients.index(address)}"


def validate_client(config: dict) -> dict:
    merged = {**CLIENT_DEFAULTS, **config}
    for key in ("server", "user"):
        if not merged.get(key):
            raise ConfigError(f"client config needs {key!r}")
    if merged.get("password") is None and not merged.get("password_file"):
        raise ConfigError("client config needs 'password' or 'password_file'")
    if not _IFNAME.match(merged["tun"]):
        raise ConfigError(f"tun {merged['tun']!r} is not a valid interface name (<= {IFNAMSIZ} chars)")
    try:
        ipaddress.IPv4Address(merged["server"])
        merged["routes"] = [str(ipaddress.IPv4Network(r, strict=False)) for r in merged["routes"]]
    except ValueError as error:
        raise ConfigError(str(error)) from None
    _check_common(merged)
    return merged


def read_users(path: str) -> dict[str, str]:
    with open(path) as handle:
        data = json.load(handle)
    users = data.get("users", {}) if isinstance(data, dict) else {}
    return {str(k): str(v) for k, v in users.items()}


def read_password(config: dict) -> str:
    if config.get("password") is not None:
        return str(config["password"])
    with open(config["password_file"]) as handle:
        return handle.read().rstrip("\n")


def interpreter(config: dict) -> str:
    return config.get("python") or sys.executable or "python3"
