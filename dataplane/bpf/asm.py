"""A small eBPF assembler (pure): instructions as values, labels for jumps, bytes out.

vispd's programs are a few dozen instructions, so they are written here as Python lists
instead of C: nothing to compile at install time (no clang/llvm on the nodes), the
constants a program needs (MAC addresses, interface indexes, map descriptors) are
patched in as immediates, and the same code that loads them can be unit-tested byte for
byte. Encoding: include/uapi/linux/bpf_common.h and bpf.h (`struct bpf_insn`: opcode,
dst_reg:4 | src_reg:4, s16 offset, s32 immediate; `ld_imm64` takes two slots).

    prog = [mov(R0, 0), jeq(R1, 0, "out"), mov(R0, 2), Label("out"), exit_()]
    code = assemble(prog)
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
FP = R10

# instruction classes, sizes, modes, sources
LD, LDX, ST, STX, ALU, JMP, ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
IMM, MEM = 0x00, 0x60
K, X = 0x00, 0x08
# ALU and jump operations
ADD, SUB, AND, OR, LSH, RSH, XOR, MOV = 0x00, 0x10, 0x50, 0x40, 0x60, 0x70, 0xA0, 0xB0
JA, JEQ, JGT, JGE, JNE, JLT, JLE, CALL, EXIT = 0x00, 0x10, 0x20, 0x30, 0x50, 0xA0, 0xB0, 0x80, 0x90
PSEUDO_MAP_FD = 1

SIZES = {1: B, 2: H, 4: W, 8: DW}


@dataclass(frozen=True)
class Insn:
    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def encode(self) -> bytes:
        return struct.pack("<BBhi", self.opcode, (self.src << 4) | self.dst, self.off, _s32(self.imm))


@dataclass(frozen=True)
class Wide:
    """ld_imm64: a 64-bit immediate (or a map descriptor) into a register; two slots."""
    dst: int
    value: int
    src: int = 0

    def encode(self) -> bytes:
        low, high = self.value & 0xFFFFFFFF, (self.value >> 32) & 0xFFFFFFFF
        return (Insn(LD | DW | IMM, self.dst, self.src, 0, low).encode()
                + Insn(0, 0, 0, 0, high).encode())


@dataclass(frozen=True)
class Jump:
    """A conditional (or unconditional, op JA) jump to a label; resolved by assemble()."""
    op: int
    dst: int
    operand: int  # register (when by_reg) or immediate
    label: str
    by_reg: bool = False


@dataclass(frozen=True)
class Label:
    name: str


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _slots(item) -> int:
    return {Insn: 1, Wide: 2, Jump: 1, Label: 0}[type(item)]


# --- constructors ----------------------------------------------------------------------

def mov(dst: int, imm: int) -> Insn:
    return Insn(ALU64 | MOV | K, dst, 0, 0, imm)


def mov32(dst: int, imm: int) -> Insn:
    """dst = imm as an unsigned 32-bit value (the upper half cleared, never sign-extended)."""
    return Insn(ALU | MOV | K, dst, 0, 0, imm)


def movr(dst: int, src: int) -> Insn:
    return Insn(ALU64 | MOV | X, dst, src)


def add(dst: int, imm: int) -> Insn:
    return Insn(ALU64 | ADD | K, dst, 0, 0, imm)


def ldx(size: int, dst: int, src: int, off: int) -> Insn:
    """dst = *(size *)(src + off)"""
    return Insn(LDX | MEM | SIZES[size], dst, src, off)


def stx(size: int, dst: int, off: int, src: int) -> Insn:
    """*(size *)(dst + off) = src"""
    return Insn(STX | MEM | SIZES[size], dst, src, off)


def st(size: int, dst: int, off: int, imm: int) -> Insn:
    """*(size *)(dst + off) = imm"""
    return Insn(ST | MEM | SIZES[size], dst, 0, off, imm)


def ld64(dst: int, value: int) -> Wide:
    return Wide(dst, value)


def ld_map(dst: int, map_fd: int) -> Wide:
    return Wide(dst, map_fd, PSEUDO_MAP_FD)


def jmp(op: int, dst: int, imm: int, label: str) -> Jump:
    return Jump(op, dst, imm, label)


def jmpr(op: int, dst: int, src: int, label: str) -> Jump:
    return Jump(op, dst, src, label, by_reg=True)


def ja(label: str) -> Jump:
    return Jump(JA, 0, 0, label)


def call(helper: int) -> Insn:
    return Insn(JMP | CALL, 0, 0, 0, helper)


def exit_() -> Insn:
    return Insn(JMP | EXIT)


# --- assembly --------------------------------------------------------------------------

def _label_slots(program: list) -> dict[str, int]:
    where: dict[str, int] = {}
    slot = 0
    for item in program:
        if isinstance(item, Label):
            if item.name in where:
                raise ValueError(f"label {item.name!r} defined twice")
            where[item.name] = slot
        slot += _slots(item)
    return where


def assemble(program: list) -> bytes:
    """Bytes of the program, jumps resolved (offsets count slots after the jump)."""
    where = _label_slots(program)
    out, slot = [], 0
    for item in program:
        if isinstance(item, Jump):
            if item.label not in where:
                raise ValueError(f"jump to undefined label {item.label!r}")
            off = where[item.label] - (slot + 1)
            if item.op == JA:
                out.append(Insn(JMP | JA, 0, 0, off).encode())
            elif item.by_reg:
                out.append(Insn(JMP | item.op | X, item.dst, item.operand, off).encode())
            else:
                out.append(Insn(JMP | item.op | K, item.dst, 0, off, item.operand).encode())
        elif not isinstance(item, Label):
            out.append(item.encode())
        slot += _slots(item)
    return b"".join(out)


def mac_bytes(mac: str) -> bytes:
    raw = bytes(int(part, 16) for part in mac.split(":"))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


def le(raw: bytes) -> int:
    """The integer a little-endian load of `raw` gives (so a store of it writes `raw`)."""
    return int.from_bytes(raw, "little")
