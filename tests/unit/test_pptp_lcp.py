"""LCP negotiation between two of our automata and against hand-made peers: options,
authentication protocol fallback, rejects, magic-number loops, echo keepalive, terminate,
retransmission and its limit, and the packet/option codecs of the shared automaton."""
from __future__ import annotations

import struct

from access.pptp import fsm, lcp


def wire(a: fsm.Automaton, b: fsm.Automaton, now: float = 0.0, rounds: int = 20) -> None:
    """Deliver packets both ways until both are quiet."""
    for _ in range(rounds):
        moved = False
        for src, dst in ((a, b), (b, a)):
            packets, src.out[:] = list(src.out), []
            for _, packet in packets:
                dst.receive(packet, now)
                moved = True
        if not moved:
            return


def opts(packet: bytes) -> list[fsm.Option]:
    code, ident, data = fsm.unpack_packet(packet)
    return fsm.unpack_options(data)


def test_codecs_round_trip_and_reject_malformed():
    options = [(1, b"\x05\xdc"), (7, b""), (3, b"\xc2\x23\x81")]
    assert fsm.unpack_options(fsm.pack_options(options)) == options
    assert fsm.unpack_options(b"\x01\x05\x00") is None     # runs past the end
    assert fsm.unpack_options(b"\x01\x01") is None         # length below 2
    packet = fsm.pack_packet(fsm.CONF_REQ, 300, b"xy") + b"padding"
    assert fsm.unpack_packet(packet) == (fsm.CONF_REQ, 300 & 0xFF, b"xy")
    assert fsm.unpack_packet(b"\x01\x01\x00\x09abc") is None


def test_server_and_client_open_with_mschapv2():
    server = lcp.Lcp(mru=1400, auth_offer=["mschapv2", "chap-md5"], magic=1)
    client = lcp.Lcp(mru=1400, auth_accept=["mschapv2", "chap-md5"], magic=2)
    server.open(0.0)
    client.open(0.0)
    wire(server, client)
    assert server.state == client.state == fsm.OPENED
    assert server.auth == client.auth == "mschapv2"
    assert client.peer_mru == server.peer_mru == 1400
    assert client.send_accm == server.send_accm == 0
    assert (server.peer_magic, client.peer_magic) == (2, 1)
    assert ("up", "LCP") in server.events and ("up", "LCP") in client.events


def test_authenticator_falls_back_to_what_the_peer_naks_with():
    server = lcp.Lcp(auth_offer=["mschapv2", "chap-md5"], magic=1)
    client = lcp.Lcp(auth_accept=["chap-md5"], magic=2)
    server.open(0.0)
    client.open(0.0)
    wire(server, client)
    assert server.state == client.state == fsm.OPENED
    assert server.auth == client.auth == "chap-md5"


def test_no_common_authentication_terminates():
    server = lcp.Lcp(auth_offer=["mschapv2"], magic=1)
    client = lcp.Lcp(auth_accept=["chap-md5"], magic=2)
    server.open(0.0)
    client.open(0.0)
    wire(server, client)
    assert server.state in (fsm.CLOSING, fsm.FINISHED)
    assert "no common authentication" in server.finish_reason


def test_peer_that_rejects_authentication_is_refused():
    server = lcp.Lcp(auth_offer=["mschapv2"], magic=1)
    server.open(0.0)
    request = server.out.pop()[1]
    auth_option = [o for o in opts(request) if o[0] == lcp.AUTH]
    server.receive(fsm.pack_packet(fsm.CONF_REJ, request[1], fsm.pack_options(auth_option)), 0.0)
    assert server.state == fsm.CLOSING and "refuses to authenticate" in server.finish_reason


