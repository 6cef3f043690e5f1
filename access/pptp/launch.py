"""How vispd starts and stops PPTP access: the files and command lines (pure).

`server_files(config)` renders, for the run directory (file name -> text):
  pptpd.conf     listen address, localip/remoteip from the pool, connection limit
  options.pptp   the "ppp options" file pptpd passes to its PPP program as `file PATH`;
                 our engine is that program, and only reads the `python` line from it
  engine.json    the engine's configuration (see `config`)
`server_command(run_dir)` is pptpd in the foreground (`--fg`) with everything taken from
run_dir (config, options, pidfile) and `-e` pointing at `pppd-engine`, an executable shim
shipped in this package: pptpd runs it once per call as
`pppd-engine local file RUN_DIR/options.pptp 115200 LOCAL:REMOTE ipparam CLIENT remotenumber CLIENT`
with the call's pty on fd 0, and it starts `python -m access.pptp.engine --role server`
with RUN_DIR/engine.json. Run pptpd inside the sliver's namespace and stop it by PID
(SIGTERM). pptpd itself leaves its call processes running when it ends, so each engine
watches its pptpd (pidfd) and ends its call then: LCP Terminate to the client, TUN gone,
and pptpd's call process exits when the engine's pty closes (about 0.1 s).
The sliver needs IPv4 forwarding on for clients to reach beyond the server itself.
`client_command(server_ip, config_path)` is the client engine (for tests and benches): it
starts `pptp SERVER --nolaunchpppd --nobuffer` itself on a pty and stops it on exit.
"""
from __future__ import annotations

import json
import os
import sys

from . import config as cfg

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
PROJECT_ROOT = os.path.dirname(os.path.dirname(PACKAGE_DIR))
SHIM = os.path.join(PACKAGE_DIR, "pppd-engine")
FILES = ("pptpd.conf", "options.pptp", "engine.json")


def server_files(config: dict) -> dict[str, str]:
    """The run directory's files for one PPTP access point (validated config)."""
    merged = cfg.validate_server(config)
    _, clients = cfg.pool_hosts(merged)
    connections = int(merged.get("connections") or len(clients))
    conf = [
        "# pptpd for vispd: one call per client; PPP is vispd's user-space engine",
        f"localip {merged['local_address']}",
        f"remoteip {cfg.remoteip_spec(merged)}",
        f"connections {min(connections, len(clients))}",
        "stimeout 10",
    ]
    if merged.get("listen"):
        conf.insert(1, f"listen {merged['listen']}")
    options = [
        "# Read by vispd's PPP engine (access.pptp.engine), not by pppd: pptpd passes this",
        "# file's path, and the engine takes engine.json from the same directory.",
        f"python {cfg.interpreter(merged)}",
    ]
    engine = {k: v for k, v in merged.items() if v is not None}
    return {
        "pptpd.conf": "\n".join(conf) + "\n",
        "options.pptp": "\n".join(options) + "\n",
        "engine.json": json.dumps(engine, indent=2, sort_keys=True) + "\n",
    }


def server_command(run_dir: str) -> list[str]:
    run_dir = os.path.abspath(run_dir)
    return ["pptpd", "--fg",
            "-c", os.path.join(run_dir, "pptpd.conf"),
            "-o", os.path.join(run_dir, "options.pptp"),
            "-p", os.path.join(run_dir, "pptpd.pid"),
            "-e", SHIM]


def engine_env() -> dict[str, str]:
    """What `python -m access.pptp.engine` needs in its environment from any cwd."""
    return {"PYTHONPATH": PROJECT_ROOT}


def client_command(server_ip: str, config_path: str, python: str | None = None) -> list[str]:
    return [python or sys.executable or "python3", "-m", "access.pptp.engine", "--role", "client",
            "--config", os.path.abspath(config_path), "--server", server_ip]


def write_server_files(run_dir: str, config: dict) -> list[str]:
    """Convenience for tests and callers without their own writer: write `server_files`."""
    os.makedirs(run_dir, exist_ok=True)
    paths = []
    for name, text in server_files(config).items():
        path = os.path.join(run_dir, name)
        with open(path, "w") as handle:
            handle.write(text)
        paths.append(path)
    return paths
