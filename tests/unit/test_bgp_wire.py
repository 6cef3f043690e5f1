"""bgp/wire.py: UPDATE bodies crafted byte by byte -> events, and RFC 7606's three answers
(session reset, treat-as-withdraw, attribute discard)."""
from __future__ import annotations

import struct

import pytest

from bgp import wire
from bgp.wire import SessionReset, parse_update


def attr(code: int, value: bytes, flags: int | None = None) -> bytes:
    if flags is None:
        flags = {1: 0x40, 2: 0x40, 3: 0x40, 5: 0x40, 6: 0x40}.get(code, 0xC0 if code in (7, 8, 17, 18) else 0x80)
    if len(value) > 255:
        return bytes([flags | 0x10, code]) + struct.pack("!H", len(value)) + value
    return bytes([flags, code, len(value)]) + value


def as_path(*asns: int, kind: int = 2, size: int = 4) -> bytes:
    return bytes([kind, len(asns)]) + b"".join(a.to_bytes(size, "big") for a in asns)


def prefix(text: str, path_id: int | None = None) -> bytes:
    address, length = text.split("/")
    raw = bytes(int(x) for x in address.split("."))[:(int(length) + 7) // 8]
    head = b"" if path_id is None else path_id.to_bytes(4, "big")
    return head + bytes([int(length)]) + raw


def body(withdrawn: bytes = b"", attributes: bytes = b"", nlri: bytes = b"") -> bytes:
    return struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attributes)) + attributes + nlri


BASIC = attr(1, b"\0") + attr(2, as_path(65001, 4200000000)) + attr(3, bytes([10, 0, 0, 1]))


def test_announcement_with_4_byte_asns_and_communities():
    attributes = BASIC + attr(4, b"\0\0\0\x05") + attr(8, struct.pack("!4H", 65001, 1, 65001, 2))
    update = parse_update(body(attributes=attributes, nlri=prefix("192.0.2.0/24") + prefix("10.0.0.0/8")), "p")
    assert update.peer == "p" and update.withdrawn == [] and update.notes == []
    (routes,) = update.announced
    assert routes.prefixes == ["192.0.2.0/24", "10.0.0.0/8"]
    assert routes.as_path == (65001, 4200000000) and routes.length == 2
    assert routes.next_hop == "10.0.0.1" and routes.communities == ("65001:1", "65001:2")
    assert routes.path_id == ""


def test_withdrawals_odd_prefix_lengths_and_default():
    update = parse_update(body(withdrawn=prefix("203.0.113.128/25") + prefix("0.0.0.0/0") + prefix("10.64.0.0/10")))
    assert update.withdrawn == ["203.0.113.128/25", "0.0.0.0/0", "10.64.0.0/10"]
    assert update.announced == []


def test_add_path_identifiers_in_nlri_and_withdrawn():
    update = parse_update(body(withdrawn=prefix("198.51.100.0/24", 2),
                               attributes=BASIC, nlri=prefix("192.0.2.0/24", 1) + prefix("192.0.2.0/24", 258)),
                          addpath=True)
    assert update.withdrawn_paths == {"0.0.0.2": ["198.51.100.0/24"]}
    assert sorted((r.path_id, tuple(r.prefixes)) for r in update.announced) == [
        ("0.0.0.1", ("192.0.2.0/24",)), ("0.0.1.2", ("192.0.2.0/24",))]


def test_as_set_and_confederation_segments_count_for_path_length():
    path = as_path(1, 2) + as_path(3, 4, 5, kind=1) + as_path(6, kind=3)
    update = parse_update(body(attributes=attr(1, b"\0") + attr(2, path) + attr(3, bytes(4)),
                               nlri=prefix("192.0.2.0/24")))
    assert update.announced[0].as_path == (1, 2, 3, 4, 5, 6)
    assert update.announced[0].length == 3   # 2 of the sequence, 1 for the set, 0 for the confed


def test_two_byte_asns_take_the_as4_path():
    path = as_path(65001, 23456, size=2)
    attributes = attr(1, b"\0") + attr(2, path) + attr(3, bytes(4)) + attr(17, as_path(4200000000))
    update = parse_update(body(attributes=attributes, nlri=prefix("192.0.2.0/24")), asn_size=2)
    assert update.announced[0].as_path == (65001, 4200000000)


