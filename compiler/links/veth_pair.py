"""The lab's substrate link (pure): a veth pair between the two node namespaces, made by one
request (one Mininet link in `vispd lab`), standing for the MPLS tunnel a PoP would have.
Kind `mpls-tunnel`, the default."""
from __future__ import annotations

from model.schema import Link

from ..context import PlanContext, PlanParts
from ..resources import Veth
from .base import LinkKind


class VethPair(LinkKind):
    NAME = "mpls-tunnel"

    def check(self, link: Link, path: tuple, say) -> None:
        if link.interfaces:
            say(path + ("interfaces",), f"interfaces: are the ends of a link of kind interfaces (implied when "
                f"`kind:` is left out); kind {self.NAME} is a veth pair vispd makes")

    def plan(self, link: Link, ctx: PlanContext, parts: PlanParts) -> None:
        (a, a_ns, a_if), (b, b_ns, b_if) = self.end_devices(link, ctx)
        parts.add(Veth(node=a, ns=a_ns, ifname=a_if, mtu=link.mtu, peer_ns=b_ns, peer_ifname=b_if))
        self.plan_failure(link, ctx, parts)
