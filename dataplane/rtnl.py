"""Raw rtnetlink for the requests `up` makes thousands of times: look a device up by name
(and read its ownership alias), set its alias with its flags and MTU, create the veths and
macvlans of the substrate and the slivers, and replace addresses and permanent neighbours.

pyroute2 spends about a millisecond per request encoding, decoding and running its event
loop; these messages are fixed-layout, so they are packed with `struct` here and each
is acknowledged before the next (errors come back as OSError with the kernel's errno). The
socket belongs to the namespace it was opened in.

I/O: one netlink socket in the namespace it was opened in.
"""
from __future__ import annotations

import os
import socket
import struct

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWNEIGH = 16, 18, 20, 28
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x100, 0x200, 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_LINKINFO = 1, 3, 4, 5, 18
IFLA_IFALIAS, IFLA_NET_NS_FD = 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_MACVLAN_MODE, MACVLAN_MODE_PRIVATE = 1, 1
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
NDA_DST, NDA_LLADDR = 1, 2
NUD_PERMANENT = 0x80
IFF_UP, IFF_NOARP = 0x1, 0x80
NLA_F_NESTED = 0x8000

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBi")  # family, prefix length, flags, scope, index
_NDMSG = struct.Struct("=BxxxiHBB")  # family, index, state, flags, type
_RTA = struct.Struct("=HH")


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return _RTA.pack(length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def _nested(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(attrs))


def _mac(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def attributes_of(message: bytes, offset: int) -> dict[int, bytes]:
    """type -> payload of the attributes from `offset` to the end of one message."""
    found = {}
    while offset + 4 <= len(message):
        length, kind = _RTA.unpack_from(message, offset)
        if length < 4:
            break
        found[kind & ~NLA_F_NESTED] = message[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


class RawLinks:
    """Link lookups and settings over one raw rtnetlink socket (in the current namespace)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def read(self, reader):
        """One of dataplane.rtdump's dump readers, run on this socket."""
        self._seq += 1
        return reader(self._sock, self._seq)

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

    def _get(self, ifname: str) -> bytes | None:
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, ifname.encode() + b"\0")
        try:
            return self._request(RTM_GETLINK, 0, body)
        except OSError as exc:
            if exc.errno == 19:  # ENODEV
                return None
            raise

    def index(self, ifname: str) -> int | None:
        """The ifindex of `ifname`, or None if there is no such device."""
        reply = self._get(ifname)
        return None if reply is None else _IFINFO.unpack_from(reply, 16)[2]

    def alias(self, ifname: str) -> str | None:
        """The ifalias of `ifname` ("" when it has none); None if there is no such device."""
        reply = self._get(ifname)
        if reply is None:
            return None
        length = _HDR.unpack_from(reply, 0)[0]
        raw = attributes_of(reply[:length], 16 + _IFINFO.size).get(IFLA_IFALIAS, b"")
        return raw.split(b"\0", 1)[0].decode(errors="replace")

    def _create(self, body: bytes) -> None:
        self._request(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body)

    def add_veth(self, ifname: str, mtu: int, peer_ifname: str, peer_ns_fd: int, mac: str = "",
                 peer_mac: str = "") -> None:
        """A veth pair: `ifname` here, `peer_ifname` in the namespace of `peer_ns_fd`."""
        peer = [_attr(IFLA_IFNAME, peer_ifname.encode() + b"\0"), _attr(IFLA_MTU, struct.pack("=I", mtu)),
                _attr(IFLA_NET_NS_FD, struct.pack("=I", peer_ns_fd))]
        if peer_mac:
            peer.append(_attr(IFLA_ADDRESS, _mac(peer_mac)))
        info = _nested(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, b"veth"),
                       _nested(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
                                                    + b"".join(peer))))
        body = (_IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, ifname.encode() + b"\0")
                + _attr(IFLA_MTU, struct.pack("=I", mtu)) + (_attr(IFLA_ADDRESS, _mac(mac)) if mac else b"") + info)
        self._create(body)

    def add_macvlan(self, ifname: str, lower_index: int, mac: str, mtu: int, target_ns_fd: int) -> None:
        """A private-mode macvlan on device `lower_index` of this namespace, made straight
        into the namespace of `target_ns_fd`."""
        info = _nested(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, b"macvlan"),
                       _nested(IFLA_INFO_DATA, _attr(IFLA_MACVLAN_MODE, struct.pack("=I", MACVLAN_MODE_PRIVATE))))
        body = (_IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, ifname.encode() + b"\0")
                + _attr(IFLA_LINK, struct.pack("=I", lower_index)) + _attr(IFLA_ADDRESS, _mac(mac))
                + _attr(IFLA_MTU, struct.pack("=I", mtu)) + _attr(IFLA_NET_NS_FD, struct.pack("=I", target_ns_fd))
                + info)
        self._create(body)

    def replace_address(self, index: int, address: str, prefixlen: int) -> None:
        """An IPv4 address (local = peer address, no broadcast: as `ip address replace`)."""
        packed = socket.inet_aton(address)
        body = (_IFADDR.pack(socket.AF_INET, prefixlen, 0, 0, index) + _attr(IFA_LOCAL, packed)
                + _attr(IFA_ADDRESS, packed))
        self._request(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, body)

    def replace_neighbour(self, index: int, address: str, mac: str) -> None:
        """A permanent IPv4 neighbour entry."""
        body = (_NDMSG.pack(socket.AF_INET, index, NUD_PERMANENT, 0, 0) + _attr(NDA_DST, socket.inet_aton(address))
                + _attr(NDA_LLADDR, _mac(mac)))
        self._request(RTM_NEWNEIGH, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, body)

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
