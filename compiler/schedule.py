"""Group ordered diff steps into batches that a machine — and later, node agents — apply
(pure). A batch named after a node holds only that node's part of the plan, as a node
agent would apply it; batches are applied one after the other, each completely.

The order, make before break within each node:

1. the controller's removals (daemons in the host namespace, e.g. the egress manager: it
   needs every node, so it goes first and comes back last);
2. per node, the removals that must come first (not `may_wait`): devices and namespaces
   (a new one may take the same name), daemons (ports, sockets, files), shaping and
   guards, and addresses a new address on the same device would collide with;
3. the substrate's removals and creations;
4. per node, its creations and updates (shallowest phase first, routes most specific
   first), then the removals that waited (`may_wait`: routes, policy rules, neighbours,
   addresses no new one collides with), one batch per phase, deepest phase first, routes
   least specific first;
5. the controller's creations and updates.

Why it is safe to wait: the diff deletes a route, rule, neighbour or address only when its
key is no longer wanted (what is on a device that goes, goes with it), and the kernel keys
those by what the key holds (a route by table and prefix, a neighbour by device and
address, a rule by all its fields), so the new ones never collide with the old. The one
exception is an address: a new address in the subnet of an old primary on the same device
becomes its secondary, and deleting the primary takes its secondaries with it
(promote_secondaries is off in a new namespace), so such an old address goes first.

What it gives, per namespace and routing table, for every step sequence this emits (tests
simulate the FIB with longest-prefix match): an address routed before and after the change
is forwarded by its old route until its new one takes over, and by the new one from then
on — never by no route, never by a third. Creating the most specific routes first means a
new route takes traffic only once every more specific new route is in place; deleting old
routes least specific first means an old route keeps traffic only while it is still the
longest old match. Splitting the waiting removals by phase keeps a backend that gathers a
kind's steps into one batch (routes, one netlink batch per namespace) from deleting a
neighbour or address before the routes that use it.

Why each node breaks right after it makes, not after every node has made: an old route
through a link that has just failed carries nothing, and where it is more specific than its
replacement it would hold its addresses on the dead link until it goes (a pure schedule
cannot tell a dead device from a live one). Breaking per node keeps that no longer than
when every removal came first: the node's new routes and the end of its old ones are one
moment apart.
"""
from __future__ import annotations

from ipaddress import IPv4Interface, IPv4Network
from itertools import groupby
from operator import attrgetter

from .diff import Step
from .resources import Address, DeviceRef, Neighbour, Resource, Route, RoutingRule

Batch = tuple[str, list[Step]]
_PHASE = attrgetter("resource.PHASE")

# Kinds whose removal may wait until the node's new objects are in place: the kernel never
# confuses an old one with a new one of another key, and the old one serves traffic meanwhile.
WAITING_KINDS: tuple[type[Resource], ...] = (Route, RoutingRule, Neighbour)


def schedule(steps: list[Step]) -> list[Batch]:
    removals = [s for s in steps if s.action == "delete"]
    changes = [s for s in steps if s.action != "delete"]
    created = _created_networks(changes) if any(isinstance(s.resource, Address) for s in removals) else {}
    controller = [s for s in removals if _controller(s)]
    substrate = [s for s in removals if s.resource.substrate] + [s for s in changes if s.resource.substrate]
    node_removals = [s for s in removals if not s.resource.substrate and not _controller(s)]
    waiting = [s for s in node_removals if may_wait(s.resource, created)]
    batches: list[Batch] = [("controller", controller)] if controller else []
    batches += _per_node([s for s in node_removals if not may_wait(s.resource, created)])
    if substrate:
        batches.append(("substrate", substrate))
    node_changes = [s for s in changes if not s.resource.substrate and not _controller(s)]
    batches += _make_then_break(node_changes, waiting)
    controller_changes = [s for s in changes if _controller(s)]
    if controller_changes:
        batches.append(("controller", controller_changes))
    return batches


def may_wait(old: Resource, created: dict[DeviceRef, list[IPv4Network]]) -> bool:
    """Whether removing the node resource `old` may wait until its node's new objects are in place;
    `created`: the subnets of the addresses created on each device (`_created_networks`)."""
    if isinstance(old, WAITING_KINDS):
        return True
    if isinstance(old, Address):  # unless a new address on its device shares its subnet
        network = IPv4Interface(old.cidr).network
        return not any(network.overlaps(new) for new in created.get((old.ns, old.ifname), ()))
    return False


def _created_networks(changes: list[Step]) -> dict[DeviceRef, list[IPv4Network]]:
    created: dict[DeviceRef, list[IPv4Network]] = {}
    for step in changes:
        if isinstance(step.resource, Address):
            created.setdefault((step.resource.ns, step.resource.ifname), []).append(
                IPv4Interface(step.resource.cidr).network)
    return created


def _controller(step: Step) -> bool:
    return step.resource.node == ""  # e.g. the egress manager: needs every node ready


def _per_node(selected: list[Step]) -> list[Batch]:
    nodes: dict[str, list[Step]] = {}
    for step in selected:
        nodes.setdefault(step.resource.node, []).append(step)
    return [(f"node {node}", batch) for node, batch in sorted(nodes.items())]


def _most_specific_first(steps: list[Step]) -> list[Step]:
    """`steps` (in phase order) with its routes, where they stand, longest prefix first."""
    routes = [s for s in steps if type(s.resource) is Route]
    if len(routes) < 2:
        return steps
    ordered = iter(sorted(routes, key=lambda s: -int(s.resource.dst.rpartition("/")[2])))
    return [next(ordered) if type(s.resource) is Route else s for s in steps]


def _prefix_length(resource: Resource) -> int:
    return int(resource.dst.rpartition("/")[2]) if isinstance(resource, Route) else 0


def _make_then_break(making: list[Step], waiting: list[Step]) -> list[Batch]:
    """Per node: its creations and updates, then what waited — one batch per phase, deepest
    first (a backend may gather one kind's steps of a batch, e.g. a namespace's routes, and
    apply them after the shallower steps of that batch); routes least specific first."""
    made = {name: _most_specific_first(steps) for name, steps in _per_node(sorted(making, key=_PHASE))}
    broken = dict(_per_node(sorted(waiting, key=lambda s: (-s.resource.PHASE, _prefix_length(s.resource)))))
    batches: list[Batch] = []
    for name in sorted(made.keys() | broken.keys()):
        if name in made:
            batches.append((name, made[name]))
        for _, in_phase in groupby(broken.get(name, ()), key=lambda s: s.resource.PHASE):
            batches.append((name, list(in_phase)))
    return batches
