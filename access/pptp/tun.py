"""The engine's TUN device (I/O): create it in the current network namespace, give it the
link's point-to-point addresses, MTU and routes (netlink through pyroute2).

The device is not persistent: it disappears when the engine's file descriptor closes, so
an engine that dies never leaves a TUN behind.
"""
from __future__ import annotations

import fcntl
import os
import struct

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def open_tun(name: str) -> int:
    """A non-blocking fd on a new TUN `name` (EBUSY if the name is taken)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def configure(name: str, local: str, peer: str | None, mtu: int, routes: list[str]) -> None:
    """Address `local` with `peer` as the other end (/32 each), MTU, up, and `routes` via it."""
    from pyroute2 import IPRoute

    try:  # the link carries IPv4 only (IPCP): no IPv6 link-local chatter into the TUN
        with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as handle:
            handle.write("1")
    except OSError:
        pass
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=name)[0]
        ipr.link("set", index=index, mtu=mtu, txqlen=1000)
        if peer:
            ipr.addr("add", index=index, local=local, address=peer, prefixlen=32)
        else:
            ipr.addr("add", index=index, address=local, prefixlen=32)
        ipr.link("set", index=index, state="up")
        for route in routes:
            destination, length = route.split("/")
            ipr.route("replace", dst=destination, dst_len=int(length), oif=index)
