"""Fresh receive timestamps behind a delay line. Touches the kernel (the bpf syscall, tc
through netlink); the program's bytes are built purely (`program()`).

The kernel stamps a packet when it arrives (the veth's receive, in the node namespace),
before the receiving sliver's PREROUTING hook hands it to the delay line. A socket that asks
for receive timestamps (SO_TIMESTAMP: `ping` does, for its RTT) would then be given the
arrival time, not the time the packet was delivered after its delay, and `ping` between
neighbours would show one direction's delay instead of two. So on every device whose
arrivals the delay line holds, a 4-instruction tc BPF program on ingress (which runs before
netfilter) clears `skb->tstamp`; the socket layer then stamps the packet when it is
delivered (`__sock_recv_timestamp` fills in a zero stamp), after the hold. Forwarded
packets are unaffected: crossing into the next namespace clears the stamp anyway.

The program is loaded once per process (`load()`), attached with a clsact qdisc
(`attach(ns, device, fd)`) and removed with it (`detach`), over raw rtnetlink (three
fixed-layout requests: pyroute2 would add 0.2 s and 14 MB to every delay process). Nothing
else of vispd puts a qdisc on a sliver's virtual interfaces.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import socket
import struct
import sys

from . import netns, rtnl

SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine(), 321)
BPF_PROG_LOAD = 5
BPF_PROG_TYPE_SCHED_CLS = 3
SKB_TSTAMP_OFFSET = 152  # offsetof(struct __sk_buff, tstamp)
TC_ACT_UNSPEC = -1  # direct action: carry on as if no filter had matched
PROGRAM_NAME = "vispd_fresh_ts"
RTM_NEWQDISC, RTM_DELQDISC, RTM_NEWTFILTER = 36, 37, 44
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
TCA_KIND, TCA_OPTIONS = 1, 2
TCA_BPF_FD, TCA_BPF_NAME, TCA_BPF_FLAGS = 6, 7, 8
TCA_BPF_FLAG_ACT_DIRECT = 1
TC_H_CLSACT = 0xFFFFFFF1
CLSACT_HANDLE = 0xFFFF0000
CLSACT_INGRESS = 0xFFFFFFF2  # TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)
FILTER_PRIORITY = 1
ETH_P_ALL = 0x0003
ENOENT, EINVAL = 2, 22
_TCMSG = struct.Struct("=BxxxiIII")  # family, ifindex, handle, parent, info

# eBPF opcodes
_ALU64_MOV_K = 0x07 | 0xB0 | 0x00
_STX_MEM_DW = 0x03 | 0x60 | 0x18
_JMP_EXIT = 0x05 | 0x90

_libc = ctypes.CDLL(None, use_errno=True)


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program() -> bytes:
    """r2 = 0; skb->tstamp = r2; return TC_ACT_UNSPEC (pure). A store from a register: the
    verifier refuses immediate stores into the context."""
    return (_insn(_ALU64_MOV_K, dst=2, imm=0) + _insn(_STX_MEM_DW, dst=1, src=2, off=SKB_TSTAMP_OFFSET)
            + _insn(_ALU64_MOV_K, dst=0, imm=TC_ACT_UNSPEC) + _insn(_JMP_EXIT))


def load() -> int:
    """Load the program; its file descriptor. OSError with the verifier's log if refused."""
    code = ctypes.create_string_buffer(program())
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(4096)
    attr = bytearray(128)
    struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_SCHED_CLS, len(program()) // 8,
                     ctypes.addressof(code), ctypes.addressof(license_), 1, len(log), ctypes.addressof(log))
    attr[48:48 + len(PROGRAM_NAME)] = PROGRAM_NAME.encode()
    fd = _libc.syscall(SYS_BPF, BPF_PROG_LOAD, (ctypes.c_char * len(attr)).from_buffer(attr), len(attr))
    if fd < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"bpf program load: {os.strerror(error)} {log.value.decode(errors='replace')[:200]}")
    return fd


_loaded: int | None = None


def program_fd() -> int:
    """The program of this process, loaded on first use."""
    global _loaded
    if _loaded is None:
        _loaded = load()
    return _loaded


def fresh_stamps(places: list[tuple[str, str]]) -> None:
    """Attach the program on each (namespace, device). A kernel that refuses it costs only
    the receive stamps (the delay itself is unaffected): say so on stderr and go on."""
    for ns, device in places:
        try:
            attach(ns, device, program_fd())
        except OSError as error:
            print(f"delayline: receive timestamps on {device} in {ns or 'this namespace'} will predate the "
                  f"delay (ping under-reports the RTT; ping -U does not): {error}", file=sys.stderr, flush=True)


def tcmsg(index: int, handle: int, parent: int, info: int = 0) -> bytes:
    return _TCMSG.pack(0, index, handle, parent, info)


def clsact_request(index: int) -> bytes:
    """The body of RTM_NEWQDISC / RTM_DELQDISC for the clsact qdisc of device `index` (pure)."""
    return tcmsg(index, CLSACT_HANDLE, TC_H_CLSACT) + rtnl._attr(TCA_KIND, b"clsact\0")


def filter_request(index: int, fd: int) -> bytes:
    """The body of RTM_NEWTFILTER: program `fd` as a direct-action filter on the ingress of
    device `index`, every protocol, handle 1 (pure)."""
    info = (FILTER_PRIORITY << 16) | socket.htons(ETH_P_ALL)
    options = (rtnl._attr(TCA_BPF_FD, struct.pack("=I", fd))
               + rtnl._attr(TCA_BPF_NAME, PROGRAM_NAME.encode() + b"\0")
               + rtnl._attr(TCA_BPF_FLAGS, struct.pack("=I", TCA_BPF_FLAG_ACT_DIRECT)))
    return tcmsg(index, 1, CLSACT_INGRESS, info) + rtnl._attr(TCA_KIND, b"bpf\0") + rtnl._attr(TCA_OPTIONS, options)


class _Tc(rtnl.RawLinks):
    """The raw rtnetlink socket of the calling thread's namespace, with the tc requests."""

    def clsact(self, index: int, present: bool) -> None:
        if present:
            self._request(RTM_NEWQDISC, rtnl.NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, clsact_request(index))
        else:
            self._request(RTM_DELQDISC, rtnl.NLM_F_ACK, clsact_request(index))

    def bpf_filter(self, index: int, fd: int) -> None:
        self._request(RTM_NEWTFILTER, rtnl.NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, filter_request(index, fd))


def attach(ns: str, device: str, fd: int) -> None:
    """Clear arrival stamps on `device` in namespace `ns` ("" = here): clsact + the filter
    (a clsact left by a predecessor is replaced)."""
    with netns.entered(ns) if ns else contextlib.nullcontext():
        with contextlib.closing(_Tc()) as tc:
            index = tc.index(device)
            if index is None:
                raise OSError(f"no device {device} in {ns or 'this namespace'}")
            with contextlib.suppress(OSError):
                tc.clsact(index, present=False)
            tc.clsact(index, present=True)
            tc.bpf_filter(index, fd)


def detach(ns: str, device: str) -> None:
    """Remove the clsact qdisc (and the filter) from `device`; nothing if either is gone."""
    with contextlib.suppress(OSError):
        with netns.entered(ns) if ns else contextlib.nullcontext():
            with contextlib.closing(_Tc()) as tc:
                index = tc.index(device)
                if index is not None:
                    tc.clsact(index, present=False)
