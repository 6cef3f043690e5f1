"""HDLC-like framing (RFC 1662): FCS-16 against the RFC's table and residue, escaping with
any ACCM, and the streaming decoder (split frames, many frames per read, aborts, bad FCS,
resynchronisation after a drop), on both the pure and the numpy path."""
from __future__ import annotations

import random

import pytest

from access.pptp import hdlc

# RFC 1662 appendix C.2, first row of fcstab
RFC1662_FCSTAB_ROW0 = [0x0000, 0x1189, 0x2312, 0x329B, 0x4624, 0x57AD, 0x6536, 0x74BF]

PATHS = [False] + ([True] if hdlc._np is not None else [])


def reference_fcs(data: bytes, fcs: int = 0xFFFF) -> int:
    """RFC 1662 C.2's bitwise definition (polynomial 0x8408, LSB first)."""
    for byte in data:
        fcs ^= byte
        for _ in range(8):
            fcs = (fcs >> 1) ^ 0x8408 if fcs & 1 else fcs >> 1
    return fcs


def test_fcs_table_row_matches_rfc1662():
    # with a zero register the FCS of one octet c is fcstab[c]
    assert [hdlc.fcs16(bytes([c]), 0) for c in range(8)] == RFC1662_FCSTAB_ROW0


def test_fcs_check_value_and_good_residue():
    # CRC-16/X-25 (the PPP FCS) of "123456789" is 0x906E, sent least significant first
    assert hdlc.fcs_bytes(b"123456789") == b"\x6e\x90"
    # RFC 1662: the FCS over data + transmitted FCS is the "good final FCS value" 0xf0b8
    assert hdlc.fcs16(b"123456789" + b"\x6e\x90") == hdlc.GOOD_FCS == 0xF0B8


def test_fcs_matches_the_bitwise_definition():
    rng = random.Random(1)
    for length in range(0, 300, 7):
        data = bytes(rng.randrange(256) for _ in range(length))
        assert hdlc.fcs16(data) == reference_fcs(data)
        assert hdlc.fcs16(data, 0x1234) == reference_fcs(data, 0x1234)


def test_escape_set_follows_the_accm():
    assert hdlc.escaped_set(0) == b"\x7d\x7e"
    everything = hdlc.escaped_set(0xFFFFFFFF)
    assert everything[:2] == b"\x7d\x7e" and set(everything[2:]) == set(range(32))
    assert set(hdlc.escaped_set(0x000A0000)[2:]) == {0x11, 0x13}  # XON/XOFF only


def test_encode_escapes_flags_and_controls_and_round_trips():
    frame = b"\xff\x03\xc0\x21\x7e\x7d\x00\x1f\x20\x11"
    wire = hdlc.encode_frame(frame)
    assert wire[0] == wire[-1] == 0x7E and b"\x7e" not in wire[1:-1]
    assert not any(c < 0x20 for c in wire[1:-1])
    assert hdlc.Decoder().feed(wire) == [frame]
    # with ACCM 0 control characters travel as they are
    assert b"\x00\x1f" in hdlc.encode_frame(frame, hdlc.escaped_set(0))


def test_unescape_edge_cases():
    assert hdlc.unescape(b"abc") == b"abc"
    assert hdlc.unescape(b"a\x7d\x5e\x7d\x5d\x7d\x20") == b"a\x7e\x7d\x00"
    assert hdlc.unescape(b"a\x7d\x7d\x41") == b"a\x5d\x41"  # doubled escape (slow path)
    assert hdlc.unescape(b"a\x7d") is None                  # abort sequence
    assert hdlc.unescape(b"a\x7d\x7d\x7d") is None
    assert hdlc.unescape(b"a\x7d\x7d") == b"a\x5d"


def frames_for(rng: random.Random, count: int) -> list[bytes]:
    frames = []
    for _ in range(count):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1500)))
        frames.append(b"\xff\x03\x00\x21" + body)
    return frames


@pytest.mark.parametrize("accelerate", PATHS)
def test_streaming_decoder_any_split(accelerate):
    rng = random.Random(7)
    frames = frames_for(rng, 60)
    stream = b"".join(hdlc.encode_frame(f, hdlc.escaped_set(rng.choice([0, 0xFFFFFFFF]))) for f in frames)
    for _ in range(5):
        decoder = hdlc.Decoder(accelerate=accelerate)
        out, at = [], 0
        while at < len(stream):
            step = rng.choice([1, 2, 3, 100, 1500, 4095, 20000])
            out += decoder.feed(stream[at:at + step])
            at += step
        assert out == frames
        assert (decoder.bad_fcs, decoder.runts, decoder.aborted) == (0, 0, 0)


@pytest.mark.parametrize("accelerate", PATHS)
def test_many_frames_in_one_read_and_shared_flags(accelerate):
    frames = frames_for(random.Random(3), 30)
    # back-to-back frames may share one flag between them (RFC 1662 4.3)
    stream = b"\x7e" + b"\x7e".join(hdlc.encode_frame(f)[1:-1] for f in frames) + b"\x7e"
    assert hdlc.Decoder(accelerate=accelerate).feed(stream) == frames


@pytest.mark.parametrize("accelerate", PATHS)
def test_bad_fcs_runts_and_aborts_are_dropped_and_counted(accelerate):
    good = b"\xff\x03\x00\x21" + bytes(range(256)) * 10
    wire = hdlc.encode_frame(good)
    corrupt = bytearray(wire)
    corrupt[40] ^= 0x01 if corrupt[40] not in (0x7C, 0x7F, 0x5C) else 0x02
    decoder = hdlc.Decoder(accelerate=accelerate)
    stream = bytes(corrupt) + b"\x7e\x01\x02\x7e" + b"\x7eabc\x7d\x7e" + wire + wire
    assert decoder.feed(stream) == [good, good]
    assert decoder.bad_fcs == 1 and decoder.runts == 1 and decoder.aborted == 1


def test_discard_resynchronises_at_the_next_flag():
    frames = frames_for(random.Random(5), 3)
    wire = [hdlc.encode_frame(f) for f in frames]
    decoder = hdlc.Decoder()
    assert decoder.feed(wire[0] + wire[1][:50]) == [frames[0]]
    decoder.discard()  # the rest of frame 1 was dropped by the engine
    assert decoder.feed(wire[1][-30:-1]) == []
    assert decoder.feed(wire[1][-1:] + wire[2]) == [frames[2]]
    assert decoder.bad_fcs == 0


def test_garbage_without_flags_is_bounded():
    decoder = hdlc.Decoder(max_frame=1000)
    for _ in range(5):
        decoder.feed(b"x" * 900)
    assert decoder.oversize == 1 and len(decoder._tail) < 2000
