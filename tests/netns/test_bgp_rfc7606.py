"""RFC 7606 through the real thing: a test-made BGP peer (a raw TCP socket, in its own
namespace) sends crafted UPDATEs to ExaBGP + vispd's helper started as vispd starts them
(bgp.exabgp_launch with the hook: ExaBGP no longer decodes UPDATEs, bgp/wire.py does).

A good UPDATE is installed; a malformed ORIGIN withdraws the prefixes it announces
(treat-as-withdraw) and the session stays up; a malformed AGGREGATOR is discarded and its
routes kept; an NLRI with a /33 resets the session: ExaBGP sends an UPDATE Message Error
NOTIFICATION (3, 10) and the helper's routes leave the FIB. Namespaces hnwire-*."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from test_bgp_speaker import Lab, neighbor, wait_until

pytestmark = pytest.mark.root

PEER_AS = 65101

# The peer: listens on its address, answers the speaker's OPEN, then sends what it is told
# (a hex UPDATE body per line on stdin); prints what it receives (type, and a NOTIFICATION's codes).
PEER_PROGRAM = r"""
import socket, struct, sys, json, threading
address, asn = sys.argv[1], int(sys.argv[2])
def message(kind, body=b""):
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), kind) + body
caps = bytes([1, 4, 0, 1, 0, 1]) + bytes([65, 4]) + struct.pack("!I", asn) + bytes([2, 0])
opt = bytes([2, len(caps)]) + caps
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((address, 179))
listener.listen(1)
print(json.dumps({"listening": True}), flush=True)
conn, _ = listener.accept()
conn.sendall(message(1, struct.pack("!BHH4sB", 4, asn, 9, socket.inet_aton(address), len(opt)) + opt))
def reader():
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            print(json.dumps({"closed": True}), flush=True)
            return
        data += chunk
        while len(data) >= 19 and len(data) >= struct.unpack("!H", data[16:18])[0]:
            length = struct.unpack("!H", data[16:18])[0]
            kind, body = data[18], data[19:length]
            data = data[length:]
            if kind == 1:
                conn.sendall(message(4))
            print(json.dumps({"type": kind, "codes": list(body[:2]) if kind == 3 else None}), flush=True)
threading.Thread(target=reader, daemon=True).start()
for line in sys.stdin:
    conn.sendall(message(4) + message(2, bytes.fromhex(line.strip())))
"""


def attr(flags: int, code: int, value: bytes) -> bytes:
    return bytes([flags, code, len(value)]) + value


def prefix(text: str) -> bytes:
    address, length = text.split("/")
    return bytes([int(length)]) + bytes(int(x) for x in address.split("."))[:(int(length) + 7) // 8]


def update(attributes: bytes, nlri: bytes) -> str:
    return (struct_pack_h(0) + struct_pack_h(len(attributes)) + attributes + nlri).hex()


def struct_pack_h(value: int) -> bytes:
    return value.to_bytes(2, "big")


def good_attributes(next_hop: str) -> bytes:
    return (attr(0x40, 1, b"\0") + attr(0x40, 2, bytes([2, 1]) + PEER_AS.to_bytes(4, "big"))
            + attr(0x40, 3, bytes(int(x) for x in next_hop.split("."))))


class WireLab(Lab):
    NS_PREFIX = "hnwire"


@pytest.fixture
def lab():
    directory = tempfile.mkdtemp(prefix="hnwire-")
    os.chmod(directory, 0o755)
    made = WireLab(directory)
    try:
        yield made
    finally:
        made.close()
        shutil.rmtree(directory, ignore_errors=True)


def test_crafted_updates_get_rfc7606_answers_from_the_real_speaker(lab):
    ns, provider, ours = lab.provider_link()
    peer = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", PEER_PROGRAM, provider, str(PEER_AS)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lab.processes.append(peer)
    assert json.loads(peer.stdout.readline()) == {"listening": True}
    config = lab.speaker([neighbor("crafted", provider, ours, PEER_AS)],
                         [{"prefix": "198.18.0.0/22", "prepend": 0, "communities": []}])
    seen = []

    def saw(kind: int):
        while True:
            event = json.loads(peer.stdout.readline())
            seen.append(event)
            if event.get("type") == kind or event.get("closed"):
                return event

    saw(4)   # the speaker's KEEPALIVE: Established on its side once ours arrives

    def send(hex_body: str) -> None:
        peer.stdin.write(hex_body + "\n")
        peer.stdin.flush()

    good = good_attributes(provider)
    send(update(good, prefix("10.1.0.0/24") + prefix("10.2.0.0/24") + prefix("10.3.0.0/24")))
    wait_until(lambda: set(lab.fib()) == {"10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"}, 10, what="3 routes")

    # treat-as-withdraw: ORIGIN 7 on an UPDATE re-announcing 10.2/24 and 10.3/24
    send(update(attr(0x40, 1, b"\x07") + good[4:], prefix("10.2.0.0/24") + prefix("10.3.0.0/24")))
    wait_until(lambda: set(lab.fib()) == {"10.1.0.0/24"}, 10, what="10.2 and 10.3 withdrawn")

    # attribute discard: an AGGREGATOR of 5 octets; the route is kept
    send(update(good + attr(0xC0, 7, bytes(5)), prefix("10.4.0.0/24")))
    wait_until(lambda: set(lab.fib()) == {"10.1.0.0/24", "10.4.0.0/24"}, 10, what="10.4 installed")
    status = wait_until(lambda: (lambda s: s if s.get("wire", {}).get("rfc7606", 0) >= 2 else None)(lab.status(config)),
                        10, what="the status counting both RFC 7606 actions")
    assert status["neighbors"]["crafted"]["state"] == "up" and status["wire"]["errors"] == 0
    with open(config["log_file"]) as handle:
        log = handle.read()
    assert "treat-as-withdraw: ORIGIN 7" in log and "AGGREGATOR of length 5 discarded" in log

    # session reset: a prefix length of 33
    send(update(good, bytes([33, 10, 5, 0, 0, 0])))
    notification = saw(3)
    assert notification["codes"] == [3, 10], seen
    wait_until(lambda: lab.fib() == {}, 10, what="the FIB emptied after the reset")
