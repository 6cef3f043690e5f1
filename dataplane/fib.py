"""Batched IPv4 route installation into the kernel FIB of the calling process's network
namespace, over a raw NETLINK_ROUTE socket.

Messages are packed with `struct` (one precompiled layout per operation, about a microsecond
each), thousands are sent per `send`, and only the last message of a batch asks for an ack:
the kernel reports a failed message anyway, so the errors are read back, matched to their
prefixes by sequence number, and returned. Every route carries our protocol number and metric;
deletions match on both, so this module can never remove a route it did not make, and our
metric (non-zero) keeps a `replace` from overwriting a metric-0 route that vispd or the kernel
owns for the same prefix.

I/O: netlink, in the calling thread's namespace.
"""
from __future__ import annotations

import errno as errno_module
import os
import socket
import struct
from typing import Iterable, NamedTuple

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP, NLM_F_REPLACE, NLM_F_CREATE = 0x300, 0x100, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200
NLMSGERR_ATTR_MSG = 1
RTA_DST, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 5, 6, 7, 15
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE, RT_SCOPE_NOWHERE = 0, 255

# nlmsghdr | rtmsg | RTA_DST | RTA_GATEWAY | RTA_TABLE | RTA_PRIORITY
_NEW = struct.Struct("=IHHII BBBBBBBBI HH4s HH4s HHI HHI")
# the same with RTA_PREFSRC: packets the sliver sends itself leave from its loopback
_NEW_SRC = struct.Struct("=IHHII BBBBBBBBI HH4s HH4s HHI HHI HH4s")
# nlmsghdr | rtmsg | RTA_DST | RTA_TABLE | RTA_PRIORITY
_DEL = struct.Struct("=IHHII BBBBBBBBI HH4s HHI HHI")
_HDR = struct.Struct("=IHHII")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")
_ERR = struct.Struct("=i")

DEFAULT_BATCH = 1024
_SOCKET_BUFFER = 8 << 20


class FibError(NamedTuple):
    prefix: str
    op: str           # "replace" | "delete"
    errno: int
    message: str

    def __str__(self) -> str:
        return f"{self.op} {self.prefix}: {self.message}"


def _force_buffer(sock: socket.socket, force: int, plain: int, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, plain, size)


