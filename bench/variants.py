"""Diagnostic variants of the sliced path (`--variants`), to see where its cost goes.

Each variant changes the bench's own line topology for one run and puts it back after,
from the plan, exactly as vispd renders it:

* `sliced-noguard`: the node's guard removed from the four node namespaces (the nftables
  table, or the BPF guard's programs — which also classify: without them every frame
  falls into HTB's default class and borrows);
* `sliced-noguard-plainhtb`: that, and each substrate device's HTB replaced by the plain
  path's (no classifier, `default 10` into a single guarantee class).

What is left in the last one is macvlan demultiplexing alone.

I/O (root): changes the guard and filters of a topology the bench built.
"""
from __future__ import annotations

import subprocess

from bench import plainpath
from compiler.resources import BpfGuard, IsolationFilter, Shaping, guard as nft, owner_marker, shaping as tc
from dataplane import netns
from dataplane.bpf import node as bpf_node, spec as bpf_spec


def _run(argv: list[str], stdin: str, ns: str | None = None) -> None:
    if ns is None:
        subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True)
        return
    with netns.entered(ns):
        subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True)


def _guards(plan) -> list[IsolationFilter | BpfGuard]:
    return [r for r in plan.resources if isinstance(r, (IsolationFilter, BpfGuard))]


def _shapings(plan) -> list[Shaping]:
    return [r for r in plan.resources if isinstance(r, Shaping)]


def drop_guard(plan) -> None:
    for guard in _guards(plan):
        if isinstance(guard, BpfGuard):
            bpf_node.delete(guard.ns, guard.hook)
        else:
            _run(["nft", "-f", "-"], nft.render_delete(), guard.ns)


def restore_guard(plan) -> None:
    for guard in _guards(plan):
        if isinstance(guard, BpfGuard):
            bpf_node.apply(bpf_spec.node_guard(guard.ns, guard.devices), guard.hook)
        else:
            _run(["nft", "-f", "-"], nft.render(guard, owner_marker(plan.topology)), guard.ns)


def plain_shaping(plan, capacity: int, rate: int) -> None:
    for s in _shapings(plan):
        lines = [f"qdisc del dev {s.ifname} root"] + plainpath.shaping_lines(s.ifname, capacity, rate)
        _run(["tc", "-n", s.ns, "-batch", "-"], "\n".join(lines) + "\n")


def restore_shaping(plan) -> None:
    for s in _shapings(plan):
        lines = [f"qdisc del dev {s.ifname} root"] + tc.render(s)
        _run(["tc", "-n", s.ns, "-batch", "-"], "\n".join(lines) + "\n")


def hooks(plan, capacity: int, rate: int) -> dict[str, tuple]:
    """name -> (prepare, restore) callables."""
    def strip_all() -> None:
        drop_guard(plan)
        plain_shaping(plan, capacity, rate)

    def restore_all() -> None:
        restore_shaping(plan)
        restore_guard(plan)

    return {
        "sliced-noguard": (lambda: drop_guard(plan), lambda: restore_guard(plan)),
        "sliced-noguard-plainhtb": (strip_all, restore_all),
    }
