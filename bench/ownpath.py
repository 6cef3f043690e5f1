"""The `routing: own` slice's routes on the bench's line (side effects, root; issue 14).

vispd installs no routes in a `routing: own` slice's slivers: the slice's own software
does. On the bench's line (bench/topogen.py line_topology) that software would write what
`routing: static` gets: per sliver, a /32 route to every other sliver's loopback via the
neighbour toward it, from its own loopback. `route_line(plan, slice_name)` writes exactly
that, as root in each sliver (`ip -n SLIVER -batch`): the routes and so the data path are
the same as the slice's own program would make (tests/netns/test_own_slices.py shows the
slice writing them itself); the bench only saves the detour through `vispd exec`.
"""
from __future__ import annotations

import subprocess

NODES = ("a", "b", "c", "d")


def route_lines(plan, slice_name: str, node: str) -> list[str]:
    """ip batch for the slice's sliver on `node`: a route to every other loopback."""
    here = plan.sliver(slice_name, node)
    i = NODES.index(node)
    lines = []
    for j, other in enumerate(NODES):
        if j == i:
            continue
        hop = NODES[i + 1] if j > i else NODES[i - 1]
        via = next(cidr.split("/")[0] for ifname, cidr, _ in plan.sliver(slice_name, hop).interfaces
                   if ifname == f"v-{node}")
        lines.append(f"route replace {plan.sliver(slice_name, other).loopback}/32 via {via} src {here.loopback}")
    return lines


def route_line(plan, slice_name: str) -> None:
    for node in NODES:
        ns = plan.sliver(slice_name, node).ns
        script = "\n".join(route_lines(plan, slice_name, node)) + "\n"
        proc = subprocess.run(["ip", "-n", ns, "-batch", "-"], input=script, text=True, capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"routes of {slice_name} in {ns}: {proc.stderr.strip()}")
