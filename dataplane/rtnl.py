"""Raw rtnetlink for the two link requests `up` makes thousands of times: look a device up
by name, and set its ownership alias with its flags and MTU.

pyroute2 spends about a millisecond per request encoding, decoding and running its event
loop; these messages are fixed-layout, so they are packed with `struct` here and each
is acknowledged before the next (errors come back with the device named). The socket
belongs to the namespace it was opened in.

I/O: one netlink socket in the namespace it was opened in.
"""
from __future__ import annotations

import os
import socket
import struct

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK = 16, 18
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
IFLA_IFNAME, IFLA_MTU, IFLA_IFALIAS = 3, 4, 20
IFF_UP, IFF_NOARP = 0x1, 0x80

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_RTA = struct.Struct("=HH")


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return _RTA.pack(length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


class RawLinks:
    """Link lookups and settings over one raw rtnetlink socket (in the current namespace)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def _request(self, kind: int, flags: int, body: bytes) -> bytes:
        self._seq += 1
        seq = self._seq
        self._sock.send(_HDR.pack(16 + len(body), kind, NLM_F_REQUEST | flags, seq, 0) + body)
        while True:
            data = self._sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, msg_type, _, msg_seq, _ = _HDR.unpack_from(data, offset)
                if msg_seq == seq:
                    if msg_type == NLMSG_ERROR:
                        (code,) = struct.unpack_from("=i", data, offset + 16)
                        if code:
                            raise OSError(-code, os.strerror(-code))
                        return b""
                    return data[offset:offset + length]
                offset += (length + 3) & ~3

    def index(self, ifname: str) -> int | None:
        """The ifindex of `ifname`, or None if there is no such device."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, ifname.encode() + b"\0")
        try:
            reply = self._request(RTM_GETLINK, 0, body)
        except OSError as exc:
            if exc.errno == 19:  # ENODEV
                return None
            raise
        return _IFINFO.unpack_from(reply, 16)[2]

    def set(self, index: int, alias: str | None = None, mtu: int | None = None,
            up: bool | None = None, arp: bool | None = None) -> None:
        flags = change = 0
        if up is not None:
            change |= IFF_UP
            flags |= IFF_UP if up else 0
        if arp is not None:
            change |= IFF_NOARP
            flags |= 0 if arp else IFF_NOARP
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)
        if alias is not None:
            body += _attr(IFLA_IFALIAS, alias.encode())
        if mtu is not None:
            body += _attr(IFLA_MTU, struct.pack("=I", mtu))
        self._request(RTM_NEWLINK, NLM_F_ACK, body)
