"""The eBPF assembler and the programs' code (pure: bytes compared with the encoding of
include/uapi/linux/bpf.h, no kernel involved)."""
from __future__ import annotations

import struct

import pytest

from dataplane.bpf import asm, programs
from dataplane.bpf.asm import R0, R1, R2, R5, FP, Label


def insns(code: bytes) -> list[tuple[int, int, int, int, int]]:
    """(opcode, dst, src, off, imm) of every 8-byte slot."""
    out = []
    for i in range(0, len(code), 8):
        opcode, regs, off, imm = struct.unpack("<BBhi", code[i:i + 8])
        out.append((opcode, regs & 0xF, regs >> 4, off, imm))
    return out


def test_known_encodings():
    assert asm.assemble([asm.mov(R0, 0), asm.exit_()]) == bytes.fromhex("b700000000000000" "9500000000000000")
    assert asm.ldx(8, R5, R2, 0).encode() == bytes.fromhex("7925000000000000")
    assert asm.stx(4, FP, -8, R5).encode() == bytes.fromhex("635af8ff00000000")
    assert asm.call(1).encode() == bytes.fromhex("8500000001000000")
    assert asm.mov(R1, 0xFFFFFFFF).encode() == bytes.fromhex("b7010000ffffffff")


def test_wide_immediate_and_map_descriptor_take_two_slots():
    wide = insns(asm.ld64(R1, 0x1122334455667788).encode())
    assert wide == [(0x18, 1, 0, 0, 0x55667788), (0, 0, 0, 0, 0x11223344)]
    fd = insns(asm.ld_map(R1, 7).encode())
    assert fd[0] == (0x18, 1, asm.PSEUDO_MAP_FD, 0, 7)


def test_jumps_count_slots_including_wide_loads():
    code = asm.assemble([
        asm.jmp(asm.JEQ, R1, 0, "end"),   # slot 0 -> skips the 2-slot load and the mov
        asm.ld64(R0, 1),                  # slots 1-2
        asm.mov(R0, 2),                   # slot 3
        Label("end"), asm.exit_(),        # slot 4
    ])
    first = insns(code)[0]
    assert first == (0x15, 1, 0, 3, 0)
    back = insns(asm.assemble([Label("top"), asm.mov(R0, 0), asm.ja("top")]))
    assert back[1] == (0x05, 0, 0, -2, 0)


def test_labels_are_checked():
    with pytest.raises(ValueError, match="undefined"):
        asm.assemble([asm.ja("nowhere")])
    with pytest.raises(ValueError, match="twice"):
        asm.assemble([Label("x"), Label("x")])


def test_mac_bytes():
    assert asm.mac_bytes("02:0a:ff:00:10:01") == bytes([2, 10, 255, 0, 16, 1])
    with pytest.raises(ValueError):
        asm.mac_bytes("02:00:00:00:00")


def test_own_program_carries_the_link_pair_and_class_as_immediates():
    code = insns(programs.own_ingress("02:00:00:00:00:0a", "02:00:00:00:00:0b", 42, 0x10011))
    header = bytes.fromhex("02000000000b" "02000000000a")  # destination (far end), source (this end)
    wide = [i for i, x in enumerate(code) if x[0] == 0x18][0]
    low, high = code[wide][4] & 0xFFFFFFFF, code[wide + 1][4] & 0xFFFFFFFF
    assert struct.pack("<II", low, high) == header[:8]
    immediates = {x[4] & 0xFFFFFFFF for x in code}
    assert int.from_bytes(header[8:12], "little") in immediates
    assert {42, 0x10011} <= immediates
    assert (0x85, 0, 0, 0, programs.REDIRECT) in code


def test_guards_use_their_map_and_end_in_a_verdict():
    for build, helper in ((programs.guard_egress, None), (programs.guard_ingress, programs.REDIRECT_PEER)):
        code = insns(build(99))
        assert (0x18, 1, asm.PSEUDO_MAP_FD, 0, 99) in code
        assert (0xB7, 0, 0, 0, programs.TC_ACT_SHOT) in code
        assert code[-1][0] == 0x95
        if helper:
            assert (0x85, 0, 0, 0, helper) in code
