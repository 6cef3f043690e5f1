"""The hook in ExaBGP 5.0.15's reader that hands received UPDATEs to vispd's helper in bulk,
undecoded. I/O: it runs inside the ExaBGP process (bgp/exabgp_launch.py installs it).

ExaBGP keeps the session: OPEN, KEEPALIVE, NOTIFICATION, ROUTE-REFRESH and our own
announcements go through its code as before. What changes, for an ESTABLISHED session
whose API process listens to `neighbor-changes` (vispd's helper):
- `Connection.reader` reads the socket in large chunks into a buffer (ExaBGP's reads a
  header, then a body: two recv calls per message) and serves messages from it, with the
  same checks (marker, length) and the same (length, type, header, body, error) tuples.
- `Protocol.read_message` takes every complete UPDATE at the head of that buffer in one
  run, checks that each parses far enough for RFC 7606 (bgp/wire.py `check_update`: a
  message that calls for a session reset raises ExaBGP's Notify, so ExaBGP sends the UPDATE
  Message Error NOTIFICATION and drops the session, as it would have), writes the run on
  the helper's stdin as ONE line, `#vispd-wire PEER ADDPATH ASN4 BASE64`, and gives
  ExaBGP's loop an empty UPDATE in place of the run: that feeds the hold timer (any
  message but a NOP does) and costs nothing else. The line goes through ExaBGP's own pipe
  to the helper, so it stays in order with the JSON state changes ("up", "down").
Any other session (not yet ESTABLISHED, no API process) goes through ExaBGP's code
unchanged, so the helper's JSON path still works as a fallback.

The hook depends on ExaBGP internals, so it is pinned: `check()` refuses any version but
PINNED_VERSION and any change to the source of the functions it replaces or relies on
(their SHA-256 are below), and the launcher refuses to start ExaBGP then, rather than run
a reader that could corrupt routes."""
from __future__ import annotations

import base64
import hashlib
import inspect
import os
import select
import socket
import time

from exabgp import version as exabgp_version
from exabgp.bgp.fsm import FSM
from exabgp.bgp.message import Message, Notify
from exabgp.bgp.message.update import Update
from exabgp.bgp.timer import ReceiveTimer
from exabgp.logger import log
from exabgp.protocol.family import AFI, SAFI
from exabgp.reactor import protocol as exabgp_protocol
from exabgp.reactor.api import API
from exabgp.reactor.api.processes import Processes
from exabgp.reactor.network.connection import Connection
from exabgp.reactor.network.error import LostConnection, NetworkError, NotConnected, NotifyError, TooSlowError, error
from exabgp.reactor.peer import Peer
from exabgp.reactor.protocol import Protocol

from bgp.wire import SessionReset, check_update

PINNED_VERSION = "5.0.15"
WIRE_PREFIX = "#vispd-wire"
SEND_PREFIX = "#vispd-send"        # helper -> ExaBGP: `#vispd-send PEER COMMANDS BASE64`, pre-encoded UPDATEs
REFRESH_PREFIX = "#vispd-refresh"  # ExaBGP -> helper: `#vispd-refresh PEER`, the peer sent a ROUTE-REFRESH
HOOK_ENV = "VISPD_EXABGP_HOOK"     # set in ExaBGP's environment (hence its helper's) once the hook is in
ROUTE_REFRESH = 5
HEADER_LEN = 19
MARKER = b"\xff" * 16
UPDATE = 2
NOTIFICATION = b"\x03"       # the type byte of a NOTIFICATION message
READ_SIZE = 1 << 18          # bytes asked of one recv
RUN_BYTES = 1 << 16          # bytes of UPDATEs taken from the buffer at once (at most, about)
HOLD_S = 0.002               # a run is held this long for more before it goes to the helper
HOLD_BYTES = 1 << 16         # ... unless this many bytes are held
DRAIN_S = 0.5                # how long a send of pre-encoded UPDATEs may wait for the socket to take them
STALL_S = 0.02               # ... but no longer than this without the peer taking anything
SEND_HOLD_DEFAULT_S = 480.0  # RFC 9687's send hold time where the session has no hold time

