"""MS-CHAPv2 against RFC 2759's test vectors, CHAP-MD5 against RFC 1994's definition, and
the CHAP exchange between our authenticator and peer (success, wrong password, unknown
user, retransmissions, a server that cannot prove it knows the password)."""
from __future__ import annotations

import hashlib
import itertools

import pytest

from access.pptp import auth, mschap

# RFC 2759 section 9.2
USER, PASSWORD = "User", "clientPass"
AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")


def test_rfc2759_vectors():
    assert mschap.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, USER) == bytes.fromhex("D02E4386BCE91226")
    password_hash = mschap.nt_password_hash(PASSWORD)
    assert password_hash == bytes.fromhex("44EBBA8D5312B8D611474411F56989AE")
    nt_response = mschap.generate_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, USER, PASSWORD)
    assert nt_response == bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
    assert mschap.md4(password_hash) == bytes.fromhex("41C00C584BD2D91C4017A2A12FA59F3F")
    assert mschap.generate_authenticator_response(
        PASSWORD, nt_response, PEER_CHALLENGE, AUTH_CHALLENGE, USER) == \
        "S=407A5589115FD0D6209F510FE9C04566932CDA56"


def test_md4_known_answers():
    # RFC 1320 appendix A.5
    assert mschap.md4(b"").hex() == "31d6cfe0d16ae931b73c59d7e0c089c0"
    assert mschap.md4(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"


def test_des_key_spreads_56_bits():
    assert mschap._des_key(bytes(7)) == bytes(8)
    assert mschap._des_key(b"\xff" * 7) == b"\xfe" * 8


def test_chap_md5_is_md5_of_id_secret_challenge():
    challenge = bytes(range(16))
    expected = hashlib.md5(b"\x07" + b"secret" + challenge).digest()
    assert mschap.chap_md5_response(7, "secret", challenge) == expected
    assert mschap.chap_md5_response(0x107, "secret", challenge) == expected  # one octet


def test_strip_domain():
    assert mschap.strip_domain("CORP\\bob") == "bob"
    assert mschap.strip_domain("bob") == "bob"


def counter_bytes():
    counter = itertools.count(1)
    return lambda n: bytes((next(counter) + i) & 0xFF for i in range(n))


def exchange(method, users, name, password, drop_first_response=False):
    server = auth.Authenticator(method, users.get, random_bytes=counter_bytes())
    peer = auth.Peer(method, name, password, random_bytes=counter_bytes())
    server.start(0.0)
    now, dropped = 0.0, False
    for _ in range(50):
        for _, packet in server.out:
            peer.receive(packet, now)
        server.out.clear()
        for _, packet in peer.out:
            if drop_first_response and not dropped:
                dropped = True
                continue
            server.receive(packet, now)
        peer.out.clear()
        if server.done and peer.done:
            break
        now += 1.0
        server.tick(now)
    return server, peer


@pytest.mark.parametrize("method", auth.METHODS)
def test_exchange_succeeds(method):
    server, peer = exchange(method, {"bob": "s3cret"}, "bob", "s3cret")
    assert server.events == [("auth-ok", "bob")]
    assert peer.events == [("auth-ok", "bob")]


@pytest.mark.parametrize("method", auth.METHODS)
def test_wrong_password_fails_on_both_sides(method):
    server, peer = exchange(method, {"bob": "s3cret"}, "bob", "guess")
    assert server.events == [("auth-failed", "bob", "wrong password")]
    assert peer.events[0][0] == "auth-failed" and "server refused" in peer.events[0][2]


def test_unknown_user_and_domain_prefix():
    server, _ = exchange(auth.MSCHAPV2, {"bob": "s3cret"}, "mallory", "x")
    assert server.events == [("auth-failed", "mallory", "unknown user")]
    server, peer = exchange(auth.MSCHAPV2, {"bob": "s3cret"}, "CORP\\bob", "s3cret")
    assert server.events == [("auth-ok", "bob")] and peer.events == [("auth-ok", "CORP\\bob")]


def test_lost_response_is_recovered_by_challenge_retransmission():
    server, peer = exchange(auth.MSCHAPV2, {"bob": "s3cret"}, "bob", "s3cret", drop_first_response=True)
    assert server.events == [("auth-ok", "bob")] and peer.events == [("auth-ok", "bob")]


def test_retransmitted_response_gets_the_same_answer():
    server = auth.Authenticator(auth.CHAP_MD5, {"bob": "pw"}.get)
    peer = auth.Peer(auth.CHAP_MD5, "bob", "pw")
    server.start(0.0)
    peer.receive(server.out.pop()[1], 0.0)
    response = peer.out.pop()[1]
    server.receive(response, 0.0)
    first = server.out.pop()[1]
    server.receive(response, 0.5)
    assert server.out.pop()[1] == first and server.events == [("auth-ok", "bob")]


def test_no_response_fails_after_the_retries():
    server = auth.Authenticator(auth.MSCHAPV2, {}.get, restart=1.0, max_challenges=3)
    server.start(0.0)
    for second in range(1, 5):
        server.tick(float(second))
    assert len(server.out) == 3
    assert server.events == [("auth-failed", None, "no response to the CHAP challenge")]


def test_peer_rejects_a_server_that_does_not_know_the_password():
    server = auth.Authenticator(auth.MSCHAPV2, {"bob": "other"}.get)
    peer = auth.Peer(auth.MSCHAPV2, "bob", "s3cret")
    server.start(0.0)
    peer.receive(server.out.pop()[1], 0.0)
    response = peer.out.pop()[1]
    ident = response[1]
    forged = b"S=" + b"0" * 40 + b" M=ok"
    peer.receive(auth.pack(auth.SUCCESS, ident, forged), 0.0)
    assert peer.events[0][0] == "auth-failed" and "authenticator response" in peer.events[0][2]


def test_unknown_method_is_refused():
    with pytest.raises(ValueError):
        auth.Peer("pap", "bob", "pw")
