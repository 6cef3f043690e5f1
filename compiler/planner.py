"""Compile a validated `Topology` into a `Plan` (pure: no root, no I/O): `compile_plan(topology,
runtime, state)`. The same topology, runtime and state give the same plan on any machine.

The plan is the vISP's — the substrate (node namespaces, links by their kinds), the slices'
slivers and routing, BGP egress, access points — shaped and guarded, plus the lab world
where the topology asks for emulated parts:

* node namespace `vispd.T.N` holds the substrate devices `to-PEER`, each shaped by HTB
  (capacity; a class per slice: guarantee as rate, capacity as ceiling) and guarded by an
  ingress filter that admits only frames whose source and destination MAC belong to the
  same slice;
* sliver namespace `vispd.T.N.S` holds the slice's interfaces `v-PEER`: private-mode
  macvlans on the substrate device, demultiplexed by MAC with no encapsulation, ARP off
  and static neighbours (so no broadcast is ever needed), a loopback address, the slice's
  TUN/TAP pseudo-devices, and its routes.
"""
from __future__ import annotations

from model.schema import Topology

from .access import plan_access
from .context import ControllerState, PlanContext, PlanningError, PlanParts
from .border import SliceLink
from .delay import plan_delays
from .egress import plan_egress
from .plan import Plan
from .guards import node_guards, without_matches
from .resources import Shaping
from .runtime import Runtime
from .slivers import plan_slices
from .substrate import plan_substrate
from .world import needs_world, plan_lab_world

__all__ = ["compile_plan", "plan_visp", "PlanningError", "ControllerState", "Runtime"]


def compile_plan(topo: Topology, runtime: Runtime | None = None, state: ControllerState | None = None,
                 world: bool = True) -> Plan:
    """The plan of `topo` on a machine described by `runtime` (default: a neutral one) with
    the controller's `state`; `world=False` leaves the lab world out even where the
    topology asks for emulated parts."""
    ctx = PlanContext(topo, runtime or Runtime.for_topology(topo.name), state)
    parts = PlanParts()
    links = _plan_visp_parts(ctx, parts)
    if world and needs_world(ctx):
        plan_lab_world(ctx, parts)
    return _assemble(ctx, parts, links)


def plan_visp(topo: Topology, runtime: Runtime | None = None, state: ControllerState | None = None) -> Plan:
    """The vISP alone, without the lab world."""
    return compile_plan(topo, runtime, state, world=False)


def _plan_visp_parts(ctx: PlanContext, parts: PlanParts) -> list[SliceLink]:
    plan_substrate(ctx, parts)
    plan_slices(ctx, parts)
    plan_delays(ctx, parts)
    links = plan_egress(ctx, parts)
    plan_access(ctx, parts)
    return links


def _assemble(ctx: PlanContext, parts: PlanParts, links: list[SliceLink]) -> Plan:
    topo = ctx.topo
    plan = Plan(topology=topo.name, resources=list(parts.resources), slivers=parts.slivers,
                access_points=parts.access_points, routing={sl.name: sl.routing for sl in topo.slices},
                failed_links=frozenset(ctx.failed_links))
    if topo.providers:
        plan.internet_host = str(topo.internet.host)
        plan.egress_slices = [sl.name for sl in topo.slices if sl.egress]
    guards, classified = node_guards(ctx, parts)  # nftables, or BPF that classifies too
    for (ns, ifname), (node, capacity) in parts.shaped.items():
        classes = tuple(parts.classes.get((ns, ifname), ()))
        if (ns, ifname) in classified:
            classes = without_matches(classes)
        plan.resources.append(Shaping(node=node, ns=ns, ifname=ifname, capacity=capacity, classes=classes))
    plan.resources.extend(guards)
    _check_unique_keys(plan)
    return plan


def _check_unique_keys(plan: Plan) -> None:
    seen: dict[tuple, object] = {}
    for resource in plan.resources:
        if resource.key in seen:
            raise PlanningError(f"two resources share the key {resource.key}: "
                                f"{seen[resource.key]} and {resource}")
        seen[resource.key] = resource