# SHA-256 of the source of what the hook replaces or relies on, in ExaBGP 5.0.15
RELIED_ON = {
    "Protocol.read_message": "1266df3f50c763ff78fba99e02c3359f6c989f0b2411f5b28e92dcee78c4eb34",
    "Connection.reader": "f24e4d410e05b858dee05e1e6f14d08166db9af084c0c94c8a6a667581b24113",
    "Connection._reader": "1a78401f968206d6d50b37e30e19df4ce26e8aa3850a102715770fed89b2d2d3",
    "Connection.reading": "4ffed0da4b2ea04fc843553896579f8edfc81481a82810e4bd9a8ccea908706c",
    "Peer._main": "e5ea2fecea84afed93bb95a47ada66324496198fa22f6541303f744901a3fe22",
    "API.process": "577ac15463d050886038e0cb0ab9c6e40c09f239f1a197a7c309ef188ae43555",
    "Processes.write": "59a9a5eb6dfdcd34d20ce59ad0f5ad3da68ab5eeefa9d3e602d9b0cdae973b63",
    "Processes.answer_done": "07dbae6ce8df63ec63fc5e1cb50d0af6fe68138c407cb65e6d78279a13dc1324",
    "Connection.writer": "c7cb346b75b1a5220599474266f4014199a32e31734ac26baa32cee63d30503d",
    "ReceiveTimer.check_ka_timer": "49f33e41e133bc4562aae3cf80d9f621ecd0504b79696101a4f16b551935411a",
}
_TARGETS = {"Protocol.read_message": Protocol.read_message, "Connection.reader": Connection.reader,
            "Connection._reader": Connection._reader, "Connection.reading": Connection.reading,
            "Peer._main": Peer._main, "ReceiveTimer.check_ka_timer": ReceiveTimer.check_ka_timer,
            "API.process": API.process, "Processes.write": Processes.write,
            "Processes.answer_done": Processes.answer_done, "Connection.writer": Connection.writer}
_ORIGINAL_READ_MESSAGE = Protocol.read_message
_ORIGINAL_WRITER = Connection.writer
_ORIGINAL_API_PROCESS = API.process


class HookRefused(RuntimeError):
    """This ExaBGP is not the one the hook was written for."""


def source_digests() -> dict[str, str]:
    return {name: hashlib.sha256(inspect.getsource(function).encode()).hexdigest()
            for name, function in _TARGETS.items()}


def check() -> None:
    """HookRefused unless ExaBGP is PINNED_VERSION with the internals the hook was written for."""
    if exabgp_version.release != PINNED_VERSION:
        raise HookRefused(f"ExaBGP {exabgp_version.release} is installed; vispd's hook needs exactly "
                          f"{PINNED_VERSION} (scripts/install.sh pins it)")
    moved = [name for name, digest in source_digests().items() if RELIED_ON[name] != digest]
    if moved:
        raise HookRefused(f"ExaBGP {PINNED_VERSION}'s internals differ from those the hook was written "
                          f"for: {', '.join(moved)}")
    if not hasattr(exabgp_protocol, "_UPDATE") or not isinstance(exabgp_protocol._UPDATE, Update):
        raise HookRefused("exabgp.reactor.protocol._UPDATE is gone")


# -- the buffered reader ---------------------------------------------------------------------
def _buffer(connection) -> bytearray:
    buffer = connection.__dict__.get("_vispd_buffer")
    if buffer is None or connection.__dict__.get("_vispd_io") is not connection.io:
        buffer = connection._vispd_buffer = bytearray()   # a new socket starts empty: nothing of the old one
        connection._vispd_held, connection._vispd_told = bytearray(), False
        connection._vispd_io = connection.io
    return buffer


def _fill(connection, buffer: bytearray) -> None:
    """Append what the socket has (without blocking); ExaBGP's errors as its _reader raises them."""
    if not connection.io:
        connection.close()
        raise NotConnected("Trying to read on a closed TCP connection")
    if not connection.reading():
        return
    try:
        data = connection.io.recv(READ_SIZE)
    except socket.timeout as exc:
        connection.close()
        raise TooSlowError(f"Timeout while reading data from the network ({exc})") from None
    except OSError as exc:
        if exc.args[0] in error.block:
            return
        if exc.args[0] in error.fatal:
            connection.close()
            raise LostConnection(f"issue reading on the socket: {exc}") from None
        raise NetworkError(f"Problem while reading data from the network ({exc})") from None
    if not data:
        connection.close()
        raise LostConnection("the TCP connection was closed by the remote end")
    buffer += data


