"""Network namespaces owned by a user namespace of their own: the slivers of `routing: own`
slices (issue 14), where the slice is root over its sliver and nothing else. Side effects.

    userns.create(name, uid, gid)     # /run/netns/NAME, owned by a new user namespace: 0 -> uid/gid
    userns.root_ids(name)             # (uid, gid) root maps to there, or None (the machine's own)
    fd = userns.open_owner(name)      # its user namespace, as an inheritable descriptor
    argv = userns.enter_argv(name, fd, ["ip", "route"], userns.SLICE_CAPS)

Why a user namespace: a process that joins the sliver's user namespace as its root (uid 0
there, the slice's uid outside) holds CAP_NET_ADMIN, CAP_NET_RAW... in that user namespace,
and so over the network namespace it owns and nothing else: every other network
namespace, the machine's files and sysctls and every other kernel object belong to the
machine's user namespace, where it holds nothing. vispd (root of the machine's user
namespace, the parent) still manages every device of the sliver by its /run/netns name,
exactly as an ordinary sliver's.

The user namespace is created by root with the only mapping 0 -> (uid, gid) of the slice
(written by root, so no unprivileged user-namespace creation is needed), and is held by the
network namespace it owns: nothing else pins it, and removing /run/netns/NAME (once no
process is inside) frees both. `enter_argv` enters both namespaces with util-linux
`nsenter` (uid and gid 0 inside, no supplementary groups) and `setpriv` (a capability
bounding set of only what the slice needs there, no_new_privs).

Ambient capabilities (CAP_NET_ADMIN kept by the slice's uid on exec) were the
alternative: they are relative to the machine's user namespace, so they would let a slice
program change devices, routes and sysctls of every network namespace it can reach by a
descriptor (/proc/PID/ns/net of any process, a netlink socket passed to it) and nothing
in the kernel would tie them to its sliver; a user namespace ties them by construction.
"""
from __future__ import annotations

import fcntl
import os
import subprocess

from . import netns

NS_GET_USERNS = 0xB701  # ioctl on a namespace descriptor: its owning user namespace
# What a slice's programs hold in their own sliver (vispd exec, the slice's BIRD): routes,
# rules, devices, addresses, sysctls of its network namespace; raw and packet sockets;
# ports below 1024; broadcast.
SLICE_CAPS = ("net_admin", "net_raw", "net_bind_service", "net_broadcast")
# FRR's daemons insist on CAP_SYS_ADMIN too (for network namespaces as VRFs); in the
# slice's user namespace it reaches only namespaces that user namespace owns.
FRR_CAPS = SLICE_CAPS + ("sys_admin",)


def create(name: str, uid: int, gid: int) -> None:
    """Create network namespace `name` (/run/netns/NAME) inside a new user namespace whose
    root is `uid`/`gid` outside; raises FileExistsError if the name is taken."""
    if netns.exists(name):
        raise FileExistsError(f"network namespace {name} exists")
    netns.ensure_run_dir()
    # A helper unshares both (the user namespace first, so it owns the network namespace),
    # says so, and waits; root writes its maps and names its network namespace meanwhile.
    helper = subprocess.Popen(["unshare", "--user", "--net", "--", "sh", "-c", "echo; read _"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if helper.stdout.readline() != b"\n":
            raise OSError(f"unshare --user --net failed: {helper.stderr.read().decode().strip()}")
        for which, outside in (("uid", uid), ("gid", gid)):
            with open(f"/proc/{helper.pid}/{which}_map", "w") as handle:
                handle.write(f"0 {outside} 1\n")
        netns.publish(name, helper.pid)
    finally:
        helper.stdin.close()
        helper.wait()
        helper.stdout.close()
        helper.stderr.close()


def open_owner(name: str) -> int:
    """A descriptor (inheritable, for a child that joins it) of the user namespace owning
    network namespace `name`."""
    fd = os.open(netns.path(name), os.O_RDONLY)
    try:
        owner = fcntl.ioctl(fd, NS_GET_USERNS)
    finally:
        os.close(fd)
    os.set_inheritable(owner, True)
    return owner


def owned_elsewhere(name: str) -> bool:
    """Whether `name` is owned by another user namespace than the one vispd runs in."""
    owner = open_owner(name)
    try:
        return os.fstat(owner).st_ino != os.stat("/proc/self/ns/user").st_ino
    finally:
        os.close(owner)


def root_ids(name: str) -> tuple[int, int] | None:
    """(uid, gid) that root of the user namespace owning `name` is outside, or None when
    the machine's own user namespace owns it (an ordinary namespace). A user namespace
    that maps anything else (not one of ours) reads as (-1, -1)."""
    if not owned_elsewhere(name):
        return None
    owner = open_owner(name)
    try:
        read = subprocess.run(["nsenter", f"--user=/proc/self/fd/{owner}", "--", "cat", "/proc/self/uid_map",
                               "/proc/self/gid_map"], capture_output=True, text=True, pass_fds=(owner,))
    finally:
        os.close(owner)
    lines = [line.split() for line in read.stdout.splitlines()]
    if read.returncode != 0 or len(lines) != 2 or any(len(f) != 3 or f[0] != "0" or f[2] != "1" for f in lines):
        return (-1, -1)
    return int(lines[0][1]), int(lines[1][1])


def enter_argv(name: str, owner_fd: int, command: list[str], caps: tuple[str, ...] = SLICE_CAPS) -> list[str]:
    """The argv that runs `command` as root of the user namespace `owner_fd` (see
    `open_owner`; the descriptor must be inherited by the argv's first process) inside
    network namespace `name`, with only `caps`, no supplementary groups and no_new_privs."""
    bounding = ",".join(["-all"] + [f"+{cap}" for cap in caps])
    return ["setpriv", "--clear-groups", "--",
            "nsenter", f"--user=/proc/self/fd/{owner_fd}", f"--net={netns.path(name)}", "--",
            "setpriv", f"--bounding-set={bounding}", "--no-new-privs", "--", *command]


def exec_inside(name: str, command: list[str], caps: tuple[str, ...] = SLICE_CAPS) -> None:
    """Replace this process with `command` run as the slice's root in its sliver `name`."""
    argv = enter_argv(name, open_owner(name), command, caps)
    os.execvp(argv[0], argv)


def unreadable_by(path: str, uid: int, gid: int) -> str | None:
    """Why a process of `uid`/`gid` (no supplementary groups, no capabilities outside its
    sliver) could not read file `path`, or None: every directory on the real path must let
    it search, the file let it read (by the mode bits; ACLs are not consulted)."""
    real = os.path.realpath(path)
    if not os.path.isfile(real):
        return f"{path} is not a regular file"
    parts = real.split(os.sep)
    for depth in range(1, len(parts)):
        directory = os.sep.join(parts[:depth]) or os.sep
        if not _permits(os.stat(directory), uid, gid, 0o1):
            return f"it may not enter {directory}"
    if not _permits(os.stat(real), uid, gid, 0o4):
        return f"{real} is not readable by it (mode {os.stat(real).st_mode & 0o777:o})"
    return None


def _permits(st: os.stat_result, uid: int, gid: int, bit: int) -> bool:
    """The mode bits the kernel applies to `uid`/`gid` for this inode include `bit` (r=4, x=1)."""
    if st.st_uid == uid:
        return bool(st.st_mode >> 6 & bit)
    if st.st_gid == gid:
        return bool(st.st_mode >> 3 & bit)
    return bool(st.st_mode & bit)
