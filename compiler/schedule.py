"""Group ordered diff steps into batches that a machine — and later, node agents — apply
(pure): the controller's removals (daemons in the host namespace), each node's removals,
the substrate's removals and creations, each node's creations and updates, then the
controller's creations. A batch named after a node holds only that node's part of the
plan, as a node agent would apply it."""
from __future__ import annotations

from .diff import Step


def _per_node(selected: list[Step]) -> list[tuple[str, list[Step]]]:
    nodes: dict[str, list[Step]] = {}
    for step in selected:
        nodes.setdefault(step.resource.node, []).append(step)
    return [(f"node {node}", batch) for node, batch in sorted(nodes.items())]


def _controller(step: Step) -> bool:
    return step.resource.node == ""  # e.g. the egress manager: needs every node ready


def schedule(steps: list[Step]) -> list[tuple[str, list[Step]]]:
    removals = [s for s in steps if s.action == "delete"]
    changes = [s for s in steps if s.action != "delete"]
    substrate = [s for s in removals if s.resource.substrate] + [s for s in changes if s.resource.substrate]
    batches: list[tuple[str, list[Step]]] = []
    if any(_controller(s) for s in removals):
        batches.append(("controller", [s for s in removals if _controller(s)]))
    batches += _per_node([s for s in removals if not s.resource.substrate and not _controller(s)])
    if substrate:
        batches.append(("substrate", substrate))
    batches += _per_node([s for s in changes if not s.resource.substrate and not _controller(s)])
    if any(_controller(s) for s in changes):
        batches.append(("controller", [s for s in changes if _controller(s)]))
    return batches