def _complete(buffer: bytearray, connection) -> int:
    """Bytes of the message at the head if they are all there (or 19 for a header that is
    wrong whatever follows), else 0."""
    if len(buffer) < HEADER_LEN:
        return 0
    length = (buffer[16] << 8) | buffer[17]
    if buffer[:16] != MARKER or length < HEADER_LEN or length > connection.msg_size:
        return HEADER_LEN
    return length if len(buffer) >= length else 0


def reader(self):
    """Connection.reader, served from a buffer: same tuples, same checks."""
    buffer = _buffer(self)
    size = _complete(buffer, self)
    while not size:
        flush_output(self)   # ExaBGP's loop sits here between messages: what the helper queued goes out
        _fill(self, buffer)
        size = _complete(buffer, self)
        if not size:
            yield 0, 0, b"", b"", None
    header = bytes(buffer[:HEADER_LEN])
    msg = header[18]
    length = (header[16] << 8) | header[17]
    if not header.startswith(MARKER):
        yield 0, 0, header, b"", NotifyError(1, 1, "The packet received does not contain a BGP marker")
        return
    if length < HEADER_LEN or length > self.msg_size or not Message.Length.get(msg, lambda n: n >= HEADER_LEN)(length):
        yield length, 0, header, b"", NotifyError(1, 2, f"{Message.CODE.name(msg)} has an invalid message length of {length}")
        return
    if self.__dict__.get("_vispd_bulk") and (
            msg == UPDATE or (msg == ROUTE_REFRESH and not self.__dict__.get("_vispd_told"))):
        yield 0, 0, b"", b"", None   # read_message deals with it first, at its next call
        return
    body = bytes(buffer[HEADER_LEN:length])
    del buffer[:length]
    if msg == ROUTE_REFRESH:
        self._vispd_told = False   # read_message told the helper about this one
    yield length, msg, header, body, None


# -- UPDATEs in bulk ---------------------------------------------------------------------------
def _helper_processes(protocol) -> list:
    if protocol.peer.fsm != FSM.ESTABLISHED:
        return []
    return list(protocol.neighbor.api.get("neighbor-changes", []) or [])


def _take_updates(connection, buffer: bytearray, addpath: bool) -> bytes:
    """The complete, well-framed UPDATEs at the head of the buffer (taken out of it)."""
    position, end = 0, len(buffer)
    while position + HEADER_LEN <= end and position < RUN_BYTES:
        length = (buffer[position + 16] << 8) | buffer[position + 17]
        if buffer[position + 18] != UPDATE or buffer[position:position + 16] != MARKER \
                or length < 23 or length > connection.msg_size or position + length > end:
            break   # anything else is ExaBGP's to read and judge
        try:
            check_update(bytes(buffer[position + HEADER_LEN:position + length]), addpath)
        except SessionReset as exc:
            if position:
                break   # hand over what came before; the bad one is judged next time
            del buffer[:length]
            raise Notify(exc.code, exc.subcode, exc.data or exc.reason) from None
        position += length
    run = bytes(buffer[:position])
    del buffer[:position]
    return run


def _hand_over(self, processes, connection, addpath: bool) -> None:
    """Write the UPDATEs held for this session to the helper, as one line."""
    held = connection._vispd_held
    line = (f"{WIRE_PREFIX} {self.neighbor['peer-address']} {int(addpath)} {int(bool(self.negotiated.asn4))} "
            + base64.b64encode(held).decode("ascii"))
    connection._vispd_held = bytearray()
    for process in processes:
        self.peer.reactor.processes.write(process, line, self.neighbor)


