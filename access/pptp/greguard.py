"""Make the GRE sockets of pptpd and pptp survive bursts (I/O).

pptpd and pptp receive GRE on raw sockets. Since Linux 6.9 (`ipv4: raw: check
sk->sk_rcvbuf earlier`), a packet that finds the queue of every matching raw socket full
counts as not delivered, and with no kernel GRE module the namespace then sends ICMP
protocol-unreachable to the peer. pptp and pptpd have connected GRE sockets, so that ICMP
comes back as a fatal socket error (ENOPROTOOPT, "short read") and ends the call: one
burst that overflows a queue drops the whole tunnel (seen here within seconds of iperf3).

The guard is one more raw GRE socket in the namespace with a socket filter that accepts
nothing: it always matches and its queue stays empty, so every GRE packet counts as
delivered (the overflowing one is still dropped, which TCP handles as ordinary loss).
The filter runs after the match, so it costs one skb clone per GRE packet. Each engine
holds one while its link lives.

`borrow_gre_socket` gives the GRE socket of pptpd's call process or of pptp a larger
receive queue, so that bursts wait instead of being dropped (a drop there stalls pptpd).
"""
from __future__ import annotations

import ctypes
import os
import socket
import struct

SO_ATTACH_FILTER = 26
IPPROTO_GRE = 47
_BPF_RET_K = 0x06


def open_guard() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_GRE)
    try:
        program = ctypes.create_string_buffer(struct.pack("HBBI", _BPF_RET_K, 0, 0, 0))  # "ret #0"
        fprog = struct.pack("HL", 1, ctypes.addressof(program))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        sock.setblocking(False)
        while True:  # packets queued before the filter was attached would fill it for good
            sock.recv(65536)
    except BlockingIOError:
        pass
    except OSError:
        sock.close()
        raise
    return sock


SO_RCVBUFFORCE = 33
_SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture (generic table)


def _raw_gre_inodes() -> set[str]:
    """Inodes of the connected raw GRE sockets in this network namespace."""
    inodes = set()
    with open("/proc/net/raw") as handle:
        next(handle)
        for line in handle:
            fields = line.split()
            if fields[1].endswith(":002F") and fields[3] == "01":  # protocol 47, connected
                inodes.add(fields[9])
    return inodes


def borrow_gre_socket(pid: int, size: int = 2 << 20) -> socket.socket | None:
    """A duplicate of the connected GRE socket of process `pid` (pptpd's call process, or
    pptp), taken with pidfd_getfd (Linux >= 5.6, root), after giving it a receive queue of
    `size` bytes (doubled by the kernel). None if `pid` has no GRE socket yet.

    Why: pptpd and pptp keep the default queue (~200 KiB, ~90 packets) and cannot be told
    otherwise; a burst the user-space engine cannot take at once overflows it, and every
    GRE packet lost there is a hole in the sequence that pptpd waits on. With a few MiB the
    burst waits instead, and the engine watches the queue (`queued_bytes`) to drop early
    itself when it stays long (see the engine's `_read_pty`)."""
    inodes = _raw_gre_inodes()
    if not inodes:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if not (target.startswith("socket:[") and target[8:-1] in inodes):
                continue
            fd = libc.syscall(_SYS_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                raise OSError(ctypes.get_errno(), f"pidfd_getfd({pid}, {name})")
            borrowed = socket.socket(fileno=fd)
            borrowed.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
            return borrowed
    finally:
        os.close(pidfd)
    return None


SO_MEMINFO = 55


def queued_bytes(sock: socket.socket) -> int:
    """Memory held by the socket's receive queue now (SK_MEMINFO_RMEM_ALLOC)."""
    return struct.unpack_from("I", sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36))[0]
