"""The PPP engine process: `python3 -m access.pptp.engine --role server|client --config JSON`.

Server: what pptpd runs instead of pppd (through the `pppd-engine` shim, see `launch`),
one process per call, with the call's pty on fd 0 and pptpd's pppd-style arguments
(`local file OPTIONS SPEED LOCAL:REMOTE ipparam CLIENT ...`): it negotiates LCP,
authenticates the client against `users_file`, gives it REMOTE by IPCP, then creates the
TUN `tun_prefix + index` (LOCAL peer REMOTE) and relays IP packets until the call ends.
Client: starts `pptp SERVER --nolaunchpppd --nobuffer` on a pty of its own, authenticates
as `user`, takes the address it is given, creates its TUN with the `routes`, writes
`status_file`, and relays. Exits 0 when closed (SIGTERM: LCP Terminate first), 2 when
authentication failed, 3 when negotiation failed, 4 when the link was lost, 1 on a bad
configuration; the reason goes to the log and (client) to stderr.

Owns the process: arguments, configuration, logging, the pty's raw mode, the pptp child,
watching pptpd (its calls must end when pptpd is stopped by PID: pptpd leaves them
running), and the GRE guard; the event loop is `relay.Relay`. There is no MPPE: every link
is logged as UNENCRYPTED. VISPD_PPTP_PROFILE=DIR writes a cProfile per engine.

I/O: the process, its pty and its TUN.
"""
from __future__ import annotations

import argparse
import logging
import os
import pty
import re
import subprocess
import sys
import termios
import time
import tty

from . import config as cfg
from . import greguard, session
from .relay import Relay

_ADDRESSES = re.compile(r"^(\d+\.\d+\.\d+\.\d+)?:(\d+\.\d+\.\d+\.\d+)?$")

log = logging.getLogger("vispd.pptp")


def parse_pppd_args(args: list[str]) -> dict:
    """What we need from pptpd's pppd-style arguments: LOCAL:REMOTE, ipparam, file."""
    found: dict = {}
    for index, arg in enumerate(args):
        match = _ADDRESSES.match(arg)
        if match:
            found["local"], found["remote"] = match.group(1), match.group(2)
        elif arg in ("ipparam", "file", "remotenumber") and index + 1 < len(args):
            found[arg] = args[index + 1]
    return found


def setup_logging(path: str | None, role: str) -> None:
    handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s pptp-{role}[{os.getpid()}] %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def _guard():
    try:
        return greguard.open_guard()
    except OSError as error:
        log.warning("no GRE guard (%s): a full GRE queue may end the call", error)
        return None


def _raw(fd: int, nonblocking: bool = True) -> None:
    """Raw mode (no echo, no CR/LF mapping: PPP is binary); non-blocking for our own end.
    Never make pptp's end non-blocking: pptp takes EAGAIN on stdin as the end of the call."""
    try:
        tty.setraw(fd, termios.TCSANOW)
    except termios.error:
        pass  # not a tty (a socketpair in tests)
    if nonblocking:
        os.set_blocking(fd, False)


def run_server(conf: dict, pppd_args: list[str]) -> int:
    given = parse_pppd_args(pppd_args)
    local = given.get("local") or conf["local_address"]
    remote = given.get("remote")
    if not remote:
        log.error("no client address: pptpd must pass LOCAL:REMOTE (do not use 'delegate')")
        return session.EXIT_CONFIG
    name = cfg.tun_name(conf, remote)
    log.info("call from %s for slice %s: offering %s, tun %s", given.get("ipparam", "?"),
             conf.get("slice", "?"), remote, name)
    users_file = conf["users_file"]

    def lookup(user: str) -> str | None:
        try:
            return cfg.read_users(users_file).get(user)
        except (OSError, ValueError) as error:
            log.error("cannot read users file %s: %s", users_file, error)
            return None

    _raw(0)
    guard = _guard()
    sess = session.Session("server", mru=int(conf["mtu"]), methods=conf["auth"], lookup=lookup,
                           local=local, assign=remote, dns=conf["dns"], restart=float(conf["restart"]),
                           echo_interval=float(conf["echo_interval"]),
                           echo_failures=int(conf["echo_failures"]))
    relay = Relay(sess, 0, tun_name=name, routes=[], up_deadline=time.monotonic() + 60,
                  gre_owner=os.getppid())  # pptpd's call process (pptpctrl) execs us
    relay.guard = guard  # held open for the life of the link
    relay.install_signals()
    master = _pptpd_of(os.getppid())
    if master is not None:
        relay.watch(master, f"pptpd (pid {master})")
    return relay.run()


