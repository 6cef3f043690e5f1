"""Make the maps, fill them and load the programs; read a loaded program's maps back.

Side effects (bpf(2) only; no devices touched). `load(program)` returns the descriptor of
a loaded program that holds its own map: the map descriptor is closed here, so once the
caller attaches the program and closes its descriptor, the attachment (a tcx slot or a
cls_bpf filter) is the only owner of program and map: no pins under /sys/fs/bpf, nothing
to clean up but the attachment, and the kernel frees both when it goes (with its device
or namespace too).
"""
from __future__ import annotations

import contextlib
import os

from . import programs, syscall
from .spec import Program

MAP_NAMES = {"e": "vispd_pairs", "i": "vispd_admit", "s": "vispd_sources", "c": "vispd_classes"}
# map type, key size, flags of each role's map: MAC pairs in a hash, prefixes in an LPM trie
MAP_KINDS = {"e": (syscall.MAP_HASH, programs.KEY, 0), "i": (syscall.MAP_HASH, programs.KEY, 0),
             "s": (syscall.MAP_LPM_TRIE, programs.LPM_KEY, syscall.F_NO_PREALLOC),
             "c": (syscall.MAP_LPM_TRIE, programs.LPM_KEY, syscall.F_NO_PREALLOC)}
CODE = {"e": programs.guard_egress, "i": programs.guard_ingress, "s": programs.source_guard,
        "c": programs.source_classes}


@contextlib.contextmanager
def filled_map(role: str, entries: dict[bytes, bytes]):
    map_type, key_size, flags = MAP_KINDS[role]
    fd = syscall.map_create(map_type, key_size, programs.VALUE, max(len(entries), 1), MAP_NAMES[role], flags)
    try:
        for key, value in entries.items():
            syscall.map_update(fd, key, value)
        yield fd
    finally:
        os.close(fd)


def code(program: Program, map_fd: int | None) -> bytes:
    if program.role == "o":
        return programs.own_ingress(**program.entries)
    return CODE[program.role](map_fd)


def load(program: Program) -> int:
    """Load one program (with its filled map, for the guards); returns its descriptor."""
    if program.role == "o":
        return syscall.prog_load(syscall.PROG_SCHED_CLS, code(program, None), program.name)
    with filled_map(program.role, program.entries) as map_fd:
        return syscall.prog_load(syscall.PROG_SCHED_CLS, code(program, map_fd), program.name)


def program_name_of(prog_id: int) -> str:
    fd = syscall.prog_fd_by_id(prog_id)
    try:
        return syscall.prog_info(fd)["name"]
    finally:
        os.close(fd)


def read_maps(prog_id: int) -> dict[str, dict[bytes, bytes]]:
    """map name -> {key: value} for every map of a loaded program (by its id)."""
    prog_fd = syscall.prog_fd_by_id(prog_id)
    try:
        map_ids = syscall.prog_info(prog_fd)["map_ids"]
    finally:
        os.close(prog_fd)
    found = {}
    for map_id in map_ids:
        fd = syscall.map_fd_by_id(map_id)
        try:
            info = syscall.map_info(fd)
            found[info["name"]] = syscall.map_items(fd, info["key_size"], info["value_size"])
        finally:
            os.close(fd)
    return found
