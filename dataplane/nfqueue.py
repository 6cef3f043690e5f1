"""Raw NFQUEUE netlink: bind a queue (metadata only), read packet ids in batches, release
them with batch verdicts. Touches the kernel (sockets); message packing is pure.

Only what a delay line needs, packed with `struct` (no libnetfilter_queue):

* `bind(queue)` opens a NETLINK_NETFILTER socket in the calling thread's namespace, binds
  the queue number, asks for metadata only (`NFQNL_COPY_META`: ~40-byte messages, no
  payload), a long queue (`NFQA_CFG_QUEUE_MAXLEN`) and `NFQA_CFG_F_GSO` (GSO packets are
  queued whole, not segmented first), with a big receive buffer and NETLINK_NO_ENOBUFS;
* `QueueSocket.read_batch()` reads up to `slots` messages with one `recvmmsg` call (ctypes)
  and returns only the last packet id: no per-packet Python work;
* `QueueSocket.accept_through(n)` sends one `NFQNL_MSG_VERDICT_BATCH` that accepts every
  queued packet with id <= n (the kernel compares ids wrap-safely).

When the socket's receive buffer is full the kernel drops the packet (the queue's
`user_dropped` count in /proc/net/netfilter/nfnetlink_queue), hence the big buffer; a
message skipped here (read past while waiting for an acknowledgement) costs only time:
its packet leaves with the next batch verdict that covers a later id.
"""
from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = NFNL_SUBSYS_QUEUE << 8 | 0
NFQNL_MSG_CONFIG = NFNL_SUBSYS_QUEUE << 8 | 2
NFQNL_MSG_VERDICT_BATCH = NFNL_SUBSYS_QUEUE << 8 | 3
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4

NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQA_CFG_MASK, NFQA_CFG_FLAGS = 4, 5
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_GSO = 0x1, 0x4
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_DROP, NF_ACCEPT = 0, 1

SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
SO_RCVBUFFORCE = 33
MSG_DONTWAIT = 0x40

_NLMSG = struct.Struct("=IHHII")  # length, type, flags, seq, portid
_NFGEN = struct.Struct("=BBH")  # family, version, res_id (big endian, packed by hand)
_NLA = struct.Struct("=HH")
NLMSG_HDRLEN = _NLMSG.size
PACKET_ID_OFFSET = NLMSG_HDRLEN + 4 + 4  # nlmsghdr, nfgenmsg, then NFQA_PACKET_HDR's nla header
_TYPE_OFFSET = 4
_FIRST_ATTR_TYPE_OFFSET = NLMSG_HDRLEN + 4 + 2

DEFAULT_QUEUE_MAXLEN = 65536
DEFAULT_RCVBUF = 64 << 20
DEFAULT_SLOTS = 1024
SLOT_BYTES = 256  # a metadata-only message is ~40-80 bytes


class NfqueueError(OSError):
    """The kernel refused a queue configuration (no NFQUEUE, queue taken, ...)."""


