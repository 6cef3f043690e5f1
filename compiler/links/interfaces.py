"""A substrate link on the machine's own interfaces (pure): `interfaces: {NODE_A: NAME,
NODE_B: NAME}` — the MPLS circuit (or any layer-2 path) ends on real ports, and each end's
interface is borrowed into its node's namespace as `to-PEER` (compiler.resources.adopted)
with the link's MTU, and given back as it was found on `down`. Everything stacked on it —
the slices' private macvlans, HTB classes, the node's guard — is planned as on a veth pair.

Kind `interfaces`, implied when a link gives `interfaces:`.
"""
from __future__ import annotations

from model.schema import INTERFACES_KIND, Link

from ..context import PlanContext, PlanParts
from ..resources import Adopted
from .base import LinkKind


class Interfaces(LinkKind):
    NAME = INTERFACES_KIND

    def check(self, link: Link, path: tuple, say) -> None:
        if not link.interfaces:
            say(path + ("kind",), f"kind {INTERFACES_KIND} needs `interfaces: {{{link.between[0]}: NAME, "
                f"{link.between[1]}: NAME}}`: the machine's interface at each end")
            return
        nodes, given = set(link.between), set(link.interfaces)
        for node in sorted(given - nodes):
            say(path + ("interfaces", node), f"'{node}' is not an end of this link ({link.between[0]}–"
                f"{link.between[1]}): name the interface of each end")
        for node in [n for n in link.between if n not in given]:
            say(path + ("interfaces",), f"no interface for '{node}': give one for each end of the link")
        names = list(link.interfaces.values())
        if len(names) == 2 and names[0] == names[1]:
            say(path + ("interfaces",), f"both ends on interface {names[0]}: a link needs two interfaces")

    def plan(self, link: Link, ctx: PlanContext, parts: PlanParts) -> None:
        for node, ns, ifname in self.end_devices(link, ctx):
            parts.add(Adopted(node=node, ns=ns, ifname=ifname, original=link.interfaces[node], mtu=link.mtu))
        self.plan_failure(link, ctx, parts)
