"""Orchestration of one command: load → compile → observe → diff → apply.

The engine connects the pure core (loader, planner, diff) to a backend; the CLI only
parses arguments and prints. `resolve` turns the user's TOPOLOGY argument (a file, or
the name of a topology that is up) into a loaded topology.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable

from compiler.diff import Step, diff
from compiler.schedule import schedule
from model.errors import BadRequest, UnknownTopology, VispdError
from compiler.loader import load_topology
from model.schema import Topology
from compiler.plan import Plan
from compiler.planner import DaemonPaths, compile_plan
from compiler.resources import LinkDown, TunTap
from .state import TopologyState, rewrite_journal


def resolve(argument: str) -> tuple[Topology, str]:
    """(topology, source path) for a file path or the name of a topology that is up."""
    if os.path.exists(argument) or argument.endswith((".yaml", ".yml")):
        return load_topology(argument), argument
    source = TopologyState(argument).source()
    if source is None:
        raise UnknownTopology(f"'{argument}' is neither a topology file nor the name of a topology that is up")
    return load_topology(source), source


def warnings_for(topo: Topology) -> list[str]:
    """What `up` says about choices that work but deserve a second thought."""
    return [f"PPTP access for slice '{a.slice}' is unencrypted legacy (MS-CHAPv2, no MPPE): "
            "anyone on the path reads its traffic" for a in topo.access if a.type == "pptp"]


@dataclass
class Outcome:
    plan: Plan
    steps: list[Step] = field(default_factory=list)
    unowned: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def backend_options(state: TopologyState) -> dict:
    """What every backend of a topology needs to know about its state directory."""
    return {"journal": state.journal, "known_namespaces": state.journaled(),
            "run_dir": os.path.join(state.dir, "run"), "shells_file": state.lab_shells_file()}


def _backend(topology: str):
    from dataplane.kernel import KernelBackend  # imported late: the pure commands need no pyroute2

    state = TopologyState(topology)
    return KernelBackend(topology, **backend_options(state)), state


def topology_plan(topo: Topology, create_credentials: bool = False,
                  failed_links: frozenset[tuple[str, str]] | None = None) -> Plan:
    """The plan of `topo`, with daemon files and credentials under its state directory
    (credentials are made only when `create_credentials`: `up` does, the others read),
    and the substrate links taken down with `vispd link down` (or `failed_links`) down."""
    from .credentials import gather

    state = TopologyState(topo.name)
    credentials = gather(topo, state.dir, create_credentials)
    failed = state.failed_links() if failed_links is None else failed_links
    return compile_plan(topo, DaemonPaths.for_topology(state.dir, topo.name), credentials, failed)


def plan_changes(topo: Topology) -> Outcome:
    """What `up` would do now (observes the kernel, changes nothing)."""
    plan = topology_plan(topo)
    if os.geteuid() != 0:
        return Outcome(plan, diff([], plan.resources))
    backend, _ = _backend(topo.name)
    try:
        observed = backend.observe(plan.by_key())
        return Outcome(plan, diff(observed, plan.resources), list(backend.unowned))
    finally:
        backend.close()


def up(topo: Topology, source: str, progress: Callable[[Step], None] | None = None,
       make_backend: Callable[[Plan, TopologyState], object] | None = None) -> Outcome:
    """Build or reconcile `topo`; `make_backend(plan, state)` chooses another backend than
    the kernel's own (the Mininet lab does)."""
    plan = topology_plan(topo, create_credentials=True)
    if make_backend is None:
        backend, state = _backend(topo.name)
    else:
        state = TopologyState(topo.name)
        backend = make_backend(plan, state)
    paths = DaemonPaths.for_topology(state.dir, topo.name)
    os.makedirs(os.path.join(paths.sock_dir, "sockets"), exist_ok=True)
    with state.locked():
        state.set_source(source)
        try:
            observed = backend.observe(plan.by_key())
            _refuse_unowned(backend.unowned, plan)
            steps = diff(observed, plan.resources)
            if any(isinstance(r, TunTap) for r in plan.resources):
                from dataplane.tundev import grant_access

                grant_access()
            for _, batch in schedule(steps):
                backend.apply(batch, progress)
            rewrite_journal(state, backend.namespaces())
        finally:
            if make_backend is None:
                backend.close()
    return Outcome(plan, steps, list(backend.unowned), warnings_for(topo))


def _refuse_unowned(unowned: list[str], plan: Plan) -> None:
    clash = sorted(set(unowned) & set(plan.namespaces()))
    if clash:
        raise VispdError(
            "these namespaces exist but were not created by vispd; remove or rename them first: "
            + ", ".join(clash))