def _attr(kind: int, payload: bytes) -> bytes:
    length = _NLA.size + len(payload)
    return _NLA.pack(length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def _message(msg_type: int, queue: int, attrs: bytes, flags: int, seq: int = 0) -> bytes:
    body = _NFGEN.pack(socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    return _NLMSG.pack(NLMSG_HDRLEN + len(body), msg_type, flags, seq, 0) + body


def config_messages(queue: int, maxlen: int = DEFAULT_QUEUE_MAXLEN, gso: bool = True,
                    fail_open: bool = False) -> list[bytes]:
    """The configuration requests for one queue, in order (pure): bind, metadata-only copy
    mode, queue length, flags. Each asks for an acknowledgement."""
    flags = (NFQA_CFG_F_GSO if gso else 0) | (NFQA_CFG_F_FAIL_OPEN if fail_open else 0)
    mask = NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN
    bodies = [
        _attr(NFQA_CFG_CMD, struct.pack("=BxH", NFQNL_CFG_CMD_BIND, socket.htons(socket.AF_INET))),
        _attr(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META)),
        _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", maxlen)),
        _attr(NFQA_CFG_MASK, struct.pack(">I", mask)) + _attr(NFQA_CFG_FLAGS, struct.pack(">I", flags)),
    ]
    return [_message(NFQNL_MSG_CONFIG, queue, body, NLM_F_REQUEST | NLM_F_ACK, seq)
            for seq, body in enumerate(bodies, start=1)]


def unbind_message(queue: int) -> bytes:
    cmd = _attr(NFQA_CFG_CMD, struct.pack("=BxH", NFQNL_CFG_CMD_UNBIND, socket.htons(socket.AF_INET)))
    return _message(NFQNL_MSG_CONFIG, queue, cmd, NLM_F_REQUEST | NLM_F_ACK, 100)


def verdict_batch_message(queue: int, last_id: int, verdict: int = NF_ACCEPT) -> bytes:
    """One verdict for every queued packet with id <= last_id (pure)."""
    attrs = _attr(NFQA_VERDICT_HDR, struct.pack(">II", verdict, last_id & 0xFFFFFFFF))
    return _message(NFQNL_MSG_VERDICT_BATCH, queue, attrs, NLM_F_REQUEST)


def packet_id(message: bytes | memoryview, offset: int = 0) -> int | None:
    """The packet id of a queued-packet message, or None for anything else (pure)."""
    if len(message) - offset < PACKET_ID_OFFSET + 4:
        return None
    (msg_type,) = struct.unpack_from("=H", message, offset + _TYPE_OFFSET)
    (attr_type,) = struct.unpack_from("=H", message, offset + _FIRST_ATTR_TYPE_OFFSET)
    if msg_type != NFQNL_MSG_PACKET or (attr_type & 0x3FFF) != NFQA_PACKET_HDR:
        return None
    return struct.unpack_from(">I", message, offset + PACKET_ID_OFFSET)[0]


QUEUE_STATS_FIELDS = ("queue", "portid", "held", "copy_mode", "copy_range", "queue_dropped",
                      "user_dropped", "id_sequence")


def parse_queue_stats(text: str) -> list[dict[str, int]]:
    """/proc/net/netfilter/nfnetlink_queue of one namespace, one dict per bound queue (pure):
    packets held now, dropped because the queue was full (`queue_dropped`) or the reader's
    buffer was (`user_dropped`), and `id_sequence`, the last packet id handed out."""
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= len(QUEUE_STATS_FIELDS):
            rows.append(dict(zip(QUEUE_STATS_FIELDS, (int(f) for f in fields))))
    return rows


# recvmmsg through ctypes: Python 3.11's socket module has no recvmmsg.
class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(_Iovec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.recvmmsg.argtypes = [ctypes.c_int, ctypes.POINTER(_Mmsghdr), ctypes.c_uint, ctypes.c_int,
                           ctypes.c_void_p]
_libc.recvmmsg.restype = ctypes.c_int


class BatchReader:
    """Preallocated buffers for reading up to `slots` netlink messages with one recvmmsg."""

    def __init__(self, slots: int = DEFAULT_SLOTS, slot_bytes: int = SLOT_BYTES):
        self.slots, self.slot_bytes = slots, slot_bytes
        self.buffer = ctypes.create_string_buffer(slots * slot_bytes)
        self.view = memoryview(self.buffer).cast("B")
        self._iovecs = (_Iovec * slots)()
        self._messages = (_Mmsghdr * slots)()
        base = ctypes.addressof(self.buffer)
        for i in range(slots):
            self._iovecs[i].iov_base = base + i * slot_bytes
            self._iovecs[i].iov_len = slot_bytes
            self._messages[i].msg_hdr.msg_iov = ctypes.pointer(self._iovecs[i])
            self._messages[i].msg_hdr.msg_iovlen = 1

    def read(self, fd: int) -> int:
        """Messages read without blocking (0 when none is waiting)."""
        count = _libc.recvmmsg(fd, self._messages, self.slots, MSG_DONTWAIT, None)
        if count >= 0:
            return count
        code = ctypes.get_errno()
        if code in (errno.EAGAIN, errno.EINTR, errno.ENOBUFS):
            return 0
        raise OSError(code, f"recvmmsg: {os.strerror(code)}")

    def last_packet_id(self, count: int) -> int | None:
        """The id in the last queued-packet message among the first `count` read (the ids of
        one queue arrive in increasing order); None if none of them is a packet."""
        for index in range(count - 1, -1, -1):
            found = packet_id(self.view[index * self.slot_bytes:(index + 1) * self.slot_bytes])
            if found is not None:
                return found
        return None


class QueueSocket:
    """One bound queue in the namespace the socket was opened in."""

    def __init__(self, queue: int, sock: socket.socket, slots: int = DEFAULT_SLOTS):
        self.queue, self.sock = queue, sock
        self.fd = sock.fileno()
        self.reader = BatchReader(slots)
        self._verdict = bytearray(verdict_batch_message(queue, 0))
        self._verdict_id_at = len(self._verdict) - 4
        self.verdicts_sent = 0

    def read_batch(self) -> tuple[int, int | None]:
        """(messages read, last packet id among them or None)."""
        count = self.reader.read(self.fd)
        if count == 0:
            return 0, None
        return count, self.reader.last_packet_id(count)

    def accept_through(self, last_id: int) -> None:
        struct.pack_into(">I", self._verdict, self._verdict_id_at, last_id & 0xFFFFFFFF)
        self.sock.send(self._verdict)
        self.verdicts_sent += 1

    def close(self) -> None:
        try:
            self.sock.send(unbind_message(self.queue))
        except OSError:
            pass
        self.sock.close()


def _ack_error(reply: bytes) -> int:
    """The errno carried by a netlink acknowledgement (0 = success)."""
    _, msg_type, _, _, _ = _NLMSG.unpack_from(reply, 0)
    if msg_type != NLMSG_ERROR:
        return 0
    return -struct.unpack_from("=i", reply, NLMSG_HDRLEN)[0]


def _request(sock: socket.socket, message: bytes, what: str) -> None:
    sock.send(message)
    while True:
        reply = sock.recv(65536)
        (_, msg_type, _, seq, _) = _NLMSG.unpack_from(reply, 0)
        if msg_type == NLMSG_ERROR:
            code = _ack_error(reply)
            if code:
                raise NfqueueError(code, f"{what}: {os.strerror(code)}")
            return


def bind(queue: int, maxlen: int = DEFAULT_QUEUE_MAXLEN, rcvbuf: int = DEFAULT_RCVBUF,
         gso: bool = True, fail_open: bool = False, slots: int = DEFAULT_SLOTS) -> QueueSocket:
    """Bind NFQUEUE `queue` in the calling thread's network namespace (root needed)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        sock.bind((0, 0))
        for message in config_messages(queue, maxlen, gso, fail_open):
            _request(sock, message, f"NFQUEUE {queue} configuration")
    except BaseException:
        sock.close()
        raise
    return QueueSocket(queue, sock, slots)
