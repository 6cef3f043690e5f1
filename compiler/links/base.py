"""What a link kind is (pure): how one substrate link between two nodes comes to exist.

A link kind makes sure that each end's node namespace holds a device for the link, named
`to-PEER` (PlanContext.substrate_if), and takes both ends down while the link is failed
(`vispd link down`); everything stacked on that device — the slices' macvlans, the HTB
classes, the node's guard — is planned the same way whatever the kind.
"""
from __future__ import annotations

from typing import ClassVar

from model.schema import Link

from ..context import PlanContext, PlanParts
from ..resources import LinkDown


class LinkKind:
    NAME: ClassVar[str] = ""

    def check(self, link: Link, path: tuple, say) -> None:
        """Rules of this kind beyond the schema; `say(path, message)` reports a problem."""

    def plan(self, link: Link, ctx: PlanContext, parts: PlanParts) -> None:
        """Add what makes the link's two end devices exist."""
        raise NotImplementedError

    def end_devices(self, link: Link, ctx: PlanContext) -> list[tuple[str, str, str]]:
        """(node, namespace, device) of both ends."""
        a, b = link.key
        return [(a, ctx.node_ns(a), ctx.substrate_if(b)), (b, ctx.node_ns(b), ctx.substrate_if(a))]

    def plan_failure(self, link: Link, ctx: PlanContext, parts: PlanParts) -> None:
        """Both ends administratively down while the link is failed."""
        if link.key in ctx.failed_links:
            parts.add(*(LinkDown(node=node, ns=ns, ifname=ifname) for node, ns, ifname in self.end_devices(link, ctx)))
