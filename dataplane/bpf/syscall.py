"""The bpf(2) system call, through ctypes: maps, program loading, introspection, test runs.

Side effects only (this module is the one place that calls bpf(2)); no compiler, no
libbpf: the programs are assembled by `dataplane.bpf.asm`. Every call returns plain Python
values or file descriptors that the caller owns and must close (`os.close`). Nothing is
pinned: a map lives while a program or a descriptor refers to it, a program while a tc
filter or a descriptor does, so removing the filter (or the device, or the namespace)
frees everything it held.

Structure layouts follow `union bpf_attr` and `struct bpf_prog_info`/`bpf_map_info` in
include/uapi/linux/bpf.h (stable ABI: fields are only ever appended).
"""
from __future__ import annotations

import ctypes
import os
import platform
import struct

SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351}

# commands
MAP_CREATE, MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, MAP_DELETE_ELEM, MAP_GET_NEXT_KEY, PROG_LOAD = 0, 1, 2, 3, 4, 5
PROG_TEST_RUN, PROG_GET_FD_BY_ID, MAP_GET_FD_BY_ID, OBJ_GET_INFO_BY_FD = 10, 13, 14, 15
# map and program types
MAP_HASH, MAP_ARRAY, MAP_LPM_TRIE = 1, 2, 11
F_NO_PREALLOC = 1  # map flag an LPM trie requires
PROG_SCHED_CLS = 3
ANY = 0  # BPF_ANY: create or update

OBJ_NAME_LEN = 16
LOG_SIZE = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class BpfError(OSError):
    """bpf(2) failed; for a program load, `log` holds the verifier's explanation."""

    def __init__(self, errno_: int, what: str, log: str = ""):
        super().__init__(errno_, f"bpf {what}: {os.strerror(errno_)}" + (f"\n{log}" if log else ""))
        self.log = log


def _nr() -> int:
    machine = platform.machine()
    if machine not in SYS_BPF:
        raise OSError(f"bpf(2): unknown syscall number on {machine}")
    return SYS_BPF[machine]


def bpf(cmd: int, attr: ctypes.Array, what: str, log: str = "") -> int:
    """Call bpf(2) with `attr` (a ctypes buffer the kernel may write back into)."""
    ret = _libc.syscall(ctypes.c_long(_nr()), ctypes.c_long(cmd), ctypes.c_void_p(ctypes.addressof(attr)),
                        ctypes.c_long(len(attr)))
    if ret < 0:
        raise BpfError(ctypes.get_errno(), what, log)
    return ret


def _attr(size: int = 128) -> ctypes.Array:
    return ctypes.create_string_buffer(size)


def _name(text: str) -> bytes:
    raw = text.encode()[:OBJ_NAME_LEN - 1]
    return raw + b"\0" * (OBJ_NAME_LEN - len(raw))


def _ptr(buf) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


# --- maps ------------------------------------------------------------------------------

def map_create(map_type: int, key_size: int, value_size: int, max_entries: int, name: str, flags: int = 0) -> int:
    attr = _attr()
    struct.pack_into("<7I16s", attr, 0, map_type, key_size, value_size, max_entries, flags, 0, 0, _name(name))
    return bpf(MAP_CREATE, attr, f"map_create {name}")


def map_update(fd: int, key: bytes, value: bytes, flags: int = ANY) -> None:
    kbuf, vbuf = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(value, len(value))
    attr = _attr()
    struct.pack_into("<IIQQQ", attr, 0, fd, 0, _ptr(kbuf), _ptr(vbuf), flags)
    bpf(MAP_UPDATE_ELEM, attr, "map_update")


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    kbuf, vbuf = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(value_size)
    attr = _attr()
    struct.pack_into("<IIQQQ", attr, 0, fd, 0, _ptr(kbuf), _ptr(vbuf), 0)
    try:
        bpf(MAP_LOOKUP_ELEM, attr, "map_lookup")
    except BpfError as exc:
        if exc.errno == 2:  # ENOENT
            return None
        raise
    return vbuf.raw


def map_keys(fd: int, key_size: int) -> list[bytes]:
    """Every key of a hash map (BPF_MAP_GET_NEXT_KEY from no key)."""
    keys: list[bytes] = []
    current: bytes | None = None
    while True:
        kbuf = ctypes.create_string_buffer(current, key_size) if current is not None else None
        nbuf = ctypes.create_string_buffer(key_size)
        attr = _attr()
        struct.pack_into("<IIQQ", attr, 0, fd, 0, _ptr(kbuf), _ptr(nbuf))
        try:
            bpf(MAP_GET_NEXT_KEY, attr, "map_get_next_key")
        except BpfError as exc:
            if exc.errno == 2:
                return keys
            raise
        current = nbuf.raw
        keys.append(current)


def map_items(fd: int, key_size: int, value_size: int) -> dict[bytes, bytes]:
    items = {}
    for key in map_keys(fd, key_size):
        value = map_lookup(fd, key, value_size)
        if value is not None:
            items[key] = value
    return items


# --- programs --------------------------------------------------------------------------

def prog_load(prog_type: int, code: bytes, name: str, license_: str = "GPL") -> int:
    """Load a program; on refusal the BpfError carries the verifier log."""
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(license_.encode())
    log = ctypes.create_string_buffer(LOG_SIZE)
    attr = _attr()
    struct.pack_into("<IIQQIIQII16s", attr, 0, prog_type, len(code) // 8, _ptr(insns), _ptr(lic),
                     0, 0, 0, 0, 0, _name(name))
    try:
        return bpf(PROG_LOAD, attr, f"prog_load {name}")
    except BpfError:
        pass
    # Load again with the log on, only to explain the refusal (the log costs time).
    struct.pack_into("<IIQ", attr, 24, 1, LOG_SIZE, _ptr(log))
    try:
        return bpf(PROG_LOAD, attr, f"prog_load {name}")
    except BpfError as exc:
        raise BpfError(exc.errno, f"prog_load {name}", log.value.decode(errors="replace")) from None


