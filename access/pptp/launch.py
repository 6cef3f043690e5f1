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

import os
import sys

from compiler.access_types import pptp as pptp_format

from . import config as cfg

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
PROJECT_ROOT = os.path.dirname(os.path.dirname(PACKAGE_DIR))
SHIM = os.path.join(PACKAGE_DIR, "pppd-engine")
FILES = ("pptpd.conf", "options.pptp", "engine.json")


def server_files(config: dict) -> dict[str, str]:
    """The run directory's files for one PPTP access point (compiler.access_types.pptp's
    format), the engine run by `config["python"]` or this interpreter."""
    return pptp_format.server_files(config, cfg.interpreter(config))


def server_command(run_dir: str) -> list[str]:
    return pptp_format.server_command(run_dir, SHIM)


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
