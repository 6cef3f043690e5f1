"""Whole PPP links in memory: a server session and a client session exchanging HDLC bytes
through our decoder, from LCP to IP, with both CHAP methods, a wrong password, lost
frames, compressed headers, protocols we do not speak, a dead peer and a clean close.
Also the engine's reading of pptpd's arguments."""
from __future__ import annotations

import pytest

from access.pptp import engine, fsm, hdlc, session

USERS = {"bob": "s3cret", "carol": "pw2"}


def link(server: session.Session, client: session.Session, until: float = 60.0, drop=None,
         stop=lambda s, c: s.phase == c.phase == session.RUNNING) -> float:
    """Run both sessions on a virtual clock; `drop(direction, n, frame)` loses a frame."""
    decoders = {"s": hdlc.Decoder(), "c": hdlc.Decoder()}
    counts = {"s": 0, "c": 0}
    now = 0.0
    server.start(now)
    client.start(now)
    while now <= until:
        moved = False
        for name, src, dst in (("s", server, client), ("c", client, server)):
            data = src.take_wire()
            for frame in decoders[name].feed(data):
                counts[name] += 1
                moved = True
                if drop is None or not drop(name, counts[name], frame):
                    dst.receive(frame, now)
        if stop(server, client) or (server.phase == client.phase == session.DEAD):
            return now
        if not moved:
            deadlines = [d for d in (server.deadline(), client.deadline()) if d is not None]
            if not deadlines:
                return now
            now = max(now, min(deadlines))
            server.tick(now)
            client.tick(now)
    return now


def pair(methods_server=None, methods_client=None, user="bob", password="s3cret", **kwargs):
    server = session.Session("server", methods=methods_server, lookup=USERS.get, local="198.18.2.1",
                             assign="198.18.2.9", **kwargs)
    client = session.Session("client", methods=methods_client, user=user, password=password, **kwargs)
    return server, client


@pytest.mark.parametrize("method", ["mschapv2", "chap-md5"])
def test_link_comes_up(method):
    server, client = pair([method], [method], mru=1400)
    assert link(server, client) == 0.0  # no retransmission needed
    ups = [e for e in client.events if e[0] == "up"]
    assert ups == [("up", "198.18.2.9", "198.18.2.1", 1400, "bob")]
    assert [e for e in server.events if e[0] == "up"] == [("up", "198.18.2.1", "198.18.2.9", 1400, "bob")]
    assert ("lcp-up", method) in server.events
    assert server.authenticated_user == "bob"


def test_ip_packets_cross_the_link_in_both_directions():
    server, client = pair()
    link(server, client)
    packet = bytes.fromhex("4500001c000100004001f8e6c6120209c6120101") + b"\x08\x00\xf7\xff\x00\x00\x00\x00"
    for frame in hdlc.Decoder().feed(client.encode_ip(packet)):
        server.receive(frame, 1.0)
    assert server.ip_in == [packet]
    # a peer using ACFC and PFC: no address/control, one-octet protocol
    compressed = hdlc.encode_frame(b"\x21" + packet)
    for frame in hdlc.Decoder().feed(compressed):
        client.receive(frame, 1.0)
    assert client.ip_in == [packet]


def test_ip_before_the_link_is_up_is_dropped():
    server, _ = pair()
    server.start(0.0)
    server.receive(session.IP_HEADER + b"E" * 20, 0.0)
    assert server.ip_in == []


def test_wrong_password_is_refused_and_the_client_says_why():
    server, client = pair(password="guess")
    link(server, client)
    assert client.result[0] == session.EXIT_AUTH
    assert "authentication failed" in client.result[1]
    assert server.result == (session.EXIT_AUTH, "authentication failed for 'bob': wrong password")
    assert client.phase == server.phase == session.DEAD


def test_unknown_user_is_refused():
    server, client = pair(user="mallory", password="x")
    link(server, client)
    assert server.result[0] == client.result[0] == session.EXIT_AUTH
    assert "unknown user" in server.result[1]


def test_lost_frames_are_recovered_by_retransmission():
    lost = {("s", 1), ("c", 2), ("s", 4), ("c", 5)}
    server, client = pair(restart=1.0)
    took = link(server, client, drop=lambda d, n, f: (d, n) in lost)
    assert server.phase == client.phase == session.RUNNING and took >= 1.0


def test_unknown_protocols_get_protocol_reject():
    server, client = pair()
    link(server, client)
    ccp = session.HEADER + b"\x80\xfd" + fsm.pack_packet(fsm.CONF_REQ, 1, b"\x12\x06\x01\x00\x00\x40")
    server.receive(ccp, 1.0)
    frames = hdlc.Decoder().feed(server.take_wire())
    assert len(frames) == 1
    protocol, info = session.split_frame(frames[0])
    code, _, data = fsm.unpack_packet(info)
    assert protocol == 0xC021 and code == fsm.PROTO_REJ and data[:2] == b"\x80\xfd"


def test_clean_close_from_the_client():
    server, client = pair()
    link(server, client)
    client.close(2.0, "engine stopped")
    decoders = [hdlc.Decoder(), hdlc.Decoder()]
    for now in (2.0, 2.0, 2.0, 3.0, 4.0):
        for frame in decoders[0].feed(client.take_wire()):
            server.receive(frame, now)
        for frame in decoders[1].feed(server.take_wire()):
            client.receive(frame, now)
        client.tick(now)
        server.tick(now)
    assert client.result == (session.EXIT_OK, "engine stopped")
    assert server.phase == client.phase == session.DEAD
    assert server.result[0] == session.EXIT_OK and "peer terminated" in server.result[1]


def test_dead_peer_is_detected_by_echo():
    server, client = pair(echo_interval=2.0, echo_failures=2)
    link(server, client)
    now = 0.0
    while server.phase != session.DEAD and now < 30:
        now = server.deadline()
        server.tick(now)
        server.take_wire()  # nobody answers
    assert server.phase == session.DEAD and "did not answer" in server.result[1]


def test_client_without_challenge_times_out():
    server, client = pair(auth_timeout=5.0)
    # the server's CHAP never reaches the client
    link(server, client, drop=lambda d, n, frame: d == "s" and frame[2:4] == b"\xc2\x23",
         until=30.0, stop=lambda s, c: c.phase == session.DEAD)
    assert client.result[0] == session.EXIT_AUTH


def test_parse_pppd_arguments_from_pptpd():
    args = ["local", "file", "/run/x/options.pptp", "115200", "198.18.2.1:198.18.2.5",
            "ipparam", "100.64.0.6", "remotenumber", "100.64.0.6"]
    parsed = engine.parse_pppd_args(args)
    assert parsed == {"file": "/run/x/options.pptp", "local": "198.18.2.1", "remote": "198.18.2.5",
                      "ipparam": "100.64.0.6", "remotenumber": "100.64.0.6"}
    assert engine.parse_pppd_args([":198.18.2.5"])["remote"] == "198.18.2.5"


def test_links_come_up_through_heavy_random_loss():
    import random

    for seed in range(100):
        rng = random.Random(seed)
        server, client = pair(restart=1.0)
        link(server, client, drop=lambda d, n, frame: rng.random() < 0.15, until=300.0)
        assert server.phase == client.phase == session.RUNNING, (seed, server.result, client.result)
        assert client.events[-1][:3] == ("up", "198.18.2.9", "198.18.2.1")
