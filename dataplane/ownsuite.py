"""Launch a `routing: own` slice's routing suite in one of its slivers (side effects).

    python3 -m dataplane.ownsuite --suite bird --ns NS --uid U --gid G --dir DIR --config PATH
    python3 -m dataplane.ownsuite --suite frr  --ns NS --uid U --gid G --dir DIR --config PATH \\
        --daemons zebra,ospfd --group-file FILE

vispd starts it as a Daemon (root, in the sliver's network namespace, PID recorded). It
makes DIR the slice's own (owner uid/gid, mode 0700: the suite's control sockets and PID
files), refuses a configuration the slice's user cannot read, and then:

* bird: replaces itself with BIRD run as the slice's root in its sliver
  (dataplane.userns.enter_argv), so the PID vispd recorded is BIRD's and SIGHUP reloads it;
* frr: stays, as root outside the slice's reach, supervising FRR's daemons, each run as
  the slice's root in its sliver: zebra first (until its zserv.api socket exists), then
  the others. FRR insists that its user be a member of its vty group (`frrvty`), whose
  gid the sliver's user namespace does not map, so the supervisor gives itself and the
  daemons a private mount namespace where /etc/group names that group gid 0 (the slice's
  gid outside): a root-written copy in vispd's run directory, bound over /etc/group there
  only. When one daemon ends, the others are stopped and the supervisor exits (vispd's
  next `up` restarts it); SIGTERM stops them all.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time

from . import userns

FRR_BINARIES = "/usr/lib/frr"
CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 1 << 18
ZEBRA_WAIT = 15.0  # seconds for zebra's API socket to appear


def own_directory(directory: str, uid: int, gid: int, stale: list[str]) -> None:
    """DIR as the slice's own (0700), without the sockets and PID files of an earlier run."""
    if not os.path.isdir(directory):
        os.mkdir(directory, 0o700)
    os.lchown(directory, uid, gid)
    os.chmod(directory, 0o700)
    for leaf in stale:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, leaf))


def run_bird(args: argparse.Namespace) -> None:
    own_directory(args.dir, args.uid, args.gid, ["bird.ctl", "bird.pid"])
    binary = shutil.which("bird") or "bird"
    userns.exec_inside(args.ns, [binary, "-f", "-c", args.config, "-s", os.path.join(args.dir, "bird.ctl"),
                                 "-P", os.path.join(args.dir, "bird.pid")])


def frr_group_text() -> str:
    """/etc/group with FRR's vty group (and its own group) at gid 0."""
    with open("/etc/group") as handle:
        lines = handle.read().splitlines()
    out = []
    for line in lines:
        fields = line.split(":")
        if len(fields) == 4 and fields[0] in ("frrvty", "frr"):
            fields[2], fields[3] = "0", "root"
        out.append(":".join(fields))
    return "\n".join(out) + "\n"


def private_group_file(group_file: str) -> None:
    """A private mount namespace for this process and its children, with `group_file`
    (written here, by root, never followed if it is a link) bound over /etc/group."""
    fd = os.open(group_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(frr_group_text())
    libc = ctypes.CDLL(None, use_errno=True)
    for result, what in ((lambda: libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)"),
                         (lambda: libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private"),
                         (lambda: libc.mount(group_file.encode(), b"/etc/group", None, MS_BIND, None),
                          "bind the group file")):
        if result() != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"{what}: {os.strerror(code)}")


def frr_argv(daemon: str, args: argparse.Namespace) -> list[str]:
    return [os.path.join(FRR_BINARIES, daemon), "-f", args.config, "-i", os.path.join(args.dir, f"{daemon}.pid"),
            "-z", os.path.join(args.dir, "zserv.api"), "--vty_socket", args.dir, "-u", "root", "-g", "root",
            "--log", "stdout"]


class Supervisor:
    """FRR's daemons as the slice's root in its sliver, children of this process."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.children: list[subprocess.Popen] = []
        self.owner = userns.open_owner(args.ns)

    def start(self, daemon: str) -> None:
        argv = userns.enter_argv(self.args.ns, self.owner, frr_argv(daemon, self.args), userns.FRR_CAPS)
        self.children.append(subprocess.Popen(argv, pass_fds=(self.owner,), stdin=subprocess.DEVNULL))

    def wait_for(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if time.monotonic() > deadline or any(c.poll() is not None for c in self.children):
                raise RuntimeError(f"zebra did not open {path}")
            time.sleep(0.05)

    def stop(self, *_) -> None:
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        for child in self.children:
            try:
                child.wait(timeout=3)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        sys.exit(0)

    def run(self, daemons: list[str]) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        try:
            self.start(daemons[0])
            self.wait_for(os.path.join(self.args.dir, "zserv.api"), ZEBRA_WAIT)
            for daemon in daemons[1:]:
                self.start(daemon)
            pid, status = os.wait()  # the first to end ends them all
            print(f"ownsuite: pid {pid} ended ({status}): stopping the others", flush=True)
        except RuntimeError as exc:
            print(f"ownsuite: {exc}", flush=True)
        self.stop()
        return 1


def run_frr(args: argparse.Namespace) -> int:
    daemons = args.daemons.split(",")
    missing = [d for d in daemons if not os.access(os.path.join(FRR_BINARIES, d), os.X_OK)]
    if missing:
        print(f"ownsuite: FRR's {', '.join(missing)} not found in {FRR_BINARIES} (apt install frr)", flush=True)
        return 1
    stale = ["zserv.api"] + [f"{d}.{ext}" for d in daemons for ext in ("vty", "pid")]
    own_directory(args.dir, args.uid, args.gid, stale)
    private_group_file(args.group_file)
    return Supervisor(args).run(daemons)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m dataplane.ownsuite", description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=("bird", "frr"), required=True)
    parser.add_argument("--ns", required=True, help="the sliver's network namespace")
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--gid", type=int, required=True)
    parser.add_argument("--dir", required=True, help="the suite's sockets and PID files (made the slice's)")
    parser.add_argument("--config", required=True, help="the slice's configuration (read as the slice)")
    parser.add_argument("--daemons", default="", help="frr: zebra,DAEMON,...")
    parser.add_argument("--group-file", default="", help="frr: where root writes the private /etc/group")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    why = userns.unreadable_by(args.config, args.uid, args.gid)
    if why:
        print(f"ownsuite: the slice's user (uid {args.uid}) cannot read {args.config}: {why}", flush=True)
        return 1
    if userns.root_ids(args.ns) != (args.uid, args.gid):
        print(f"ownsuite: {args.ns} is not owned by the slice's user namespace", flush=True)
        return 1
    if args.suite == "bird":
        run_bird(args)  # does not return
    return run_frr(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