def test_mp_reach_and_unreach_for_ipv4_unicast():
    reach = struct.pack("!HBB", 1, 1, 4) + bytes([10, 0, 0, 9]) + b"\0" + prefix("192.0.2.0/24")
    unreach = struct.pack("!HB", 1, 1) + prefix("198.51.100.0/24")
    attributes = attr(1, b"\0") + attr(2, as_path(65001)) + attr(14, reach) + attr(15, unreach)
    update = parse_update(body(attributes=attributes))
    assert update.withdrawn == ["198.51.100.0/24"]
    assert [(r.next_hop, r.prefixes) for r in update.announced] == [("10.0.0.9", ["192.0.2.0/24"])]


def test_unknown_optional_transitive_is_kept_opaque_and_non_transitive_dropped():
    attrs = wire.parse_attributes(BASIC + attr(99, b"abc", flags=0xC0) + attr(98, b"x", flags=0x80))
    assert attrs.opaque == [bytes([0xE0, 99]) + b"abc"]   # partial bit set
    assert not attrs.withdraw_reasons


@pytest.mark.parametrize("bad, why", [
    (attr(1, b"\x07"), "ORIGIN"),                                 # origin value out of range
    (attr(1, b"\0\0"), "attribute 1"),                            # origin length
    (attr(2, bytes([2, 3, 0, 0, 0, 1])), "AS_PATH"),              # segment overruns
    (attr(2, bytes([9, 1, 0, 0, 0, 1])), "AS_PATH"),              # bad segment type
    (attr(3, bytes(5)), "attribute 3"),                           # next hop length
    (attr(4, bytes(3)), "attribute 4"),                           # MED length
    (attr(8, bytes(6)), "COMMUNITIES"),                           # not a multiple of 4
    (attr(1, b"\0", flags=0xC0), "flags"),                        # well-known marked optional
])
def test_malformed_attributes_treat_as_withdraw(bad, why):
    attributes = bad + BASIC   # the malformed copy comes first: the good one is a repeat
    update = parse_update(body(withdrawn=prefix("198.51.100.0/24"), attributes=attributes,
                               nlri=prefix("192.0.2.0/24") + prefix("192.0.3.0/24")))
    assert update.announced == []
    assert update.withdrawn == ["198.51.100.0/24", "192.0.2.0/24", "192.0.3.0/24"]
    assert any("treat-as-withdraw" in n and why in n for n in update.notes), update.notes


def test_missing_mandatory_attribute_treats_as_withdraw():
    update = parse_update(body(attributes=attr(1, b"\0") + attr(3, bytes(4)), nlri=prefix("192.0.2.0/24")))
    assert update.announced == [] and update.withdrawn == ["192.0.2.0/24"]
    assert "missing AS_PATH" in update.notes[0]


def test_attribute_overrunning_the_section_treats_as_withdraw():
    attributes = BASIC + bytes([0x40, 1, 9, 0])   # says 9 octets, has 1
    update = parse_update(body(attributes=attributes, nlri=prefix("192.0.2.0/24")))
    assert update.announced == [] and update.withdrawn == ["192.0.2.0/24"]


@pytest.mark.parametrize("bad", [
    attr(6, b"\x01"),              # ATOMIC_AGGREGATE with a value
    attr(7, bytes(5)),             # AGGREGATOR of the wrong length
    attr(18, bytes(3)),            # AS4_AGGREGATOR of the wrong length
    attr(5, bytes(4)),             # LOCAL_PREF from an eBGP peer
])
def test_attribute_discard_keeps_the_routes(bad):
    update = parse_update(body(attributes=BASIC + bad, nlri=prefix("192.0.2.0/24")))
    assert [r.prefixes for r in update.announced] == [["192.0.2.0/24"]]
    assert update.withdrawn == [] and any("discarded" in n for n in update.notes)


def test_repeated_attribute_keeps_the_first():
    update = parse_update(body(attributes=BASIC + attr(3, bytes([10, 9, 9, 9])), nlri=prefix("192.0.2.0/24")))
    assert update.announced[0].next_hop == "10.0.0.1" and "repeated attribute 3 discarded" in update.notes


@pytest.mark.parametrize("raw, subcode", [
    (b"\0", 1),                                                      # too short for the lengths
    (struct.pack("!H", 9) + b"\0\0", 1),                              # withdrawn length overruns
    (struct.pack("!HH", 0, 40) + BASIC, 1),                           # attribute length overruns
    (body(attributes=BASIC, nlri=bytes([33, 1, 2, 3, 4, 5])), 10),    # prefix length 33
    (body(attributes=BASIC, nlri=bytes([24, 1, 2])), 10),             # prefix overruns the NLRI
    (body(withdrawn=bytes([25, 1, 2, 3])), 10),                       # withdrawn prefix overruns
    (body(attributes=BASIC + attr(200, b"x", flags=0x40), nlri=prefix("192.0.2.0/24")), 2),  # unknown well-known
    (body(attributes=BASIC + attr(15, struct.pack("!HB", 1, 1)) * 2), 1),  # MP_UNREACH twice
    (body(attributes=BASIC + attr(14, struct.pack("!HBB", 1, 1, 16) + bytes(3))), 1),  # next hop overruns
])
def test_session_reset(raw, subcode):
    with pytest.raises(SessionReset) as caught:
        parse_update(raw)
    assert (caught.value.code, caught.value.subcode) == (3, subcode)


