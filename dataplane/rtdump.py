"""Raw rtnetlink dumps for observation: the devices, IPv4 addresses, permanent neighbours,
routes of every table, rules and root qdiscs of the calling thread's namespace, decoded
with `struct` into plain tuples.

`vispd up`, `status`, `plan` and `down` read every owned namespace; pyroute2 spent about
2 ms of Python per namespace and dump decoding its generic message classes (7 of the 10 s
of a no-op `up` of 400 namespaces), where these fixed layouts need microseconds. Each
function takes an open NETLINK_ROUTE socket (`RawLinks.sock`) in the namespace to read.

I/O: netlink dumps (reads only).
"""
from __future__ import annotations

import os
import socket
import struct
from typing import NamedTuple

from .rtnl import _HDR, _IFINFO, attributes_of as _attrs

NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE, RTM_GETNEIGH, RTM_GETRULE, RTM_GETQDISC = 18, 22, 26, 30, 34, 38
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_INFO_KIND = 1, 3, 4, 18, 20, 1
IFA_ADDRESS = 1
NDA_DST, NDA_LLADDR = 1, 2
RTA_DST, RTA_GATEWAY, RTA_TABLE = 1, 5, 15
FRA_IIFNAME, FRA_PRIORITY, FRA_TABLE, FRA_PROTOCOL = 3, 6, 15, 21
TCA_KIND = 1
TC_H_ROOT = 0xFFFFFFFF

_IFADDR = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, index
_NDMSG = struct.Struct("=BxxxiHBB")  # family, index, state, flags, type
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RULE = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, res1, res2, action, flags
_TCMSG = struct.Struct("=BxxxiIII")  # family, index, handle, parent, info


class Link(NamedTuple):
    index: int
    ifname: str
    kind: str  # IFLA_INFO_KIND ("" for lo and kinds without one)
    alias: str | None
    mtu: int
    flags: int
    mac: str


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.split(b"\0", 1)[0].decode(errors="replace")


def _u32(raw: bytes | None, default: int = 0) -> int:
    return struct.unpack("=I", raw[:4])[0] if raw else default


def dump(sock: socket.socket, kind: int, body: bytes, seq: int) -> list[bytes]:
    """Every message (header included) a dump request answers."""
    sock.send(_HDR.pack(16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
    messages = []
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + 16 <= len(data):
            length, msg_type, _, msg_seq, _ = _HDR.unpack_from(data, offset)
            if length < 16:
                return messages
            if msg_seq == seq:
                if msg_type == NLMSG_DONE:
                    return messages
                if msg_type == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, offset + 16)
                    if code:
                        raise OSError(-code, f"netlink dump {kind}: {os.strerror(-code)}")
                else:
                    messages.append(data[offset:offset + length])
            offset += (length + 3) & ~3


def links(sock: socket.socket, seq: int) -> list[Link]:
    found = []
    for msg in dump(sock, RTM_GETLINK, _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0), seq):
        _, _, index, flags, _ = _IFINFO.unpack_from(msg, 16)
        attrs = _attrs(msg, 16 + _IFINFO.size)
        info = _attrs(attrs.get(IFLA_LINKINFO, b""), 0)
        mac = attrs.get(IFLA_ADDRESS, b"")
        found.append(Link(index, _text(attrs.get(IFLA_IFNAME)) or "", _text(info.get(IFLA_INFO_KIND)) or "",
                          _text(attrs.get(IFLA_IFALIAS)), _u32(attrs.get(IFLA_MTU)), flags,
                          ":".join(f"{b:02x}" for b in mac)))
    return found


def addresses(sock: socket.socket, seq: int) -> list[tuple[int, str]]:
    """(ifindex, address/prefix length) of every IPv4 address."""
    found = []
    for msg in dump(sock, RTM_GETADDR, _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0), seq):
        family, prefixlen, _, _, index = _IFADDR.unpack_from(msg, 16)
        address = _attrs(msg, 16 + _IFADDR.size).get(IFA_ADDRESS)
        if family == socket.AF_INET and address:
            found.append((index, f"{socket.inet_ntoa(address[:4])}/{prefixlen}"))
    return found


def neighbours(sock: socket.socket, seq: int) -> list[tuple[int, str, str, int]]:
    """(ifindex, IPv4 address, MAC or "", state) of every neighbour entry."""
    found = []
    for msg in dump(sock, RTM_GETNEIGH, _NDMSG.pack(socket.AF_INET, 0, 0, 0, 0), seq):
        family, index, state, _, _ = _NDMSG.unpack_from(msg, 16)
        attrs = _attrs(msg, 16 + _NDMSG.size)
        if family == socket.AF_INET and NDA_DST in attrs:
            mac = attrs.get(NDA_LLADDR, b"")
            found.append((index, socket.inet_ntoa(attrs[NDA_DST][:4]), ":".join(f"{b:02x}" for b in mac), state))
    return found


def routes(sock: socket.socket, seq: int) -> list[tuple[int, int, str, str]]:
    """(table, protocol, destination/length, gateway or "") of every IPv4 route, every table."""
    found = []
    for msg in dump(sock, RTM_GETROUTE, _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0), seq):
        family, dst_len, _, _, table, proto, _, _, _ = _RTMSG.unpack_from(msg, 16)
        if family != socket.AF_INET:
            continue
        attrs = _attrs(msg, 16 + _RTMSG.size)
        dst, gateway = attrs.get(RTA_DST), attrs.get(RTA_GATEWAY)
        found.append((_u32(attrs.get(RTA_TABLE), table), proto,
                      f"{socket.inet_ntoa(dst[:4]) if dst else '0.0.0.0'}/{dst_len}",
                      socket.inet_ntoa(gateway[:4]) if gateway else ""))
    return found


def rules(sock: socket.socket, seq: int) -> list[tuple[str, int, int, int, int]]:
    """(input device, table, priority, action, protocol) of every IPv4 rule."""
    found = []
    for msg in dump(sock, RTM_GETRULE, _RULE.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0), seq):
        family, _, _, _, table, _, _, action, _ = _RULE.unpack_from(msg, 16)
        if family != socket.AF_INET:
            continue
        attrs = _attrs(msg, 16 + _RULE.size)
        protocol = attrs[FRA_PROTOCOL][0] if FRA_PROTOCOL in attrs else 0
        found.append((_text(attrs.get(FRA_IIFNAME)) or "", _u32(attrs.get(FRA_TABLE), table),
                      _u32(attrs.get(FRA_PRIORITY)), action, protocol))
    return found


def root_qdiscs(sock: socket.socket, seq: int) -> dict[int, str]:
    """ifindex -> kind of its root qdisc."""
    found = {}
    for msg in dump(sock, RTM_GETQDISC, _TCMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0), seq):
        _, index, _, parent, _ = _TCMSG.unpack_from(msg, 16)
        if parent == TC_H_ROOT:
            found[index] = _text(_attrs(msg, 16 + _TCMSG.size).get(TCA_KIND)) or ""
    return found
