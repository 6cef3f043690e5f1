"""Named network namespaces, the way `ip netns` keeps them (/run/netns/NAME bind mounts).

Creation unshares a new network namespace on the calling *thread* and bind-mounts it, which
costs about 0.3 ms where forking a helper (pyroute2's netns.create, `ip netns add`) costs
2-5 ms; namespaces made here are ordinary `ip netns` namespaces. `entered(name)` switches
the calling thread into a namespace for a block: sockets opened and processes forked there
live in that namespace.

The namespace vispd itself runs in (the machine's own, where the interfaces it borrows
and the public side of `public: {interface:}` live) is named `model.naming.HOME_NS` ("");
a handle on it is taken when this module is imported, so `entered(HOME_NS)` and
`path(HOME_NS)` mean that namespace even from inside another one.

I/O: mounts under /run/netns and setns of the calling thread.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import time
from typing import Iterator

from model.naming import HOME_NS

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 2
NS_GET_USERNS, NS_GET_PARENT = 0xB701, 0xB702  # ioctls on namespace descriptors

_libc = ctypes.CDLL(None, use_errno=True)
# The namespace this process started in, held open (not inherited by children).
_HOME_FD = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
_HOME_USERNS = os.stat("/proc/self/ns/user").st_ino  # the user namespace vispd runs in


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def path(name: str) -> str:
    if name == HOME_NS:
        return f"/proc/self/fd/{_HOME_FD}"
    return os.path.join(NETNS_RUN_DIR, name)


def home_inode() -> int:
    """The inode of the namespace vispd runs in (what identifies a network namespace)."""
    return os.fstat(_HOME_FD).st_ino


def find_by_inode(inode: int) -> str | None:
    """A path that opens the network namespace with this inode: vispd's own, a named one,
    or that of process 1; None when none does."""
    candidates = [path(HOME_NS), "/proc/1/ns/net"] + [path(n) for n in list_names()]
    for candidate in candidates:
        try:
            if os.stat(candidate).st_ino == inode:
                return candidate
        except OSError:
            continue
    return None


def exists(name: str) -> bool:
    return os.path.exists(path(name))


def list_names(prefix: str = "") -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_RUN_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def ensure_run_dir() -> None:
    """Make /run/netns a shared mount point, as iproute2 does, so mounts propagate."""
    global _run_dir_ready
    if _run_dir_ready:
        return
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    if _is_mount_point(NETNS_RUN_DIR):
        _run_dir_ready = True
        return
    target = NETNS_RUN_DIR.encode()
    _check(_libc.mount(target, target, b"none", MS_BIND | MS_REC, None), "bind /run/netns")
    _check(_libc.mount(b"", target, b"none", MS_SHARED | MS_REC, None), "share /run/netns")
    _run_dir_ready = True


_run_dir_ready = False


def _is_mount_point(directory: str) -> bool:
    """True when `directory` is a mount point (os.path.ismount misses same-device binds)."""
    with open("/proc/self/mountinfo") as handle:
        return any(line.split()[4] == directory for line in handle)


def create(name: str) -> None:
    """Create the named namespace; raises FileExistsError if the name is taken."""
    ensure_run_dir()
    target = path(name)
    fd = os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    os.close(fd)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            _check(
                _libc.mount(b"/proc/thread-self/ns/net", target.encode(), b"none", MS_BIND, None),
                f"bind-mount {target}",
            )
        finally:
            _check(_libc.setns(home, CLONE_NEWNET), "setns back")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise
    finally:
        os.close(home)


def publish(name: str, pid: int) -> None:
    """Give the network namespace of process `pid` the name `name` (as `ip netns attach`
    does): a bind mount of /proc/PID/ns/net, so it outlives the process."""
    ensure_run_dir()
    target = path(name)
    fd = os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    os.close(fd)
    try:
        _check(_libc.mount(f"/proc/{pid}/ns/net".encode(), target.encode(), b"none", MS_BIND, None),
               f"bind-mount {target}")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise


def inode(name: str) -> int:
    return os.stat(path(name)).st_ino


def pids_inside(name: str) -> list[int]:
    """PIDs of processes whose network namespace is `name` and, when a user namespace of
    its own owns `name` (a `routing: own` sliver, dataplane.userns), of every process in
    that user namespace or one nested in it, whatever network namespace it moved to."""
    try:
        wanted = inode(name)
        owner = _foreign_owner(name)
    except FileNotFoundError:
        return []
    except OSError as error:
        if error.errno in (errno.ENOTTY, errno.EINVAL):  # a name whose bind mount never happened
            return []                                     # (a run killed in between): no namespace
        raise
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino == wanted or (owner and _in_user_tree(int(entry), owner)):
                found.append(int(entry))
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return [p for p in found if p != os.getpid()]


def _foreign_owner(name: str) -> int | None:
    """Inode of the user namespace owning `name`, when it is not the one vispd runs in."""
    fd = os.open(path(name), os.O_RDONLY)
    try:
        owner = fcntl.ioctl(fd, NS_GET_USERNS)
    finally:
        os.close(fd)
    try:
        found = os.fstat(owner).st_ino
    finally:
        os.close(owner)
    return None if found == _HOME_USERNS else found


def _in_user_tree(pid: int, owner: int) -> bool:
    """Whether process `pid` is in user namespace `owner` or one nested in it."""
    if os.stat(f"/proc/{pid}/ns/user").st_ino == _HOME_USERNS:
        return False
    fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY)
    try:
        while True:
            if os.fstat(fd).st_ino == owner:
                return True
            try:
                parent = fcntl.ioctl(fd, NS_GET_PARENT)
            except OSError:  # above it is ours (or beyond reach): not in the tree
                return False
            os.close(fd)
            fd = parent
    finally:
        os.close(fd)


def kill_inside(name: str, grace: float = 2.0) -> list[int]:
    """Terminate every process running in namespace `name` (TERM, then KILL after `grace`,
    then KILL again for whatever was forked meanwhile); returns those still alive."""
    pids = pids_inside(name)
    if not pids:
        return []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if alive(p)]
        if pids:
            time.sleep(0.02)
    deadline = time.monotonic() + grace
    while True:  # what is left, and children forked while the others died
        pids = [p for p in pids_inside(name) if alive(p)]
        if not pids or time.monotonic() >= deadline:
            return pids
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def remove(name: str) -> None:
    """Unmount and remove the named namespace (its devices go once nothing holds it)."""
    target = path(name)
    result = _libc.umount2(target.encode(), MNT_DETACH)
    if result != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        _check(result, f"umount {target}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with the calling thread inside namespace `name`."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path(name), os.O_RDONLY)
    try:
        _check(_libc.setns(target, CLONE_NEWNET), f"setns {name}")
        try:
            yield
        finally:
            _check(_libc.setns(home, CLONE_NEWNET), "setns back")
    finally:
        os.close(target)
        os.close(home)


def write_sysctl(key: str, value: str) -> None:
    """Write a sysctl of the calling thread's network namespace."""
    with open("/proc/sys/" + key.replace(".", "/"), "w") as handle:
        handle.write(value)


def read_sysctl(key: str) -> str:
    with open("/proc/sys/" + key.replace(".", "/")) as handle:
        return handle.read().strip()


class SocketsByNamespace:
    """Sockets opened inside named namespaces (a socket stays in the namespace it was
    opened in), one per namespace, kept for reuse; `factory()` opens one."""

    def __init__(self, factory):
        self._factory = factory
        self._open: dict[str, object] = {}

    def get(self, name: str):
        sock = self._open.get(name)
        if sock is None:
            with entered(name):
                sock = self._factory()
            self._open[name] = sock
        return sock

    def drop(self, name: str) -> None:
        sock = self._open.pop(name, None)
        if sock is not None:
            with contextlib.suppress(Exception):
                sock.close()

    def close(self) -> None:
        for name in list(self._open):
            self.drop(name)
