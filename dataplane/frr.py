"""An FRR router (zebra + bgpd) as one foreground process, for lab providers.

`python3 -m dataplane.frr --conf-dir RUN --name NAME --vty-dir DIR` runs inside the
provider's namespace (vispd starts it as a Daemon, stopped by PID): it copies
`NAME.zebra.conf` and `NAME.bgpd.conf` from the run directory into DIR (owned by user
frr, which the daemons run as), starts zebra, waits for its zserv socket, starts bgpd,
and stays until either exits or it is told to stop (SIGTERM), then stops both.
`vtysh --vty_socket DIR` talks to the router.

I/O: the zebra and bgpd processes and their files.
"""
from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time

FRR_LIB = "/usr/lib/frr"


def _prepare(conf_dir: str, name: str, vty_dir: str) -> dict[str, str]:
    frr = pwd.getpwnam("frr")
    os.makedirs(vty_dir, exist_ok=True)
    os.chown(vty_dir, frr.pw_uid, frr.pw_gid)
    os.chmod(vty_dir, 0o755)
    paths = {}
    for daemon in ("zebra", "bgpd"):
        target = os.path.join(vty_dir, f"{daemon}.conf")
        shutil.copyfile(os.path.join(conf_dir, f"{name}.{daemon}.conf"), target)
        os.chown(target, frr.pw_uid, frr.pw_gid)
        paths[daemon] = target
    return paths


def _start(daemon: str, conf: str, vty_dir: str) -> subprocess.Popen:
    return subprocess.Popen([os.path.join(FRR_LIB, daemon), "-f", conf, "-i", os.path.join(vty_dir, f"{daemon}.pid"),
                             "-z", os.path.join(vty_dir, "zserv.api"), "--vty_socket", vty_dir])


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conf-dir", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--vty-dir", required=True)
    args = parser.parse_args(argv)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    paths = _prepare(args.conf_dir, args.name, args.vty_dir)
    procs = [_start("zebra", paths["zebra"], args.vty_dir)]
    try:
        deadline = time.monotonic() + 15
        while not os.path.exists(os.path.join(args.vty_dir, "zserv.api")):
            if procs[0].poll() is not None or time.monotonic() > deadline or stopping:
                print("frr: zebra did not come up", file=sys.stderr)
                return 1
            time.sleep(0.02)
        procs.append(_start("bgpd", paths["bgpd"], args.vty_dir))
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.2)
        return 0 if stopping else 1
    finally:
        _stop(procs)


if __name__ == "__main__":
    sys.exit(main())
