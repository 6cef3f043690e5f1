"""Can this machine run the BPF guard, and on which hook? (side effects: loads throwaway
programs, and attaches them in a private network namespace that vanishes with the thread
that made it.)

`available()` answers with a `Capability(ok, mode, reason)`, probing the kernel once per
process (about 3 ms):
1. bpf(2) works and the verifier accepts every program as BPF_PROG_TYPE_SCHED_CLS with
   its map (the ingress guard calls bpf_redirect_peer: Linux 5.10+; the source guard
   uses an LPM trie: 4.11+);
2. a hook exists: tcx (Linux 6.6+, preferred: cheaper per packet) or else clsact with
   cls_bpf in direct-action mode; found by attaching to the loopback of an anonymous
   namespace that a short-lived thread unshares for itself, so no named namespace or
   device is ever created or left behind.
Where it says no, vispd keeps the nftables guard and u32 classification (`reason` says
why); `VISPD_BPF=off|tcx|clsact` overrides the choice (off: force the fallback), read at
every call. `python3 -m dataplane.bpf.detect` prints the answer.
"""
from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
from dataclasses import dataclass

from . import hooks, loader, spec

MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"
PREFERENCE = ("tcx", "clsact")
CLONE_NEWNET = 0x40000000
CHOICES = ("off", *hooks.MODES)


@dataclass(frozen=True)
class Capability:
    ok: bool
    mode: str | None  # "tcx" | "clsact" | None (use the nftables guard)
    reason: str


def _sample_programs() -> list[spec.Program]:
    end = spec.SliceEnd(MAC_A, MAC_B, 1, own_ifname="lo")
    guard = spec.NodeGuard(ns="", devices=(
        spec.DeviceGuard("lo", (end,), ingress=True),
        spec.DeviceGuard("border", sources=("198.18.0.0/15",)),
        spec.DeviceGuard("access", source_classes=(("198.18.0.0/15", 1),))))
    return spec.programs(guard, lambda name: 1)


def _load_all() -> list[int]:
    return [loader.load(program) for program in _sample_programs()]


def _programs_load() -> str | None:
    try:
        fds = _load_all()
    except OSError as exc:
        return f"the kernel refused the BPF programs: {str(exc).splitlines()[0]}"
    for fd in fds:
        os.close(fd)
    return None


def _attach_here(mode: str) -> str | None:
    """In the current (throwaway) namespace: our guards on both hooks of lo."""
    programs = [p for p in _sample_programs() if p.role in ("e", "i")]
    try:
        with hooks.opened(mode) as where:
            for program in programs:
                fd = loader.load(program)
                try:
                    where.attach("lo", program.hook, fd, program.name, replacing=None)
                finally:
                    os.close(fd)
            if any(program.name not in where.names("lo", program.hook) for program in programs):
                return f"{mode}: attached programs did not show up"
    except Exception as exc:  # any refusal means: not this hook
        return f"{mode}: {str(exc).splitlines()[0]}"
    return None


@functools.cache
def hook_works(mode: str) -> str | None:
    """None if our guards attach on `mode` hooks here, else why not (probed in an
    anonymous network namespace of a thread of its own, gone when the thread ends)."""
    answer: list[str | None] = []

    def probe() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            answer.append(f"unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())}")
            return
        answer.append(_attach_here(mode))

    thread = threading.Thread(target=probe, name=f"vispd-bpf-probe-{mode}")
    thread.start()
    thread.join()
    return answer[0] if answer else f"{mode}: the probe failed"


def _hook_in_scratch_namespace() -> tuple[str | None, str]:
    reasons = []
    for mode in PREFERENCE:
        reason = hook_works(mode)
        if reason is None:
            return mode, ""
        reasons.append(reason)
    return None, "; ".join(reasons)


def available() -> Capability:
    """Whether vispd guards nodes with BPF here, and on which hook ($VISPD_BPF read now;
    the kernel probed once per process). A $VISPD_BPF other than off, tcx, clsact or
    nothing raises ValueError."""
    wanted = os.environ.get("VISPD_BPF", "")
    if wanted and wanted not in CHOICES:
        raise ValueError(f"VISPD_BPF={wanted}: expected one of {', '.join(CHOICES)} (or unset: detect)")
    return _capability(wanted)


@functools.cache
def _capability(wanted: str) -> Capability:
    if wanted == "off":
        return Capability(False, None, "VISPD_BPF=off")
    if os.geteuid() != 0:
        return Capability(False, None, "not root (loading BPF programs needs CAP_BPF and CAP_NET_ADMIN)")
    reason = _programs_load()
    if reason:
        return Capability(False, None, reason)
    if wanted in hooks.MODES:
        reason = hook_works(wanted)
        return Capability(reason is None, wanted if reason is None else None, reason or f"VISPD_BPF={wanted}")
    mode, reason = _hook_in_scratch_namespace()
    if mode is None:
        return Capability(False, None, reason)
    return Capability(True, mode, f"BPF guard on {mode} hooks")


def main(argv: list[str]) -> int:
    cap = available()
    print(f"{cap.mode}: {cap.reason}" if cap.ok else f"no: {cap.reason}")
    return 0 if cap.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
