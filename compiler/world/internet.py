"""The lab's Internet (pure): namespace `vispd.T.+internet` holding the test host address
(203.0.113.10 by default) behind a BIRD router that peers with every emulated provider
over its transit /31 and announces the host's prefix, so replies follow BGP too."""
from __future__ import annotations

from model.naming import lab_ns

from ..daemons.bird import render_internet_bird
from ..providers.emulated import INTERNET, LAB_SYSCTLS, bird_daemon
from ..resources import Address, Netns


def plan_internet_namespace(ctx, parts) -> None:
    ns = lab_ns(ctx.name, INTERNET)
    parts.add(Netns(node="+" + INTERNET, ns=ns, role="lab", sysctls=LAB_SYSCTLS),
              Address(node="+" + INTERNET, ns=ns, ifname="lo", cidr=f"{ctx.topo.internet.host}/32"))


def plan_internet_router(ctx, parts, peers: list) -> None:
    """`peers`: (provider, Internet side address, provider side address) of each transit link."""
    conf = render_internet_bird(ctx.topo, peers)
    parts.add(bird_daemon(ctx.runtime, "+" + INTERNET, lab_ns(ctx.name, INTERNET), f"bird-{INTERNET}", conf))