def test_add_path_field_overrun_is_a_session_reset():
    with pytest.raises(SessionReset):
        parse_update(body(attributes=BASIC, nlri=b"\0\0\0\x01"), addpath=True)


def test_end_of_rib_is_an_empty_update():
    update = parse_update(body())
    assert (update.announced, update.withdrawn, update.withdrawn_paths, update.notes) == ([], [], {}, [])


# -- the encoder (bgp/wire_encode.py), read back by the parser --------------------------------
from bgp import wire_encode  # noqa: E402


def _messages(data: bytes) -> list[bytes]:
    out = []
    while data:
        length = int.from_bytes(data[16:18], "big")
        assert data[:16] == b"\xff" * 16 and data[18] == 2 and 19 + 4 <= length <= 4096
        out.append(data[19:length])
        data = data[length:]
    return out


def test_encoded_announcement_reads_back_with_path_ids():
    prefixes = [f"10.{i >> 8}.{i & 255}.0/24" for i in range(2000)] + ["0.0.0.0/0", "192.0.2.128/25"]
    data = wire_encode.announce(prefixes, "100.64.0.1", (65101, 4200000000), local_pref=120, path_id="0.0.0.2")
    bodies = _messages(data)
    assert len(bodies) > 1   # 2002 prefixes with path ids do not fit one 4096-octet message
    updates = [parse_update(b, addpath=True, ibgp=True) for b in bodies]
    got = [p for u in updates for r in u.announced for p in r.prefixes]
    assert got == prefixes
    routes = updates[0].announced[0]
    assert (routes.path_id, routes.next_hop, routes.as_path) == ("0.0.0.2", "100.64.0.1", (65101, 4200000000))
    assert all(u.notes == [] for u in updates)
    assert wire.parse_attributes(wire_encode.path_attributes("1.2.3.4", 120, (1,)), ibgp=True).local_pref == 120


def test_encoded_withdrawal_reads_back():
    prefixes = [f"10.0.{i}.0/24" for i in range(256)]
    updates = [parse_update(b, addpath=True) for b in _messages(wire_encode.withdraw(prefixes, "0.0.0.1"))]
    assert [p for u in updates for p in u.withdrawn_paths["0.0.0.1"]] == prefixes
    assert all(u.announced == [] for u in updates)


def test_long_as_path_uses_extended_length():
    path = tuple(range(1, 101))   # 100 4-byte ASNs: 402 octets
    (body,) = _messages(wire_encode.announce(["192.0.2.0/24"], "10.0.0.1", path))
    assert parse_update(body).announced[0].as_path == path


# -- the hook's lines (bgp/wire_stream.py) ------------------------------------------------------
import base64  # noqa: E402

from bgp import wire_stream  # noqa: E402


def test_a_wire_line_becomes_one_event_per_update_in_order():
    run = wire_encode.announce(["10.0.0.0/24"], "192.0.2.1", (65101,)) + wire_encode.withdraw(["10.0.1.0/24"])
    line = f"#vispd-wire 192.0.2.1 0 1 {base64.b64encode(run).decode()}\n"
    assert wire_stream.is_wire_line(line) and not wire_stream.is_wire_line('{"type": "update"}')
    events, errors = wire_stream.decode_line(line, frozenset(), 5.0)
    assert errors == [] and [e.peer for e in events] == ["192.0.2.1", "192.0.2.1"]
    assert events[0].announced[0].prefixes == ["10.0.0.0/24"] and events[0].time == 5.0
    assert events[1].withdrawn == ["10.0.1.0/24"]


def test_a_wire_line_with_a_bad_message_keeps_the_others():
    bad = b"\xff" * 16 + (25).to_bytes(2, "big") + b"\x02" + struct.pack("!HH", 0, 0) + bytes([33, 1])
    run = wire_encode.withdraw(["10.0.1.0/24"]) + bad
    events, errors = wire_stream.decode_line(f"#vispd-wire p 0 1 {base64.b64encode(run).decode()}", set(), 0.0)
    assert len(events) == 1 and len(errors) == 1 and "dropped" in errors[0]