def prog_test_run(fd: int, data: bytes, ctx: bytes | None = None, ctx_out_size: int = 0) -> tuple[int, bytes, bytes]:
    """Run a program once on `data` (a frame) with an optional `struct __sk_buff` in `ctx`:
    (return value, the frame after the program, the context after the program)."""
    din = ctypes.create_string_buffer(data, len(data))
    dout = ctypes.create_string_buffer(len(data) + 256)
    cin = ctypes.create_string_buffer(ctx, len(ctx)) if ctx else None
    cout = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
    attr = _attr()
    struct.pack_into("<IIIIQQIIIIQQ", attr, 0, fd, 0, len(data), len(dout), _ptr(din), _ptr(dout),
                     1, 0, len(ctx) if ctx else 0, ctx_out_size, _ptr(cin), _ptr(cout))
    bpf(PROG_TEST_RUN, attr, "prog_test_run")
    retval, _, size_out = struct.unpack_from("<III", attr, 4)
    ctx_size_out = struct.unpack_from("<I", attr, 44)[0]
    return retval, dout.raw[:size_out], (cout.raw[:ctx_size_out] if cout is not None else b"")


# --- introspection ---------------------------------------------------------------------

def _get_fd_by_id(cmd: int, obj_id: int, what: str) -> int:
    attr = _attr()
    struct.pack_into("<III", attr, 0, obj_id, 0, 0)
    return bpf(cmd, attr, what)


def prog_fd_by_id(prog_id: int) -> int:
    return _get_fd_by_id(PROG_GET_FD_BY_ID, prog_id, f"prog_get_fd_by_id {prog_id}")


def map_fd_by_id(map_id: int) -> int:
    return _get_fd_by_id(MAP_GET_FD_BY_ID, map_id, f"map_get_fd_by_id {map_id}")


def _info(fd: int, info: ctypes.Array) -> None:
    attr = _attr()
    struct.pack_into("<IIQ", attr, 0, fd, len(info), _ptr(info))
    bpf(OBJ_GET_INFO_BY_FD, attr, "obj_get_info_by_fd")


def prog_info(fd: int) -> dict:
    """id, name, tag and the ids of the maps a loaded program uses."""
    info = ctypes.create_string_buffer(256)
    _info(fd, info)
    nr_maps = struct.unpack_from("<I", info, 52)[0]
    ids = (ctypes.c_uint32 * max(nr_maps, 1))()
    info = ctypes.create_string_buffer(256)
    struct.pack_into("<I", info, 52, nr_maps)
    struct.pack_into("<Q", info, 56, ctypes.addressof(ids))
    _info(fd, info)
    prog_id = struct.unpack_from("<I", info, 4)[0]
    return {"id": prog_id, "tag": info.raw[8:16].hex(), "name": info.raw[64:80].split(b"\0")[0].decode(),
            "map_ids": list(ids)[:nr_maps]}


def map_info(fd: int) -> dict:
    info = ctypes.create_string_buffer(128)
    _info(fd, info)
    map_type, map_id, key_size, value_size, max_entries, _ = struct.unpack_from("<6I", info, 0)
    return {"type": map_type, "id": map_id, "key_size": key_size, "value_size": value_size,
            "max_entries": max_entries, "name": info.raw[24:40].split(b"\0")[0].decode()}


# --- tcx (Linux 6.6+): programs on a device's ingress/egress without a qdisc -----------

PROG_ATTACH, PROG_DETACH, PROG_QUERY = 8, 9, 16
TCX_INGRESS, TCX_EGRESS = 46, 47
F_REPLACE, F_BEFORE, F_AFTER, F_ID, F_LINK = 1 << 2, 1 << 3, 1 << 4, 1 << 5, 1 << 13


def prog_attach(ifindex: int, prog_fd: int, attach_type: int, flags: int = 0, replace_fd: int = 0) -> None:
    """Attach to device `ifindex` of the calling thread's network namespace (with F_REPLACE,
    in place of the program `replace_fd`, atomically)."""
    attr = _attr()
    struct.pack_into("<IIIIII", attr, 0, ifindex, prog_fd, attach_type, flags, replace_fd, 0)
    bpf(PROG_ATTACH, attr, f"prog_attach ifindex {ifindex}")


def prog_detach(ifindex: int, prog_fd: int, attach_type: int) -> None:
    attr = _attr()
    struct.pack_into("<IIII", attr, 0, ifindex, prog_fd, attach_type, 0)
    bpf(PROG_DETACH, attr, f"prog_detach ifindex {ifindex}")


def prog_query(ifindex: int, attach_type: int, max_progs: int = 64) -> list[int]:
    """Ids of the programs attached to a device's tcx hook, in run order."""
    ids = (ctypes.c_uint32 * max_progs)()
    attr = _attr()
    struct.pack_into("<IIIIQI", attr, 0, ifindex, attach_type, 0, 0, ctypes.addressof(ids), max_progs)
    bpf(PROG_QUERY, attr, f"prog_query ifindex {ifindex}")
    count = struct.unpack_from("<I", attr, 24)[0]
    return list(ids)[:count]
