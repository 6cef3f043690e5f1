"""Link kinds, one module each (pure): how a substrate link's two end devices come to exist.

`LINK_KINDS` is the registry the validation and the planner ask, by a link's `kind`.
Adding a kind is adding its module and a line here (and its YAML keys to model.schema's
`Link`, if it brings any).
"""
from __future__ import annotations

from model.schema import Topology

from ..context import PlanContext
from ..resources import LinkDown
from ..runtime import Runtime
from .base import LinkKind
from .interfaces import Interfaces
from .veth_pair import VethPair

LINK_KINDS: dict[str, LinkKind] = {k.NAME: k for k in (VethPair(), Interfaces())}


def link_down_ends(topo: Topology, key: tuple[str, str]) -> list[LinkDown]:
    """The two LinkDown resources that take substrate link `key` (sorted node pair) down."""
    link = next(lk for lk in topo.links if lk.key == key)
    ctx = PlanContext(topo, Runtime.for_topology(topo.name))
    return [LinkDown(node=node, ns=ns, ifname=ifname)
            for node, ns, ifname in LINK_KINDS[link.kind].end_devices(link, ctx)]


__all__ = ["LINK_KINDS", "LinkKind", "link_down_ends"]
