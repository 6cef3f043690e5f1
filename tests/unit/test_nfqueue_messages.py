"""dataplane.nfqueue's netlink messages, packed and parsed without a kernel. Pure."""
from __future__ import annotations

import socket
import struct

from dataplane import nfqueue


def parse(message: bytes):
    length, msg_type, flags, seq, _ = struct.unpack_from("=IHHII", message)
    family, version, res_id = struct.unpack_from("=BBH", message, 16)
    attrs, offset = [], 20
    while offset < length:
        attr_len, attr_type = struct.unpack_from("=HH", message, offset)
        attrs.append((attr_type, message[offset + 4:offset + attr_len]))
        offset += (attr_len + 3) & ~3
    return length, msg_type, flags, seq, socket.ntohs(res_id), attrs


def test_configuration_binds_metadata_only_long_queue_with_gso():
    messages = nfqueue.config_messages(7, maxlen=65536)
    parsed = [parse(m) for m in messages]
    assert all(p[1] == nfqueue.NFQNL_MSG_CONFIG and p[4] == 7 for p in parsed)
    assert all(p[2] & nfqueue.NLM_F_ACK for p in parsed)
    assert all(p[0] == len(m) and len(m) % 4 == 0 for p, m in zip(parsed, messages))
    (kind, body), = parsed[0][5]
    assert kind == nfqueue.NFQA_CFG_CMD and body[0] == nfqueue.NFQNL_CFG_CMD_BIND
    (kind, body), = parsed[1][5]
    assert kind == nfqueue.NFQA_CFG_PARAMS and struct.unpack(">IB", body) == (0, nfqueue.NFQNL_COPY_META)
    (kind, body), = parsed[2][5]
    assert kind == nfqueue.NFQA_CFG_QUEUE_MAXLEN and struct.unpack(">I", body) == (65536,)
    mask, flags = parsed[3][5]
    assert struct.unpack(">I", flags[1])[0] & nfqueue.NFQA_CFG_F_GSO
    assert not struct.unpack(">I", flags[1])[0] & nfqueue.NFQA_CFG_F_FAIL_OPEN


def test_batch_verdict_accepts_through_an_id():
    length, msg_type, flags, _, queue, attrs = parse(nfqueue.verdict_batch_message(3, 0x1_0000_0005))
    assert msg_type == nfqueue.NFQNL_MSG_VERDICT_BATCH and queue == 3 and not flags & nfqueue.NLM_F_ACK
    assert attrs == [(nfqueue.NFQA_VERDICT_HDR, struct.pack(">II", nfqueue.NF_ACCEPT, 5))]  # ids wrap at 2^32


def packet_message(packet_id: int, queue: int = 0) -> bytes:
    header = nfqueue._attr(nfqueue.NFQA_PACKET_HDR, struct.pack(">IHB", packet_id, 0x0800, 0) + b"\0")
    indev = nfqueue._attr(5, struct.pack(">I", 2))
    return nfqueue._message(nfqueue.NFQNL_MSG_PACKET, queue, header + indev, 0)


def error_message() -> bytes:
    return struct.pack("=IHHII", 36, nfqueue.NLMSG_ERROR, 0, 0, 0) + struct.pack("=i", -2) + b"\0" * 16


def test_packet_ids_are_read_from_packet_messages_only():
    assert nfqueue.packet_id(packet_message(123456)) == 123456
    assert nfqueue.packet_id(error_message()) is None
    assert nfqueue.packet_id(b"\0" * 8) is None


def test_the_batch_reader_finds_the_last_packet_id():
    reader = nfqueue.BatchReader(slots=4, slot_bytes=128)
    for slot, message in enumerate([packet_message(10), packet_message(11), error_message()]):
        reader.view[slot * 128:slot * 128 + len(message)] = message
    assert reader.last_packet_id(3) == 11  # the error after the packets is skipped
    assert reader.last_packet_id(1) == 10
    reader.view[0:len(error_message())] = error_message()
    assert reader.last_packet_id(1) is None


def test_queue_statistics_parse():
    text = "    0  27970     3 1     0     5     7  2500000  1\n    1  27971     0 1     0     0     0        0  1\n"
    rows = nfqueue.parse_queue_stats(text)
    assert rows[0] == {"queue": 0, "portid": 27970, "held": 3, "copy_mode": 1, "copy_range": 0,
                       "queue_dropped": 5, "user_dropped": 7, "id_sequence": 2500000}
    assert rows[1]["queue"] == 1 and nfqueue.parse_queue_stats("") == []
