"""`vispd link down|up`: take a substrate link down for real, or bring it back, and apply
only what that changes. Failed links are controller state (the topology's `failed-links`
file), recorded before the kernel is touched, which the planner takes as input.

I/O: the failed-links state and the kernel, through a backend.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from compiler.diff import Step, diff
from compiler.links import link_down_ends
from compiler.plan import Plan
from compiler.resources import LinkDown, Macvlan
from compiler.schedule import schedule
from model.errors import BadRequest, UnknownTopology
from model.schema import Topology

from .engine import kernel_backend, topology_plan
from .state import TopologyState


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
    """Take the substrate link a-b down (or bring it back up) and apply only what that
    changes: the link's two ends, the routes of `routing: static` slices that now take other
    paths, and daemons whose configuration follows those paths (the egress manager). The
    plans before and after are compared directly (the kernel is not re-read: `up`
    reconciles everything). Taking a link down happens first, the way a failure would; the
    new paths are computed after it."""
    key = substrate_link(topo, a, b)
    state = TopologyState(topo.name)
    if state.source() is None:
        raise UnknownTopology(f"topology '{topo.name}' is not up")
    own_backend = backend is None
    if own_backend:
        backend, _ = kernel_backend(topo.name)
    try:
        with state.locked():
            return _change(topo, key, down, state, backend)
    finally:
        if own_backend:
            backend.close()


def _change(topo: Topology, key: tuple[str, str], down: bool, state: TopologyState, backend) -> LinkChange:
    change = LinkChange(key, down)
    before = state.failed_links()
    after = (before | {key}) if down else (before - {key})
    old_plan = topology_plan(topo, failed_links=before)
    state.set_failed_links(after)  # recorded first: a run killed midway leaves what `up` completes
    ends = link_down_ends(topo, key)
    first: list[Step] = []
    if down and key not in before:
        first = [Step("create", r) for r in ends]
        backend.apply(first)
    change.changed_at = time.monotonic()  # down: the link is down; up: about to come up
    if not down and key in before:
        # Up: the link first, then the routes back onto it, once the slivers' devices on it
        # have carrier (the kernel raises it asynchronously; until then their queue drops
        # what the routes would send).
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
    return change


def _stacked_on(plan: Plan, ends: list[LinkDown]) -> list[tuple[str, str]]:
    """(namespace, device) of the link's two ends and of every device stacked on them."""
    lowers = {(e.ns, e.ifname) for e in ends}
    return sorted(lowers | {(r.ns, r.ifname) for r in plan.resources
                            if isinstance(r, Macvlan) and r.stacked_on in lowers})
