"""Apply, observe and delete a node namespace's BPF guard (side effects).

    changed = apply(guard, mode)      # guard: spec.NodeGuard; mode: "tcx" | "clsact"
    todo = pending(guard, mode)       # what apply would change ([]: the kernel matches)
    found = observe(ns, mode)         # {(device, hook): (role, digest)}
    removed = delete(ns, mode)
    maps = contents(ns, mode, device, hook)

`apply` is idempotent: a program whose name (role + digest of its maps or constants)
already sits on its hook is left alone; a differing one is swapped atomically (tcx
BPF_F_REPLACE, or cls_bpf `filter replace`: never a moment without a guard); ours on
hooks the guard no longer names are removed. Only programs named `vispd<role><digest>`
are ever touched: in a node namespace (which belongs to one topology) those are vispd's.
Own links are attached before the ingress guards that hand frames to them.
"""
from __future__ import annotations

import os
import socket

from dataplane import netns

from . import hooks as hooks_mod, loader, spec

HOOKS = ("ingress", "egress")


def _ours_here(hooks) -> dict[tuple[str, str], str]:
    """(device, hook) -> name of our program there, in the current namespace."""
    found = {}
    for _, ifname in socket.if_nameindex():
        for hook in HOOKS:
            for name in hooks.names(ifname, hook):
                if spec.parse_program_name(name):
                    found[(ifname, hook)] = name
    return found


def _ifindex(ifname: str) -> int:
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise LookupError(f"no device {ifname} in this namespace (create it before its guard)") from None


def _changes(hooks, guard: spec.NodeGuard) -> tuple[list[tuple[spec.Program, str | None]], dict]:
    """(programs to load, each with the name of ours it replaces), (ours to remove)."""
    current = _ours_here(hooks)
    load = []
    for program in spec.programs(guard, _ifindex):
        have = current.pop((program.ifname, program.hook), None)
        if have != program.name:
            load.append((program, have))
    return load, current


def apply(guard: spec.NodeGuard, mode: str) -> list[str]:
    """Bring the namespace to `guard`; returns 'device/hook' for every program (re)loaded
    or removed (empty when nothing differed)."""
    problems = spec.check(guard)
    if problems:
        raise ValueError(f"BPF guard of {guard.ns}: " + "; ".join(problems))
    changed = []
    with netns.entered(guard.ns), hooks_mod.opened(mode) as hooks:
        load, stale = _changes(hooks, guard)
        for program, have in load:
            fd = loader.load(program)
            try:
                hooks.attach(program.ifname, program.hook, fd, program.name, replacing=have)
            finally:
                os.close(fd)
            changed.append(f"{program.ifname}/{program.hook}")
        for (ifname, hook), name in stale.items():
            hooks.detach(ifname, hook, name)
            changed.append(f"{ifname}/{hook} removed")
    return changed


def pending(guard: spec.NodeGuard, mode: str) -> list[str]:
    """What `apply` would change, without changing anything ([] when the kernel matches):
    the backend's observe step and `vispd status` can use it."""
    with netns.entered(guard.ns), hooks_mod.opened(mode) as hooks:
        load, stale = _changes(hooks, guard)
    return ([f"{p.ifname}/{p.hook}" for p, _ in load]
            + [f"{ifname}/{hook} removed" for ifname, hook in stale])


def observe(ns: str, mode: str) -> dict[tuple[str, str], tuple[str, str]]:
    """Our programs in namespace `ns`: (device, hook) -> (role, digest)."""
    with netns.entered(ns), hooks_mod.opened(mode) as hooks:
        return {key: spec.parse_program_name(name) for key, name in _ours_here(hooks).items()}


def delete(ns: str, mode: str) -> list[str]:
    """Remove every program of ours in namespace `ns`; returns 'device/hook' of each."""
    removed = []
    with netns.entered(ns), hooks_mod.opened(mode) as hooks:
        for (ifname, hook), name in _ours_here(hooks).items():
            hooks.detach(ifname, hook, name)
            removed.append(f"{ifname}/{hook}")
    return removed


def contents(ns: str, mode: str, ifname: str, hook: str) -> dict[str, dict[bytes, bytes]]:
    """The maps behind our program on (device, hook): map name -> entries."""
    with netns.entered(ns), hooks_mod.opened(mode) as hooks:
        for name, prog_id in hooks.prog_ids(ifname, hook).items():
            if spec.parse_program_name(name):
                return loader.read_maps(prog_id)
    return {}