class Fib:
    """Routes of protocol `proto`, metric `metric`, in routing table `table`."""

    def __init__(self, proto: int = 78, table: int = 254, metric: int = 20, batch: int = DEFAULT_BATCH,
                 prefsrc: str | None = None, metrics: tuple[int, int] | None = None):
        """`metrics`: the (lowest, highest) metric of the routes this Fib owns, when operations
        give their own (`(prefix, gateway, metric)`); by default only `metric`."""
        self.proto, self.table, self.metric, self.batch = proto, table, metric, batch
        self.metrics = metrics or (metric, metric)
        if not self.metrics[0] <= metric <= self.metrics[1]:
            raise ValueError(f"metric {metric} outside the owned range {self.metrics}")
        self.prefsrc = socket.inet_aton(prefsrc) if prefsrc else None
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        _force_buffer(self._sock, 32, socket.SO_SNDBUF, _SOCKET_BUFFER)   # SO_SNDBUFFORCE
        _force_buffer(self._sock, 33, socket.SO_RCVBUF, _SOCKET_BUFFER)   # SO_RCVBUFFORCE
        for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK):
            try:
                self._sock.setsockopt(SOL_NETLINK, option, 1)
            except OSError:
                pass
        self._sock.bind((0, 0))
        self._sock.settimeout(10.0)
        self._seq = 1
        self._table_byte = table if table < 256 else 252   # RT_TABLE_COMPAT; RTA_TABLE rules
        self._gateways: dict[str, bytes] = {}

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "Fib":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- changes -----------------------------------------------------------------------
    def apply(self, ops: Iterable[tuple]) -> list[FibError]:
        """Replace (gateway given) or delete (gateway None) each prefix; returns the failures.
        An operation is `(prefix, gateway)`, at this Fib's metric, or `(prefix, gateway,
        metric)` with a metric in its owned range (routes differing only in metric are two
        routes: changing one's metric is adding the new and deleting the old).

        Deleting a route that is already gone is not an error."""
        errors: list[FibError] = []
        batch: list[tuple[str, str | None]] = []
        for op in ops:
            batch.append(op)
            if len(batch) >= self.batch:
                errors.extend(self._send(batch))
                batch = []
        if batch:
            errors.extend(self._send(batch))
        return errors

    def _send(self, batch: list[tuple[str, str | None]]) -> list[FibError]:
        new_pack, new_src_pack, del_pack, prefsrc = _NEW.pack, _NEW_SRC.pack, _DEL.pack, self.prefsrc
        aton, gateways = socket.inet_aton, self._gateways
        proto, table, table_byte, metric = self.proto, self.table, self._table_byte, self.metric
        new_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE
        first = self._seq
        last = first + len(batch) - 1
        parts = []
        append = parts.append
        seq = first
        low, high = self.metrics
        for op in batch:
            prefix, gateway = op[0], op[1]
            if len(op) > 2:
                metric = op[2]
                if not low <= metric <= high:
                    raise ValueError(f"{prefix}: metric {metric} outside the owned range {self.metrics}")
            else:
                metric = self.metric
            address, _, length = prefix.partition("/")
            flags_extra = NLM_F_ACK if seq == last else 0
            if gateway is not None:
                gw = gateways.get(gateway)
                if gw is None:
                    gw = gateways[gateway] = aton(gateway)
                if prefsrc is None:
                    append(new_pack(60, RTM_NEWROUTE, new_flags | flags_extra, seq, 0,
                                    socket.AF_INET, int(length), 0, 0, table_byte, proto,
                                    RT_SCOPE_UNIVERSE, RTN_UNICAST, 0,
                                    8, RTA_DST, aton(address), 8, RTA_GATEWAY, gw,
                                    8, RTA_TABLE, table, 8, RTA_PRIORITY, metric))
                else:
                    append(new_src_pack(68, RTM_NEWROUTE, new_flags | flags_extra, seq, 0,
                                        socket.AF_INET, int(length), 0, 0, table_byte, proto,
                                        RT_SCOPE_UNIVERSE, RTN_UNICAST, 0,
                                        8, RTA_DST, aton(address), 8, RTA_GATEWAY, gw,
                                        8, RTA_TABLE, table, 8, RTA_PRIORITY, metric, 8, RTA_PREFSRC, prefsrc))
            else:
                append(del_pack(52, RTM_DELROUTE, NLM_F_REQUEST | flags_extra, seq, 0,
                                socket.AF_INET, int(length), 0, 0, table_byte, proto,
                                RT_SCOPE_NOWHERE, 0, 0,
                                8, RTA_DST, aton(address), 8, RTA_TABLE, table, 8, RTA_PRIORITY, metric))
            seq += 1
        self._seq = seq
        self._sock.send(b"".join(parts))
        failures = self._collect(first, last)
        errors = []
        for failed_seq, code, text in failures:
            prefix, gateway = batch[failed_seq - first][:2]
            op = "delete" if gateway is None else "replace"
            if op == "delete" and code == errno_module.ESRCH:
                continue
            message = text or os.strerror(code)
            if gateway is not None:
                message += f" (via {gateway})"
            errors.append(FibError(prefix, op, code, message))
        return errors

    def _collect(self, first: int, last: int) -> list[tuple[int, int, str]]:
        """Read error messages until the ack of `last`; (seq, errno, extended message)."""
        failures = []
        while True:
            try:
                data = self._sock.recv(1 << 20)
            except TimeoutError:
                failures.append((last, errno_module.ETIMEDOUT, "no acknowledgement from the kernel"))
                return failures
            except OSError as exc:
                if exc.errno == errno_module.ENOBUFS:     # errors were dropped: unknown which
                    failures.append((first, errno_module.ENOBUFS, "netlink receive buffer overflow: "
                                     "some failures of this batch were lost"))
                    continue
                raise
            offset = 0
            while offset + 16 <= len(data):
                length, kind, flags, seq, _ = _HDR.unpack_from(data, offset)
                if length < 16:
                    break
                if kind == NLMSG_ERROR and first <= seq <= last:
                    (code,) = _ERR.unpack_from(data, offset + 16)
                    if code:
                        failures.append((seq, -code, _ext_message(data, offset, length, flags)))
                    if seq == last:
                        return failures
                offset += (length + 3) & ~3

    # -- reading -----------------------------------------------------------------------
    def routes(self) -> dict[str, str | None]:
        """Our routes now in the table: prefix -> gateway (None if it has none); with an owned
        range of metrics, a prefix present at two metrics gives the lower's gateway."""
        found: dict[str, str | None] = {}
        for prefix, gateway, _ in sorted(self.entries(), key=lambda e: -e[2]):
            found[prefix] = gateway
        return found

    def entries(self) -> list[tuple[str, str | None, int]]:
        """Our routes now in the table: (prefix, gateway or None, metric)."""
        seq = self._seq
        self._seq += 1
        rtmsg = _RTMSG.pack(socket.AF_INET, 0, 0, 0, self._table_byte, self.proto, 0, 0, 0)
        table_attr = _RTA.pack(8, RTA_TABLE) + struct.pack("=I", self.table)
        body = rtmsg + table_attr
        self._sock.send(_HDR.pack(16 + len(body), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
        found: list[tuple[str, str | None, int]] = []
        while True:
            data = self._sock.recv(1 << 20)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _flags, msg_seq, _ = _HDR.unpack_from(data, offset)
                if length < 16:
                    return found
                if msg_seq == seq:
                    if kind == NLMSG_DONE:
                        return found
                    if kind == NLMSG_ERROR:
                        (code,) = _ERR.unpack_from(data, offset + 16)
                        if code:
                            raise OSError(-code, f"route dump: {os.strerror(-code)}")
                        return found
                    if kind == RTM_NEWROUTE:
                        route = self._parse_route(data, offset, length)
                        if route is not None:
                            found.append(route)
                offset += (length + 3) & ~3

    def _parse_route(self, data: bytes, offset: int, length: int):
        family, dst_len, _src, _tos, table, proto, _scope, _type, _flags = _RTMSG.unpack_from(data, offset + 16)
        if family != socket.AF_INET or proto != self.proto:
            return None
        dst = b"\0\0\0\0"
        gateway = None
        priority = 0
        position, end = offset + 28, offset + length
        while position + 4 <= end:
            rta_len, rta_type = _RTA.unpack_from(data, position)
            if rta_len < 4:
                break
            value = data[position + 4: position + rta_len]
            if rta_type == RTA_DST:
                dst = value
            elif rta_type == RTA_GATEWAY:
                gateway = socket.inet_ntoa(value)
            elif rta_type == RTA_TABLE:
                (table,) = struct.unpack("=I", value)
            elif rta_type == RTA_PRIORITY:
                (priority,) = struct.unpack("=I", value)
            position += (rta_len + 3) & ~3
        if table != self.table or not self.metrics[0] <= priority <= self.metrics[1]:
            return None
        return f"{socket.inet_ntoa(dst)}/{dst_len}", gateway, priority

    def flush(self) -> int:
        """Delete all our routes from the table (e.g. left by a previous run); returns how many."""
        entries = self.entries()
        errors = self.apply((prefix, None, metric) for prefix, _, metric in entries)
        return len(entries) - len(errors)


def _ext_message(data: bytes, offset: int, length: int, flags: int) -> str:
    """NLMSGERR_ATTR_MSG from an extended ack, if the kernel sent one."""
    if not flags & NLM_F_ACK_TLVS:
        return ""
    # nlmsghdr(16) + error(4) + the original message: its header only if capped (NETLINK_CAP_ACK)
    position, end = offset + 36, offset + length
    if not flags & NLM_F_CAPPED:
        (original_length,) = struct.unpack_from("=I", data, offset + 20)
        position = offset + 20 + ((original_length + 3) & ~3)
    while position + 4 <= end:
        rta_len, rta_type = _RTA.unpack_from(data, position)
        if rta_len < 4:
            break
        if rta_type == NLMSGERR_ATTR_MSG:
            return data[position + 4: position + rta_len].split(b"\0", 1)[0].decode(errors="replace")
        position += (rta_len + 3) & ~3
    return ""