def down(name: str, progress: Callable[[Step], None] | None = None) -> Outcome:
    """Remove everything vispd owns for topology `name`, and nothing else."""
    backend, state = _backend(name)
    with state.locked():
        try:
            observed = backend.observe({})
            steps = diff(observed, [])
            for _, batch in schedule(steps):
                backend.apply(batch, progress)
            remaining = backend.namespaces()
        finally:
            backend.close()
    if remaining:
        raise VispdError(f"could not remove: {', '.join(remaining)}")
    state.forget()
    shutil.rmtree(DaemonPaths.for_topology(state.dir, name).sock_dir, ignore_errors=True)
    from dataplane.tundev import restore_access

    restore_access()
    return Outcome(Plan(name), steps, list(backend.unowned))


@dataclass
class LinkChange:
    """What `vispd link down|up` did: the steps applied and when (time.monotonic())."""

    link: tuple[str, str]
    down: bool
    steps: list[Step] = field(default_factory=list)
    changed_at: float = 0.0  # the link's state changed
    applied_at: float = 0.0  # every changed route and daemon is in place

    @property
    def routes_changed(self) -> int:
        return sum(1 for s in self.steps if s.resource.KIND == "route")


def substrate_link(topo: Topology, a: str, b: str) -> tuple[str, str]:
    """The sorted key of the substrate link between `a` and `b`, or a clear error."""
    key = (a, b) if a <= b else (b, a)
    if any(lk.key == key for lk in topo.links):
        return key
    nodes = {n.name for n in topo.nodes}
    unknown = [n for n in (a, b) if n not in nodes]
    if unknown:
        raise BadRequest(f"no node {', '.join(repr(n) for n in unknown)} in topology '{topo.name}'")
    neighbours = sorted(p for lk in topo.links if a in lk.key for p in lk.key if p != a)
    raise BadRequest(f"no substrate link between '{a}' and '{b}' ('{a}' is linked to {', '.join(neighbours) or 'nothing'})")


def set_link(topo: Topology, a: str, b: str, down: bool, backend=None) -> LinkChange:
    """Take the substrate link a-b down (or bring it back up) for real, and apply only what
    that changes: the link's two ends, the routes of `routing: static` slices that now take
    other paths, and daemons whose configuration follows those paths (the egress manager).
    The plan before and after are compared directly (the kernel is not re-read: `up`
    reconciles everything). Taking a link down happens first, the way a failure would;
    the new paths are computed after it. The new state is recorded before the kernel is
    touched, so a run killed midway leaves what `up` completes."""
    key = substrate_link(topo, a, b)
    state = TopologyState(topo.name)
    if state.source() is None:
        raise UnknownTopology(f"topology '{topo.name}' is not up")
    own_backend = backend is None
    if own_backend:
        backend, _ = _backend(topo.name)
    change = LinkChange(key, down)
    try:
        with state.locked():
            before = state.failed_links()
            after = (before | {key}) if down else (before - {key})
            old_plan = topology_plan(topo, failed_links=before)
            state.set_failed_links(after)
            first: list[Step] = []
            ends = compile_link_ends(old_plan, topo, key)
            if down and key not in before:
                first = [Step("create", r) for r in ends]
                backend.apply(first)
            change.changed_at = time.monotonic()  # down: the link is down; up: about to come up
            if not down and key in before:
                # Up: the link first, then the routes back onto it, once the slivers' devices
                # on it have carrier (the kernel raises it asynchronously; until then their
                # queue drops what the routes would send).
                first = [Step("delete", r) for r in ends]
                backend.apply(first)
                backend.wait_carrier(_stacked_on(old_plan, ends), timeout=1.0)
            new_plan = topology_plan(topo, failed_links=after)
            done = {s.resource.key for s in first}
            steps = [s for s in diff(old_plan.resources, new_plan.resources) if s.resource.key not in done]
            for _, batch in schedule(steps):
                backend.apply(batch)
            change.applied_at = time.monotonic()
            change.steps = first + steps
    finally:
        if own_backend:
            backend.close()
    return change


def _stacked_on(plan: Plan, ends: list[LinkDown]) -> list[tuple[str, str]]:
    """(namespace, device) of the link's two ends and of every macvlan stacked on them."""
    lowers = {(e.ns, e.ifname) for e in ends}
    return sorted(lowers | {(r.ns, r.ifname) for r in plan.resources
                            if r.KIND == "macvlan" and (r.lower_ns, r.lower_ifname) in lowers})


def compile_link_ends(plan: Plan, topo: Topology, key: tuple[str, str]) -> list[LinkDown]:
    """The two LinkDown resources of substrate link `key` (from the link's veth in `plan`)."""
    from model.naming import node_ns

    a, b = key
    veth = next(r for r in plan.resources if r.KIND == "veth" and r.ns == node_ns(topo.name, a)
                and r.peer_ns == node_ns(topo.name, b))
    return [LinkDown(node=a, ns=veth.ns, ifname=veth.ifname),
            LinkDown(node=b, ns=veth.peer_ns, ifname=veth.peer_ifname)]