def read_message(self):
    """Protocol.read_message: runs of UPDATEs to the helper, the rest through ExaBGP.

    A sender that paces its table (BIRD sends a realistic one an UPDATE at a time) would
    make a line per UPDATE: runs are held up to HOLD_S (or HOLD_BYTES) and handed over
    together, and always before anything else the peer sent is read (a NOTIFICATION must
    not overtake its UPDATEs). While holding, ExaBGP's loop is given an empty UPDATE, which
    brings it straight back here."""
    connection = self.connection
    processes = _helper_processes(self)
    connection._vispd_bulk = bool(processes)
    if processes and connection.io:
        flush_output(connection)
        buffer = _buffer(connection)
        if not _complete(buffer, connection):
            _fill(connection, buffer)
        addpath = bool(self.negotiated.addpath.receive(AFI.ipv4, SAFI.unicast))
        held = connection.__dict__.get("_vispd_held")
        if held is None:
            held = connection._vispd_held = bytearray()
        run = _take_updates(connection, buffer, addpath)
        if run:
            if not held:
                connection._vispd_held_since = time.monotonic()
            held += run
        if held:
            other_next = len(buffer) >= HEADER_LEN and buffer[18] != UPDATE
            if other_next or len(held) >= HOLD_BYTES or time.monotonic() - connection._vispd_held_since >= HOLD_S:
                _hand_over(self, processes, connection, addpath)
            yield exabgp_protocol._UPDATE
            return
        if len(buffer) >= HEADER_LEN and buffer[18] == ROUTE_REFRESH and not connection.__dict__.get("_vispd_told"):
            connection._vispd_told = True   # once per message: ExaBGP itself handles it next
            for process in processes:
                self.peer.reactor.processes.write(process, f"{REFRESH_PREFIX} {self.neighbor['peer-address']}",
                                                  self.neighbor)
    yield from _ORIGINAL_READ_MESSAGE(self)


# -- pre-encoded UPDATEs out ------------------------------------------------------------------
# A slice's queue (`_vispd_out`) is its own: a slice whose speaker stops reading must not hold
# up ExaBGP's loop, which serves the providers and every other slice. `_vispd_moved` is when
# the queue last moved (or started to fill); `_vispd_stalled` says a drain already waited
# STALL_S on this peer for nothing, so the next ones do not wait until it takes bytes again;
# `_vispd_send_hold` closes the session when the queue has not moved for that long (the send
# hold timer of RFC 9687: twice the negotiated hold time, as BIRD does).
class SendHoldExpired(NetworkError):
    """The peer took nothing of what was queued for it for a send hold time."""


def flush_output(connection) -> None:
    """Send what the helper queued for this session, as far as the socket takes it without
    blocking, unless one of ExaBGP's own messages is half written. SendHoldExpired (the
    connection closed) when the queue has not moved for the session's send hold time."""
    out = connection.__dict__.get("_vispd_out")
    if not out or connection.__dict__.get("_vispd_writing") or not connection.io:
        return
    try:
        sent = connection.io.send(out)
    except OSError as exc:
        if exc.args[0] not in error.block:
            connection.close()
            raise NetworkError(f"Problem while writing data to the network ({exc})") from None
        sent = 0
    now = time.monotonic()
    if sent:
        del out[:sent]
        connection._vispd_moved, connection._vispd_stalled = now, False
        return
    hold = connection.__dict__.get("_vispd_send_hold") or SEND_HOLD_DEFAULT_S
    since = connection.__dict__.get("_vispd_moved", now)
    if now - since >= hold:
        queued = len(out)
        out.clear()
        connection.close()
        raise SendHoldExpired(f"send hold timer expired (RFC 9687): the peer took nothing of {queued} queued "
                              f"bytes for {now - since:.0f} s")


def drain_output(connection, within: float = DRAIN_S, stall: float = STALL_S) -> None:
    """flush_output until the queue is empty, waiting for the socket to be writable, for at
    most `within` seconds while the peer takes bytes, `stall` seconds when it takes none.
    ExaBGP's loop polls a session's socket for reading only, and a slice's session brings
    little to read (a keepalive every few seconds): bytes the socket did not take at once
    would wait for ExaBGP's next turn of the loop. Waiting here is back-pressure on the
    helper's next line while the slice reads; a slice that takes nothing for `stall` is
    marked stalled and not waited for again until it takes bytes (its queue goes out on the
    loop's later turns, or the send hold timer closes its session)."""
    deadline = time.monotonic() + within
    while True:
        flush_output(connection)
        out = connection.__dict__.get("_vispd_out")
        left = deadline - time.monotonic()
        if not out or connection.__dict__.get("_vispd_writing") or not connection.io or left <= 0 \
                or connection.__dict__.get("_vispd_stalled"):
            return
        try:
            _, writable, _ = select.select([], [connection.io], [], min(left, stall))
        except (OSError, ValueError):
            return
        if not writable:
            connection._vispd_stalled = True
            return


