"""bgp/exabgp_hook.py and bgp/exabgp_launch.py: the pin on ExaBGP 5.0.15's internals (an
ExaBGP whose patched code moved fails here, and the launcher refuses to start it), and the
buffered reader's framing on a real socket pair."""
from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from bgp import exabgp_hook, exabgp_launch
from exabgp.bgp.message import Notify


def test_installed_exabgp_is_the_one_the_hook_was_written_for():
    # fails when ExaBGP is upgraded or its reader, read_message, main loop or hold timer moved:
    # re-read them, adapt the hook, then update RELIED_ON
    assert exabgp_hook.source_digests() == exabgp_hook.RELIED_ON
    exabgp_hook.check()


def test_another_version_is_refused(monkeypatch):
    monkeypatch.setattr(exabgp_hook.exabgp_version, "release", "5.0.16")
    with pytest.raises(exabgp_hook.HookRefused, match="5.0.16"):
        exabgp_hook.check()


def test_moved_internals_are_refused(monkeypatch):
    monkeypatch.setitem(exabgp_hook.RELIED_ON, "Peer._main", "0" * 64)
    with pytest.raises(exabgp_hook.HookRefused, match="Peer._main"):
        exabgp_hook.check()


def test_launcher_refuses_to_start_exabgp(monkeypatch, capsys):
    monkeypatch.setattr(exabgp_hook.exabgp_version, "release", "4.2.25")
    started = []
    monkeypatch.setattr("exabgp.application.main.main", lambda: started.append(1))
    assert exabgp_launch.main(["server", "/nonexistent.conf"]) == exabgp_launch.EXIT_REFUSED
    assert started == [] and "not starting ExaBGP" in capsys.readouterr().err


class _Connection:
    """What the reader and ExaBGP's writer use of its Connection."""

    def __init__(self, io):
        self.io, self.msg_size, self.closed = io, 4096, False
        self.peer, self.defensive = "peer", False

    def reading(self):
        return True

    def writing(self):
        return True

    def session(self):
        return "test"

    def name(self):
        return "test"

    def close(self):
        self.closed = True
        self.io = None


def message(kind: int, body: bytes = b"") -> bytes:
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), kind) + body


UPDATE_BODY = struct.pack("!HH", 0, 0)        # an End-of-RIB
BAD_UPDATE_BODY = struct.pack("!HH", 0, 0) + bytes([33, 1, 2, 3, 4, 5])   # prefix length 33


def _first(generator):
    for item in generator:
        if item[0]:
            return item
    return None


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield _Connection(ours), theirs
    ours.close()
    theirs.close()


def test_reader_serves_messages_from_one_read(pair):
    connection, peer = pair
    peer.sendall(message(4) + message(2, UPDATE_BODY) + message(4))
    assert _first(exabgp_hook.reader(connection))[:2] == (19, 4)
    length, kind, _header, body, error = _first(exabgp_hook.reader(connection))
    assert (length, kind, body, error) == (23, 2, UPDATE_BODY, None)
    assert _first(exabgp_hook.reader(connection))[:2] == (19, 4)


def test_reader_leaves_updates_for_the_bulk_path(pair):
    connection, peer = pair
    connection._vispd_bulk = True
    peer.sendall(message(2, UPDATE_BODY) * 3 + message(4))
    assert list(exabgp_hook.reader(connection)) == [(0, 0, b"", b"", None)]
    buffer = exabgp_hook._buffer(connection)
    assert exabgp_hook._take_updates(connection, buffer, False) == message(2, UPDATE_BODY) * 3
    assert _first(exabgp_hook.reader(connection))[:2] == (19, 4)   # the KEEPALIVE stays ExaBGP's


def test_a_run_stops_before_a_malformed_update_which_resets_the_session(pair):
    connection, peer = pair
    peer.sendall(message(2, UPDATE_BODY) + message(2, BAD_UPDATE_BODY))
    buffer = exabgp_hook._buffer(connection)
    exabgp_hook._fill(connection, buffer)
    assert exabgp_hook._take_updates(connection, buffer, False) == message(2, UPDATE_BODY)
    with pytest.raises(Notify) as caught:
        exabgp_hook._take_updates(connection, buffer, False)
    assert (caught.value.code, caught.value.subcode) == (3, 10)


def test_reader_reports_a_bad_marker(pair):
    connection, peer = pair
    peer.sendall(b"\0" * 16 + struct.pack("!HB", 19, 4))
    _length, _kind, _header, _body, error = next(i for i in exabgp_hook.reader(connection) if i[4])
    assert (error.code, error.subcode) == (1, 1)


def _drain(sock) -> bytes:
    sock.setblocking(False)
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


class _QuietLog:
    def __getattr__(self, _name):
        return lambda *args, **kwargs: None


def test_queued_updates_never_split_one_of_exabgps_messages(pair, monkeypatch):
    monkeypatch.setattr("exabgp.reactor.network.connection.log", _QuietLog())   # set up by ExaBGP's main only
    connection, peer = pair
    ours = message(2, UPDATE_BODY)
    connection._vispd_out = bytearray(ours)
    connection._vispd_writing = True          # ExaBGP is half-way through a message of its own
    exabgp_hook.flush_output(connection)
    assert _drain(peer) == b"" and connection._vispd_out == bytearray(ours)
    connection._vispd_writing = False
    theirs = message(4)
    assert all(step is not False for step in exabgp_hook.writer(connection, theirs))   # ours first, whole
    assert _drain(peer) == ours + theirs
    assert connection._vispd_writing is False and not connection._vispd_out


