"""FRR daemons as one foreground process: a lab provider's router (zebra + bgpd, and bfdd
when its session uses BFD) or a border router's BFD (bfdd alone).

`python3 -m dataplane.frr --conf-dir RUN --name NAME --vty-dir DIR [--daemons zebra,bgpd]
[--bfdctl PATH]` runs inside the router's namespace (vispd starts it as a Daemon, stopped
by PID): it copies `NAME.DAEMON.conf` of each daemon from the run directory into DIR (owned
by user frr, which the daemons run as), starts zebra first (when listed) and waits for its
zserv socket, then the others, and stays until one exits or it is told to stop (SIGTERM),
then stops them all. `vtysh --vty_socket DIR` talks to the router. No daemon listens on a
TCP vty port (`-P 0`). Every daemon's zserv socket is DIR/zserv.api: without zebra in the
list nothing serves it, so a lone bfdd never reaches another namespace's zebra (UNIX
sockets are not per network namespace). bfdd's control socket is `--bfdctl` (bgp/bfdctl.py
follows its sessions there).

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
DAEMONS = ("zebra", "bgpd", "bfdd")


def _prepare(conf_dir: str, name: str, vty_dir: str, daemons: list[str]) -> dict[str, str]:
    frr = pwd.getpwnam("frr")
    os.makedirs(vty_dir, exist_ok=True)
    os.chown(vty_dir, frr.pw_uid, frr.pw_gid)
    os.chmod(vty_dir, 0o755)
    paths = {}
    for daemon in daemons:
        target = os.path.join(vty_dir, f"{daemon}.conf")
        shutil.copyfile(os.path.join(conf_dir, f"{name}.{daemon}.conf"), target)
        os.chown(target, frr.pw_uid, frr.pw_gid)
        paths[daemon] = target
    return paths


def _start(daemon: str, conf: str, vty_dir: str, extra: list[str]) -> subprocess.Popen:
    return subprocess.Popen([os.path.join(FRR_LIB, daemon), "-f", conf, "-i", os.path.join(vty_dir, f"{daemon}.pid"),
                             "-z", os.path.join(vty_dir, "zserv.api"), "--vty_socket", vty_dir, "-P", "0", *extra])


def _daemon_list(text: str) -> list[str]:
    daemons = [d for d in text.split(",") if d]
    unknown = [d for d in daemons if d not in DAEMONS]
    if unknown or not daemons:
        raise SystemExit(f"frr: --daemons takes a list of {', '.join(DAEMONS)}, got {text!r}")
    return daemons


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


def _wait_for_zebra(zebra: subprocess.Popen, vty_dir: str, stopping: list) -> bool:
    deadline = time.monotonic() + 15
    while not os.path.exists(os.path.join(vty_dir, "zserv.api")):
        if zebra.poll() is not None or time.monotonic() > deadline or stopping:
            return False
        time.sleep(0.02)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conf-dir", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--vty-dir", required=True)
    parser.add_argument("--daemons", default="zebra,bgpd", help="which, comma-separated (zebra first)")
    parser.add_argument("--bfdctl", help="bfdd's control socket (default: DIR/bfdd.sock)")
    args = parser.parse_args(argv)
    daemons = _daemon_list(args.daemons)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    paths = _prepare(args.conf_dir, args.name, args.vty_dir, daemons)
    procs = []
    try:
        if "zebra" in daemons:
            procs.append(_start("zebra", paths["zebra"], args.vty_dir, []))
            if not _wait_for_zebra(procs[0], args.vty_dir, stopping):
                print("frr: zebra did not come up", file=sys.stderr)
                return 1
        for daemon in (d for d in daemons if d != "zebra"):
            # bfdd's control socket defaults to one path for the whole machine: never use it
            extra = ["--bfdctl", args.bfdctl or os.path.join(args.vty_dir, "bfdd.sock")] if daemon == "bfdd" else []
            procs.append(_start(daemon, paths[daemon], args.vty_dir, extra))
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.2)
        return 0 if stopping else 1
    finally:
        _stop(procs)


if __name__ == "__main__":
    sys.exit(main())
