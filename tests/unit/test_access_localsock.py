"""The local socket relay's pure parts (access.localsock): address split of the /30, the
anti-spoofing packet check, config validation and the daemon spec."""
from __future__ import annotations

import json
import socket
import struct

import pytest

from access import localsock
from access.spec import DaemonSpec

PROGRAM = socket.inet_aton("10.1.0.254")


def ipv4(src: str, dst: str = "10.1.0.1", payload: bytes = b"x" * 8, total: int | None = None,
         version_ihl: int = 0x45) -> bytes:
    length = total if total is not None else 20 + len(payload)
    return struct.pack("!BBHHHBBH4s4s", version_ihl, 0, length, 1, 0, 64, 17, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + payload


def test_addresses_of_a_30():
    assert localsock.addresses("10.1.0.252/30") == ("10.1.0.253", "10.1.0.254", 30)
    with pytest.raises(ValueError):
        localsock.addresses("10.1.0.252/32")


def test_a_packet_from_the_program_address_passes():
    assert localsock.check_packet(ipv4("10.1.0.254"), PROGRAM) is None


@pytest.mark.parametrize("packet,reason", [
    (ipv4("10.1.0.253"), "spoofed-source"),          # the relay's own address
    (ipv4("10.2.0.254"), "spoofed-source"),          # another slice's address
    (b"\x45" + b"\0" * 10, "short"),
    (b"\x60" + b"\0" * 39, "not-ipv4"),              # IPv6
    (ipv4("10.1.0.254", version_ihl=0x44), "bad-header-length"),
    (ipv4("10.1.0.254", version_ihl=0x4F), "bad-header-length"),
    (ipv4("10.1.0.254", total=100), "bad-total-length"),
])
def test_bad_or_spoofed_packets_are_rejected(packet, reason):
    assert localsock.check_packet(packet, PROGRAM) == reason


def test_config_validation_and_defaults():
    base = {"socket": "/s", "uid": 60001, "gid": 60001, "tun": "ls0", "subnet": "10.1.0.252/30"}
    assert localsock.normalise(base)["mode"] == 0o600
    assert localsock.normalise({**base, "mode": "0660"})["mode"] == 0o660
    for bad in ({"mode": 0o666}, {"tun": "x" * 16}, {"subnet": "10.1.0.1/32"}):
        with pytest.raises(ValueError):
            localsock.normalise({**base, **bad})
    with pytest.raises(ValueError, match="lacks"):
        localsock.normalise({"socket": "/s"})


def test_daemon_spec():
    config = {"socket": "/var/lib/vispd/t/sock/plb.seattle", "uid": 60001, "gid": 60001, "tun": "lsock",
              "subnet": "10.1.0.252/30", "log": "/run/x/ls.log"}
    spec = localsock.daemon("localsock-plb-seattle", config, "/run/x", interpreter="/py")
    assert isinstance(spec, DaemonSpec)
    assert spec.argv == ("/py", "-m", "access.localsock", "--config", "/run/x/localsock-plb-seattle.json")
    assert json.loads(spec.files["localsock-plb-seattle.json"])["mode"] == 0o600
    assert "PYTHONPATH" in spec.env
