"""UPDATE messages encoded by vispd (the border's routes toward its slices). Pure.

The border passes each provider's routes to each slice on an ADD-PATH path. Through
ExaBGP's API each `announce attributes ... nlri ...` command is parsed as text, stored in
its adj-RIB-out and encoded again by ExaBGP; here the helper encodes the same UPDATE itself
(ORIGIN IGP, AS_PATH of 4-byte ASNs, NEXT_HOP, LOCAL_PREF; path identifier before each
prefix) and bgp/exabgp_hook.py writes the bytes onto the slice's session, between ExaBGP's
own messages. Messages stay within BGP's 4096 octets."""
from __future__ import annotations

import struct
from socket import inet_aton

MAX_MESSAGE = 4096
HEADER = b"\xff" * 16
UPDATE = 2


def path_id_value(path_id: str | int) -> int:
    if isinstance(path_id, int):
        return path_id
    if "." in path_id:
        return int.from_bytes(inet_aton(path_id), "big")
    return int(path_id)


_LENGTHS = [bytes([n]) for n in range(33)]


def encode_prefix(prefix: str, path_id: int | None) -> bytes:
    address, _, length_text = prefix.partition("/")
    length = int(length_text) if length_text else 32
    octets = inet_aton(address)[:(length + 7) >> 3]
    head = b"" if path_id is None else path_id.to_bytes(4, "big")
    return head + _LENGTHS[length] + octets


def _attribute(flags: int, code: int, value: bytes) -> bytes:
    if len(value) > 255:
        return bytes([flags | 0x10, code]) + struct.pack("!H", len(value)) + value
    return bytes([flags, code, len(value)]) + value


_ORIGIN_IGP = bytes([0x40, 1, 1, 0])
_LAST_PATH: list = [None, b""]   # the AS_PATH last encoded: the border sends each to every slice in a row


def _as_path_attribute(as_path) -> bytes:
    if _LAST_PATH[0] == as_path:
        return _LAST_PATH[1]
    asns = list(as_path or ())
    segments = b"".join(bytes([2, len(chunk)]) + struct.pack(f"!{len(chunk)}I", *chunk)
                        for chunk in (asns[i:i + 255] for i in range(0, len(asns), 255)))
    encoded = _attribute(0x40, 2, segments)
    _LAST_PATH[0], _LAST_PATH[1] = as_path, encoded
    return encoded


def path_attributes(next_hop: str, local_pref: int | None, as_path) -> bytes:
    """ORIGIN IGP, AS_PATH (sequences of at most 255 4-byte ASNs), NEXT_HOP, LOCAL_PREF."""
    out = _ORIGIN_IGP + _as_path_attribute(as_path) + bytes([0x40, 3, 4]) + inet_aton(next_hop)
    if local_pref is not None:
        out += bytes([0x40, 5, 4]) + struct.pack("!I", local_pref)
    return out


def _message(body: bytes) -> bytes:
    return HEADER + struct.pack("!HB", 19 + len(body), UPDATE) + body


def _chunks(encoded: list[bytes], room: int):
    chunk, size = [], 0
    for item in encoded:
        if size + len(item) > room and chunk:
            yield b"".join(chunk)
            chunk, size = [], 0
        chunk.append(item)
        size += len(item)
    if chunk:
        yield b"".join(chunk)


_LAST_NLRI: list = [None, None, None]   # (prefixes, path id, their encodings): the border sends one list to each slice


def _encoded(prefixes, pid: int | None) -> list[bytes]:
    last = _LAST_NLRI
    if last[1] == pid and (last[0] is prefixes or last[0] == prefixes):
        return last[2]
    encoded = [encode_prefix(p, pid) for p in prefixes]
    last[0], last[1], last[2] = prefixes, pid, encoded
    return encoded


def announce(prefixes, next_hop: str, as_path, local_pref: int | None = None, path_id=None) -> bytes:
    """UPDATE messages announcing `prefixes` with one attribute set (on ADD-PATH path
    `path_id`, dotted or int, when given)."""
    pid = None if path_id is None else path_id_value(path_id)
    attributes = path_attributes(next_hop, local_pref, as_path)
    head = b"\0\0" + struct.pack("!H", len(attributes)) + attributes
    room = MAX_MESSAGE - 19 - len(head)
    encoded = _encoded(prefixes, pid)
    if len(encoded) <= room // 9:   # fits one message whatever the prefixes (9 octets at most each)
        return _message(head + b"".join(encoded))
    return b"".join(_message(head + nlri) for nlri in _chunks(encoded, room))


def withdraw(prefixes, path_id=None) -> bytes:
    """UPDATE messages withdrawing `prefixes` (on ADD-PATH path `path_id` when given)."""
    pid = None if path_id is None else path_id_value(path_id)
    room = MAX_MESSAGE - 19 - 4
    return b"".join(_message(struct.pack("!H", len(field)) + field + b"\0\0")
                    for field in _chunks(_encoded(prefixes, pid), room))
