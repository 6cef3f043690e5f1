"""Can this machine run the BPF guard, and on which hook? (side effects: loads throwaway
programs, and attaches them in a private network namespace that vanishes with its process.)

`available()` answers once per process with a `Capability(ok, mode, reason)`:
1. bpf(2) works and the verifier accepts all three programs as BPF_PROG_TYPE_SCHED_CLS
   with their maps (the ingress guard calls bpf_redirect_peer: Linux 5.10+);
2. a hook exists: tcx (Linux 6.6+, preferred: cheaper per packet) or else clsact with
   cls_bpf in direct-action mode; found by attaching to the loopback of an anonymous
   namespace (`unshare --net python3 -m dataplane.bpf.detect --attach`), so no named
   namespace or device is ever created or left behind.
Where it says no, vispd keeps the nftables guard and u32 classification (`reason` says
why); `VISPD_BPF=off|tcx|clsact` overrides the choice (off: force the fallback).
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from . import hooks, loader, spec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"
PREFERENCE = ("tcx", "clsact")


@dataclass(frozen=True)
class Capability:
    ok: bool
    mode: str | None  # "tcx" | "clsact" | None (use the nftables guard)
    reason: str


def _sample_programs() -> list[spec.Program]:
    end = spec.SliceEnd(MAC_A, MAC_B, 1, own_ifname="lo")
    guard = spec.NodeGuard(ns="", devices=(spec.DeviceGuard("lo", (end,), ingress=True),))
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
    programs = [p for p in _sample_programs() if p.role != "o"]
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
    anonymous network namespace)."""
    if shutil.which("unshare") is None:
        return "no `unshare` binary (util-linux) to probe the hooks in a private namespace"
    proc = subprocess.run(["unshare", "--net", sys.executable, "-m", "dataplane.bpf.detect", "--attach", mode],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    if proc.returncode == 0:
        return None
    return proc.stdout.strip() or (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]


def _hook_in_scratch_namespace() -> tuple[str | None, str]:
    reasons = []
    for mode in PREFERENCE:
        reason = hook_works(mode)
        if reason is None:
            return mode, ""
        reasons.append(reason)
    return None, "; ".join(reasons)


@functools.cache
def available() -> Capability:
    wanted = os.environ.get("VISPD_BPF", "")
    if wanted == "off":
        return Capability(False, None, "VISPD_BPF=off")
    if os.geteuid() != 0:
        return Capability(False, None, "not root (loading BPF programs needs CAP_BPF and CAP_NET_ADMIN)")
    reason = _programs_load()
    if reason:
        return Capability(False, None, reason)
    if wanted in hooks.MODES:
        return Capability(True, wanted, f"VISPD_BPF={wanted}")
    mode, reason = _hook_in_scratch_namespace()
    if mode is None:
        return Capability(False, None, reason)
    return Capability(True, mode, f"BPF guard on {mode} hooks")


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--attach":
        reason = _attach_here(argv[1])
        if reason:
            print(reason)
        return 1 if reason else 0
    cap = available()
    print(f"{cap.mode}: {cap.reason}" if cap.ok else f"no: {cap.reason}")
    return 0 if cap.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