def _pptpd_of(pid: int) -> int | None:
    """The pptpd that started call process `pid` (our parent), if it is one."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{parent}/comm") as handle:
            return parent if handle.read().strip() == "pptpd" else None
    except (OSError, ValueError, IndexError):
        return None


def pptp_argv(conf: dict, server: str) -> list[str]:
    argv = [conf["pptp"], server, "--nolaunchpppd", "--nobuffer", "--loglevel", str(conf.get("pptp_loglevel", 0))]
    if not conf["private_callmgr"]:
        return argv
    script = ("mkdir -p /var/run/pptp && mount -t tmpfs -o size=1m,mode=0755 vispd-pptp /var/run/pptp "
              "&& exec \"$@\"")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]


def run_client(conf: dict, server: str) -> int:
    password = cfg.read_password(conf)
    guard = _guard()
    master, slave = pty.openpty()
    _raw(slave, nonblocking=False)
    _raw(master)
    errors = open(conf["log_file"], "ab") if conf.get("log_file") else subprocess.DEVNULL
    child = subprocess.Popen(pptp_argv(conf, server), stdin=slave, stdout=slave,
                             stderr=errors, close_fds=True, start_new_session=True)
    if errors is not subprocess.DEVNULL:
        errors.close()  # pptp's own messages (it has no syslog here) go to our log
    os.close(slave)
    log.info("pptp %s started (pid %d) for user %s", server, child.pid, conf["user"])
    sess = session.Session("client", mru=int(conf["mtu"]), methods=conf["auth"], user=conf["user"],
                           password=password, restart=float(conf["restart"]),
                           echo_interval=float(conf["echo_interval"]),
                           echo_failures=int(conf["echo_failures"]))
    relay = Relay(sess, master, tun_name=conf["tun"], routes=conf["routes"],
                  status_file=conf.get("status_file"), child=child,
                  up_deadline=time.monotonic() + float(conf["connect_timeout"]), gre_owner=child.pid)
    relay.guard = guard  # held open for the life of the link
    relay.install_signals()
    try:
        code = relay.run()
    finally:
        _stop_child(child)
        os.close(master)
    if code != 0:
        print(f"vispd pptp client: {sess.result[1] if sess.result else 'failed'}", file=sys.stderr)
    return code


def _stop_child(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(2)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m access.pptp.engine", description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=("server", "client"), required=True)
    parser.add_argument("--config", required=True, help="the engine's JSON configuration")
    parser.add_argument("--server", help="client: the PPTP server's address (else config 'server')")
    args, rest = parser.parse_known_args(argv)
    try:
        raw = cfg.load(args.config)
        if args.role == "client" and args.server:
            raw["server"] = args.server
        conf = cfg.validate_server(raw) if args.role == "server" else cfg.validate_client(raw)
    except (OSError, ValueError) as error:
        print(f"vispd pptp {args.role}: bad configuration {args.config}: {error}", file=sys.stderr)
        return session.EXIT_CONFIG
    if args.role == "server" and conf.get("log_file") and _same_file(0, 2):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)  # never write text into the pty
        os.close(devnull)
    setup_logging(conf.get("log_file"), args.role)
    if args.role == "server":
        return run_server(conf, rest)
    return run_client(conf, conf["server"])


def _same_file(a: int, b: int) -> bool:
    try:
        return os.path.samestat(os.fstat(a), os.fstat(b))
    except OSError:
        return False


def _profiled_main() -> int:
    """VISPD_PPTP_PROFILE=DIR: write a cProfile of this engine to DIR/engine-PID.prof."""
    import cProfile

    profiler = cProfile.Profile()
    try:
        return profiler.runcall(main)
    finally:
        profiler.dump_stats(os.path.join(os.environ["VISPD_PPTP_PROFILE"], f"engine-{os.getpid()}.prof"))


if __name__ == "__main__":
    sys.exit(_profiled_main() if os.environ.get("VISPD_PPTP_PROFILE") else main())
