"""Who listens where, read from /proc (no tools): the TCP listeners, bound UDP sockets and
UNIX sockets of a network namespace, the sockets a process (and its descendants) holds,
and which process holds a given socket. `vispd` uses it to tell a daemon that runs from one
that serves, and to name a foreign process that already holds a daemon's port.

I/O: reads /proc, entering the namespace with the calling thread.
"""
from __future__ import annotations

import contextlib
import os
import socket
import struct
from dataclasses import dataclass

from . import netns

TCP_LISTEN = "0A"


@dataclass(frozen=True)
class Bound:
    proto: str  # "tcp" | "udp" | "unix"
    address: str  # IPv4 address, or the UNIX socket's path
    port: int  # 0 for UNIX sockets
    inode: int


def _ipv4(hex_address: str) -> tuple[str, int]:
    address, port = hex_address.split(":")
    return socket.inet_ntoa(struct.pack("<I", int(address, 16))), int(port, 16)


def _read_tables() -> list[Bound]:
    found: list[Bound] = []
    for proto in ("tcp", "udp"):
        with open(f"/proc/thread-self/net/{proto}") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if proto == "tcp" and fields[3] != TCP_LISTEN:
                    continue
                address, port = _ipv4(fields[1])
                found.append(Bound(proto, address, port, int(fields[9])))
    with open("/proc/thread-self/net/unix") as handle:
        for line in handle.readlines()[1:]:
            fields = line.split()
            if len(fields) >= 8:
                found.append(Bound("unix", fields[7], 0, int(fields[6])))
    return found


def bound_in(ns: str) -> list[Bound]:
    """Every listening TCP, bound UDP and named UNIX socket of namespace `ns` ("" = ours)."""
    with netns.entered(ns) if ns else contextlib.nullcontext():
        return _read_tables()


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (from the kernel's children lists where it keeps
    them, else from every process's parent)."""
    if os.path.exists(f"/proc/{pid}/task/{pid}/children"):
        found, todo = [], [pid]
        while todo:
            current = todo.pop()
            found.append(current)
            for task in _tasks(current):
                with contextlib.suppress(OSError, ValueError):
                    with open(f"/proc/{current}/task/{task}/children") as handle:
                        todo.extend(int(child) for child in handle.read().split())
        return found
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _tasks(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process `pid` holds open."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def matches(listen: tuple[str, str, int], bound: Bound) -> bool:
    proto, address, port = listen
    if proto == "unix":
        return bound.proto == "unix" and bound.address == address
    return bound.proto == proto and bound.port == port and address in ("0.0.0.0", bound.address, "")


def missing(ns: str, pid: int, listens) -> list[tuple[str, str, int]]:
    """The listens (proto, address, port) that process `pid` and its descendants do not hold."""
    if not listens:
        return []
    held = set().union(*(socket_inodes(p) for p in descendants(pid)))
    table = bound_in(ns)
    return [listen for listen in listens
            if not any(matches(listen, b) and b.inode in held for b in table)]


def holders(ns: str, listen: tuple[str, str, int]) -> list[tuple[int, str]]:
    """(pid, command name) of every process holding a socket that takes `listen`'s place in
    namespace `ns` (the same port on the same or every address)."""
    proto, address, port = listen
    inodes = {b.inode for b in bound_in(ns) if b.proto == proto and (
        b.address == address if proto == "unix" else b.port == port and (b.address in (address, "0.0.0.0")
                                                                          or address == "0.0.0.0"))}
    found = []
    if not inodes:
        return found
    for entry in os.listdir("/proc"):
        if entry.isdigit() and socket_inodes(int(entry)) & inodes:
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/comm") as handle:
                    found.append((int(entry), handle.read().strip()))
    return found