def test_a_route_refresh_waits_for_read_message_to_tell_the_helper(pair):
    connection, peer = pair
    connection._vispd_bulk = True
    peer.sendall(message(5, bytes([0, 1, 0, 1])))
    assert list(exabgp_hook.reader(connection)) == [(0, 0, b"", b"", None)]   # left in the buffer
    connection._vispd_told = True                                              # read_message told it
    length, kind, _header, body, _error = _first(exabgp_hook.reader(connection))
    assert (length, kind, body) == (23, 5, bytes([0, 1, 0, 1])) and connection._vispd_told is False


def test_what_the_helper_queued_before_exabgp_first_reads_is_kept(pair):
    connection, _peer = pair
    connection._vispd_out = bytearray(b"queued")      # send_encoded ran before any read on this socket
    connection._vispd_out_io = connection.io
    exabgp_hook._buffer(connection)                    # the first read sets the socket's read state up
    assert connection._vispd_out == bytearray(b"queued")


def test_what_the_socket_did_not_take_at_once_goes_out_while_the_peer_reads(pair):
    """ExaBGP polls a session for reading only: bytes queued for a slice that the socket did
    not take at once must not wait for the slice's next message. drain_output keeps sending
    while the peer reads (here a thread that starts reading after 50 ms)."""
    connection, peer = pair
    connection.io.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    payload = message(2, UPDATE_BODY) * 40000            # ~900 KB: far more than the socket holds
    connection._vispd_out = bytearray(payload)
    exabgp_hook.flush_output(connection)
    assert connection._vispd_out                         # one send could not take it all
    received = bytearray()

    def read() -> None:
        time.sleep(0.05)
        peer.settimeout(2)
        while len(received) < len(payload):
            chunk = peer.recv(1 << 16)
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    exabgp_hook.drain_output(connection, within=5.0, stall=1.0)   # the peer starts reading within 50 ms
    reader.join(timeout=5)
    assert not connection._vispd_out and bytes(received) == payload


def _stuffed(connection) -> None:
    """More queued for the peer than its socket takes."""
    connection.io.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    connection._vispd_out = bytearray(message(2, UPDATE_BODY) * 40000)
    connection._vispd_moved = time.monotonic()


def test_a_peer_that_stops_reading_keeps_the_rest_queued_and_is_waited_for_once(pair):
    """A slice whose speaker stops reading must not hold ExaBGP's loop (the providers, the
    other slices): the drain gives up after `stall` without progress, well before `within`,
    and does not wait on that peer again until it takes bytes."""
    connection, _peer = pair
    _stuffed(connection)
    started = time.monotonic()
    exabgp_hook.drain_output(connection, within=5.0, stall=0.1)
    assert 0.1 <= time.monotonic() - started < 2 and connection._vispd_out and connection._vispd_stalled
    started = time.monotonic()
    exabgp_hook.drain_output(connection, within=5.0, stall=0.1)
    assert time.monotonic() - started < 0.05 and connection._vispd_out     # not waited for again


def test_a_stalled_peer_that_reads_again_is_drained_again(pair):
    connection, peer = pair
    _stuffed(connection)
    exabgp_hook.drain_output(connection, within=5.0, stall=0.05)
    assert connection._vispd_stalled
    peer.setblocking(False)
    while True:   # the peer reads what reached it
        try:
            if not peer.recv(1 << 16):
                break
        except BlockingIOError:
            break
    exabgp_hook.flush_output(connection)   # ExaBGP's next turn of the loop
    assert connection._vispd_stalled is False


def test_the_send_hold_timer_closes_a_session_whose_peer_takes_nothing(pair):
    """RFC 9687: the queue has not moved for the send hold time: the connection is closed
    (ExaBGP's next read ends the session), the queue dropped."""
    connection, _peer = pair
    _stuffed(connection)
    exabgp_hook.flush_output(connection)
    assert not connection.closed                 # moving: the socket took its fill just now
    connection._vispd_send_hold = 0.2
    connection._vispd_moved = time.monotonic() - 0.1
    exabgp_hook.flush_output(connection)
    assert not connection.closed                 # 0.1 s of 0.2 without progress
    connection._vispd_moved = time.monotonic() - 0.3
    with pytest.raises(exabgp_hook.SendHoldExpired, match="send hold timer expired"):
        exabgp_hook.flush_output(connection)
    assert connection.closed and not connection._vispd_out


def test_a_notification_does_not_wait_behind_a_stalled_queue(pair, monkeypatch):
    """The hold timer of a slice that stopped reading and sending ends its session: the
    NOTIFICATION cannot go out behind the queue, so the connection is closed at once (a queue
    that moves is still sent first, as above)."""
    monkeypatch.setattr("exabgp.reactor.network.connection.log", _QuietLog())
    connection, _peer = pair
    _stuffed(connection)
    exabgp_hook.drain_output(connection, within=5.0, stall=0.05)
    assert connection._vispd_stalled
    with pytest.raises(exabgp_hook.LostConnection, match="without the NOTIFICATION"):
        for _ in exabgp_hook.writer(connection, message(3, bytes([4, 0]))):
            pass
    assert connection.closed and not connection._vispd_out