def test_unknown_options_are_rejected_and_known_ones_acked():
    client = lcp.Lcp(auth_accept=["mschapv2"], magic=2)
    client.open(0.0)
    client.out.clear()
    request = [(lcp.MRU, struct.pack("!H", 1500)), (lcp.PFC, b""), (lcp.ACFC, b""),
               (13, b"\x06"), (17, b"\x05\xdc")]  # callback and multilink MRRU: no
    client.receive(fsm.pack_packet(fsm.CONF_REQ, 9, fsm.pack_options(request)), 0.0)
    code, ident, data = fsm.unpack_packet(client.out.pop()[1])
    assert (code, ident) == (fsm.CONF_REJ, 9)
    assert fsm.unpack_options(data) == [(13, b"\x06"), (17, b"\x05\xdc")]
    client.receive(fsm.pack_packet(fsm.CONF_REQ, 10, fsm.pack_options(request[:3])), 0.0)
    assert fsm.unpack_packet(client.out.pop()[1])[0] == fsm.CONF_ACK


def test_pap_or_unknown_auth_is_naked_with_our_choice():
    client = lcp.Lcp(auth_accept=["chap-md5", "mschapv2"], magic=2)
    client.open(0.0)
    client.out.clear()
    client.receive(fsm.pack_packet(fsm.CONF_REQ, 4, fsm.pack_options([(lcp.AUTH, b"\xc0\x23")])), 0.0)
    code, _, data = fsm.unpack_packet(client.out.pop()[1])
    assert code == fsm.CONF_NAK and fsm.unpack_options(data) == [(lcp.AUTH, b"\xc2\x23\x05")]


def test_looped_back_magic_number_is_naked():
    ours = lcp.Lcp(magic=0x1234)
    ours.open(0.0)
    ours.out.clear()
    ours.receive(fsm.pack_packet(fsm.CONF_REQ, 1, fsm.pack_options(
        [(lcp.MAGIC, struct.pack("!I", 0x1234))])), 0.0)
    code, _, data = fsm.unpack_packet(ours.out.pop()[1])
    assert code == fsm.CONF_NAK and fsm.unpack_options(data)[0][0] == lcp.MAGIC
    assert fsm.unpack_options(data)[0][1] != struct.pack("!I", 0x1234)


def opened_pair(**kwargs):
    a = lcp.Lcp(magic=1, **kwargs)
    b = lcp.Lcp(magic=2, **kwargs)
    a.open(0.0)
    b.open(0.0)
    wire(a, b)
    assert a.state == b.state == fsm.OPENED
    return a, b


def test_echo_request_is_answered_and_keeps_the_link():
    a, b = opened_pair(echo_interval=5.0, echo_failures=2)
    for second in range(5, 60, 5):
        a.tick(float(second))
        b.tick(float(second))
        wire(a, b, float(second))
    assert a.state == b.state == fsm.OPENED


def test_silent_peer_fails_the_echo_keepalive():
    a, _ = opened_pair(echo_interval=5.0, echo_failures=2)
    for second in range(5, 40, 5):
        a.tick(float(second))
    assert a.state in (fsm.CLOSING, fsm.FINISHED)
    assert "did not answer" in a.finish_reason


def test_terminate_request_finishes_both():
    a, b = opened_pair()
    a.close(1.0, "bye")
    wire(a, b, 1.0)
    assert a.state == b.state == fsm.FINISHED
    assert b.finish_reason == "peer terminated: bye"
    assert ("down", "LCP") in b.events


def test_unanswered_requests_give_up_after_max_configure():
    a = lcp.Lcp(magic=1, restart=1.0, max_configure=3)
    a.open(0.0)
    for second in range(1, 6):
        a.tick(float(second))
    assert len([p for p in a.out if p[1][0] == fsm.CONF_REQ]) == 3
    assert a.state == fsm.FINISHED and "no answer" in a.finish_reason


def test_unknown_code_gets_code_reject_and_protocol_reject_is_reported():
    a, b = opened_pair()
    a.receive(fsm.pack_packet(42, 7, b"??"), 0.0)
    code, _, data = fsm.unpack_packet(a.out.pop()[1])
    assert code == fsm.CODE_REJ and data[:1] == b"\x2a"
    a.reject_protocol(0x80FD, b"\x01\x01\x00\x04")
    packet = a.out.pop()[1]
    b.receive(packet, 0.0)
    assert ("protocol-rejected", 0x80FD) in b.events