def writer(self, data):
    """Connection.writer: what the helper queued goes first, whole, then ExaBGP's message.
    A NOTIFICATION (the session ends: e.g. the hold timer of a slice that stopped reading and
    sending) does not wait behind a stalled queue: the connection is closed at once."""
    while self.__dict__.get("_vispd_out") and self.io:
        flush_output(self)
        if self.__dict__.get("_vispd_out"):
            if data[18:19] == NOTIFICATION and self.__dict__.get("_vispd_stalled"):
                queued = len(self._vispd_out)
                self._vispd_out.clear()
                self.close()
                raise LostConnection(f"vispd: closed without the NOTIFICATION: the peer takes nothing of "
                                     f"{queued} queued bytes")
            yield False
    self._vispd_writing = True
    try:
        yield from _ORIGINAL_WRITER(self, data)
    finally:
        self._vispd_writing = False


def _established_protocol(reactor, address: str):
    for peer in list(reactor._peers.values()):
        if str(peer.neighbor["peer-address"]) == address:
            proto = peer.proto
            if peer.fsm == FSM.ESTABLISHED and proto is not None and proto.connection.io:
                return proto
            return None
    return None


def send_encoded(reactor, service: str, line: str) -> None:
    """`#vispd-send PEER COMMANDS BASE64`: queue the UPDATEs on the peer's session (dropped
    when it is not ESTABLISHED: the border sends a session its whole table when it comes
    up) and acknowledge the COMMANDS commands they stand for, as ExaBGP would have."""
    _tag, address, commands, payload = line.split(" ", 3)
    proto = _established_protocol(reactor, address)
    if proto is not None:
        negotiated = proto.negotiated
        if not negotiated.addpath.send(AFI.ipv4, SAFI.unicast) or not negotiated.asn4:
            log.error(lambda: f"vispd: UPDATEs for {address} dropped: the session lacks ADD-PATH or 4-byte ASNs",
                      "vispd")
            proto = None
    if proto is not None:
        connection = proto.connection
        out = connection.__dict__.get("_vispd_out")
        if out is None or connection.__dict__.get("_vispd_out_io") is not connection.io:
            # this socket's own queue (the helper may write before ExaBGP first reads from it)
            out = connection._vispd_out = bytearray()
            connection._vispd_out_io, connection._vispd_stalled = connection.io, False
            hold = int(negotiated.holdtime or 0)
            connection._vispd_send_hold = 2.0 * hold if hold else SEND_HOLD_DEFAULT_S
        if not out:
            connection._vispd_moved = time.monotonic()   # the send hold timer runs from here
        out += base64.b64decode(payload)
        try:
            drain_output(connection)
        except NetworkError as exc:   # closed: the peer's next turn finds it so and ends the session
            text = f"vispd: the session with {address}: {exc}"
            log.error(lambda: text, "vispd")
    if reactor.processes._ack.get(service, False) and int(commands) > 0:
        reactor.processes.write(service, "\n".join(["done"] * int(commands)))


def api_process(self, reactor, service, command):
    """API.process: our pre-encoded UPDATEs, else ExaBGP's command."""
    if command.startswith(SEND_PREFIX):
        send_encoded(reactor, service, command)
        return True
    return _ORIGINAL_API_PROCESS(self, reactor, service, command)


def install() -> None:
    """check(), then patch ExaBGP's classes (once)."""
    check()
    Connection.reader = reader
    Connection.writer = writer
    Protocol.read_message = read_message
    API.process = api_process
    os.environ[HOOK_ENV] = "1"   # ExaBGP's helper, started from here, knows it may send pre-encoded UPDATEs
