"""Diff observed against desired resources into ordered steps (pure).

Rules:
* a desired resource with no observed counterpart is created;
* an observed resource with no desired counterpart is deleted (it carries our marker, or
  the backend would not have reported it);
* a resource whose content differs is updated in place (`MODE == "update"`) or deleted
  and created again (`MODE == "recreate"`, devices);
* what lives on a device that goes away (addresses, neighbours, routes, shaping, the
  macvlans stacked on it, the peer end of a veth) goes with it: it is not deleted on its
  own and, if still desired, it is created again; the node's isolation filter, whose
  hooks are bound to devices, is re-applied;
* what lives in a namespace that goes away is not deleted on its own.

Steps come out in an order the kernel accepts: deletions first, deepest phase first;
then creations and updates, shallowest phase first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .plan import Device, IsolationFilter, Netns, Resource, Veth


@dataclass(frozen=True)
class Step:
    action: str  # "create" | "delete" | "update"
    resource: Resource
    old: Resource | None = None

    def describe(self) -> str:
        sign = {"create": "+", "delete": "-", "update": "~"}[self.action]
        return f"{sign} {self.resource.describe()}"


def _device_of(resource: Resource) -> tuple[str, str] | None:
    ifname = getattr(resource, "ifname", None)
    return (resource.ns, ifname) if ifname else None


def _vanishing_devices(have: dict, want: dict) -> set[tuple[str, str]]:
    """Devices that will not survive the apply: deleted, recreated, or stacked on those."""
    vanishing: set[tuple[str, str]] = set()
    for key, old in have.items():
        if isinstance(old, Device) and (key not in want or (old != want[key] and old.MODE == "recreate")):
            vanishing.add((old.ns, old.ifname))
            if isinstance(old, Veth):
                vanishing.add((old.peer_ns, old.peer_ifname))
    changed = True
    while changed:  # macvlans die with their lower device
        changed = False
        for old in have.values():
            lower = (getattr(old, "lower_ns", None), getattr(old, "lower_ifname", None))
            if lower in vanishing and (old.ns, old.ifname) not in vanishing:
                vanishing.add((old.ns, old.ifname))
                changed = True
    return vanishing


def diff(observed: Iterable[Resource], desired: Iterable[Resource]) -> list[Step]:
    have = {r.key: r for r in observed}
    want = {r.key: r for r in desired}
    vanishing = _vanishing_devices(have, want)
    gone_ns = {r.ns for k, r in have.items() if isinstance(r, Netns) and k not in want}

    def survives(old: Resource) -> bool:
        return _device_of(old) not in vanishing and not (old.ns in gone_ns and not isinstance(old, Netns))

    deletes: list[Step] = []
    for key, old in have.items():
        if old.ns in gone_ns and not isinstance(old, Netns):
            continue  # goes with its namespace
        if key in want and survives(old):
            continue
        if not isinstance(old, Device) and _device_of(old) in vanishing:
            continue  # goes with its device
        if isinstance(old, Device) and (old.ns, old.ifname) in vanishing and not _owns(old, have, vanishing):
            continue  # a macvlan or veth peer end that dies with another device
        deletes.append(Step("delete", old))

    creates: list[Step] = []
    for key, new in want.items():
        old = have.get(key)
        if old is not None and not survives(old):
            old = None
        if old is None:
            creates.append(Step("create", new))
        elif old != new:
            creates.append(Step("update", new, old))
        elif isinstance(new, IsolationFilter) and any((new.ns, d) in vanishing for d in new.devices):
            creates.append(Step("update", new, old))

    deletes.sort(key=lambda s: (-s.resource.PHASE, s.resource.key))
    creates.sort(key=lambda s: (s.resource.PHASE, s.resource.key))
    return deletes + creates


def _owns(device: Device, have: dict, vanishing: set[tuple[str, str]]) -> bool:
    """True when `device` itself must be deleted (not just swept away by its lower device)."""
    if isinstance(device, Veth):
        return True
    lower = (getattr(device, "lower_ns", None), getattr(device, "lower_ifname", None))
    return lower not in vanishing


def is_substrate(resource: Resource) -> bool:
    """Node and lab namespaces and the links between them: what a lab harness (or the
    controller) lays down before any node agent works; everything else belongs to one node."""
    return isinstance(resource, Veth) or (isinstance(resource, Netns) and resource.role in ("node", "lab"))


def schedule(steps: list[Step]) -> list[tuple[str, list[Step]]]:
    """Group ordered steps into batches: the controller's removals (host-namespace daemons),
    each node's removals, the substrate's removals and creations, each node's creations and
    updates, then the controller's creations. A batch named after a node holds only that
    node's part of the plan, as a node agent would apply it."""
    def per_node(selected: list[Step]) -> list[tuple[str, list[Step]]]:
        nodes: dict[str, list[Step]] = {}
        for step in selected:
            nodes.setdefault(step.resource.node, []).append(step)
        return [(f"node {node}", batch) for node, batch in sorted(nodes.items())]

    def controller(step: Step) -> bool:
        return step.resource.node == ""  # e.g. the egress manager: needs every node ready

    removals = [s for s in steps if s.action == "delete"]
    changes = [s for s in steps if s.action != "delete"]
    substrate = [s for s in removals if is_substrate(s.resource)] + [
        s for s in changes if is_substrate(s.resource)]
    batches: list[tuple[str, list[Step]]] = []
    if any(controller(s) for s in removals):
        batches.append(("controller", [s for s in removals if controller(s)]))
    batches += per_node([s for s in removals if not is_substrate(s.resource) and not controller(s)])
    if substrate:
        batches.append(("substrate", substrate))
    batches += per_node([s for s in changes if not is_substrate(s.resource) and not controller(s)])
    if any(controller(s) for s in changes):
        batches.append(("controller", [s for s in changes if controller(s)]))
    return batches
