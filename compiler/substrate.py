"""The substrate (pure): one namespace per node, and each link's two end devices (through
its link kind), shaped to the link's capacity and watched by the node's guard."""
from __future__ import annotations

from .border import BORDER_NODE_SYSCTLS, egress_nodes
from .context import PlanContext, PlanParts
from .links import LINK_KINDS
from .resources import Netns

NODE_SYSCTLS = (
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("net.ipv4.ip_forward", "0"),
)


def plan_substrate(ctx: PlanContext, parts: PlanParts) -> None:
    borders = set(egress_nodes(ctx))
    for node in ctx.topo.nodes:
        sysctls = BORDER_NODE_SYSCTLS if node.name in borders else NODE_SYSCTLS
        parts.add(Netns(node=node.name, ns=ctx.node_ns(node.name), role="node", sysctls=sysctls))
    for link in ctx.topo.links:
        kind = LINK_KINDS[link.kind]
        kind.plan(link, ctx, parts)
        for node, ns, device in kind.end_devices(link, ctx):
            parts.shape(node, ns, device, link.bandwidth)
            parts.guard(node, device)
