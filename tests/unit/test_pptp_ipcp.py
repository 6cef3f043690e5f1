"""IPCP: the server hands out the pool address and gives its own, the client takes what it
is given; DNS answered or rejected; VJ compression and unknown options rejected."""
from __future__ import annotations

import ipaddress

from access.pptp import fsm, ipcp


def ip(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def wire(a, b, rounds=20):
    for _ in range(rounds):
        moved = False
        for src, dst in ((a, b), (b, a)):
            packets, src.out[:] = list(src.out), []
            for _, packet in packets:
                dst.receive(packet, 0.0)
                moved = True
        if not moved:
            return


def test_client_gets_the_assigned_address():
    server = ipcp.Ipcp(local="198.18.2.1", assign="198.18.2.7")
    client = ipcp.Ipcp()
    server.open(0.0)
    client.open(0.0)
    wire(server, client)
    assert server.state == client.state == fsm.OPENED
    assert str(client.local) == "198.18.2.7" and str(client.peer) == "198.18.2.1"
    assert str(server.local) == "198.18.2.1" and str(server.peer) == "198.18.2.7"


def test_client_asking_for_another_address_is_naked_back_to_the_pool_one():
    server = ipcp.Ipcp(local="198.18.2.1", assign="198.18.2.7")
    server.open(0.0)
    server.out.clear()
    server.receive(fsm.pack_packet(fsm.CONF_REQ, 3, fsm.pack_options([(3, ip("10.9.9.9"))])), 0.0)
    code, ident, data = fsm.unpack_packet(server.out.pop()[1])
    assert (code, ident) == (fsm.CONF_NAK, 3) and fsm.unpack_options(data) == [(3, ip("198.18.2.7"))]


def test_dns_is_given_when_configured_and_rejected_otherwise():
    request = fsm.pack_options([(3, ip("198.18.2.7")), (129, ip("0.0.0.0")), (131, ip("0.0.0.0"))])
    with_dns = ipcp.Ipcp(local="198.18.2.1", assign="198.18.2.7", dns=["192.0.2.53"])
    with_dns.open(0.0)
    with_dns.out.clear()
    with_dns.receive(fsm.pack_packet(fsm.CONF_REQ, 1, request), 0.0)
    code, _, data = fsm.unpack_packet(with_dns.out.pop()[1])
    assert code == fsm.CONF_NAK
    assert fsm.unpack_options(data) == [(129, ip("192.0.2.53")), (131, ip("192.0.2.53"))]

    without = ipcp.Ipcp(local="198.18.2.1", assign="198.18.2.7")
    without.open(0.0)
    without.out.clear()
    without.receive(fsm.pack_packet(fsm.CONF_REQ, 1, request), 0.0)
    code, _, data = fsm.unpack_packet(without.out.pop()[1])
    assert code == fsm.CONF_REJ and [k for k, _ in fsm.unpack_options(data)] == [129, 131]


def test_vj_compression_and_unknown_options_are_rejected():
    server = ipcp.Ipcp(local="198.18.2.1", assign="198.18.2.7")
    server.open(0.0)
    server.out.clear()
    vj = (2, b"\x00\x2d\x0f\x01")
    server.receive(fsm.pack_packet(fsm.CONF_REQ, 2, fsm.pack_options([vj, (3, ip("198.18.2.7"))])), 0.0)
    code, _, data = fsm.unpack_packet(server.out.pop()[1])
    assert code == fsm.CONF_REJ and fsm.unpack_options(data) == [vj]


def test_client_gives_up_when_offered_no_address():
    client = ipcp.Ipcp()
    client.open(0.0)
    request = client.out.pop()[1]
    client.receive(fsm.pack_packet(fsm.CONF_NAK, request[1], fsm.pack_options([(3, ip("0.0.0.0"))])), 0.0)
    assert client.state == fsm.CLOSING and "no address" in client.finish_reason
    rejecting = ipcp.Ipcp()
    rejecting.open(0.0)
    request = rejecting.out.pop()[1]
    rejecting.receive(fsm.pack_packet(fsm.CONF_REJ, request[1], fsm.pack_options([(3, ip("0.0.0.0"))])), 0.0)
    assert rejecting.state == fsm.CLOSING
