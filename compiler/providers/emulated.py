"""The lab's emulated provider (pure): a BIRD 2 router (or FRR, `lab-daemon: frr`) in its
own namespace `vispd.T.+PROVIDER`, joined to the egress node by a veth (the access link
`x-PROVIDER`, fixed MACs on both ends), holding what a commercial ISP sells: one eBGP session
with the vISP's AS, to the border router in the node's namespace (the first /31 of the
provider's `peering`: the provider .0, the border .1). It exports what it learned from the
Internet and its `lab-routes` generated table, holds a session to the lab's Internet router
over a transit /31, and runs a kernel protocol so it really forwards.
"""
from __future__ import annotations

import signal
from ipaddress import IPv4Network

from model.naming import access_ifname, lab_ns, mac_address, short_node_name, substrate_ifname
from model.schema import Provider

from ..bfd import provider_bfd
from ..daemons.bird import BorderSession, render_provider_bird, render_provider_frr
from ..resources import Address, Daemon, Netns, Veth
from .base import ProviderKind

INTERNET = "internet"
BGP_LISTEN = ("tcp", "0.0.0.0", 179)
LAB_SYSCTLS = (
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
)


def internet_device(provider: str) -> str:
    """The Internet router's device toward `provider`."""
    return "to-" + short_node_name(provider, None, 12)


class Emulated(ProviderKind):
    NAME = "emulated"
    EMULATED = True

    def session_addresses(self, provider: Provider, index: int, ctx) -> tuple[str, str]:
        pair = next(provider_peering(index, provider).subnets(new_prefix=31))
        return f"{pair.network_address + 1}/31", str(pair.network_address)

    def plan_world(self, provider: Provider, index: int, ctx, parts) -> tuple:
        host, pns = "+" + provider.name, lab_ns(ctx.name, provider.name)
        prov_dev = substrate_ifname(provider.node, ctx.sites[provider.node])
        local, peer = self.session_addresses(provider, index, ctx)
        parts.add(Netns(node=host, ns=pns, role="lab", sysctls=LAB_SYSCTLS),
                  Veth(node=provider.node, ns=ctx.node_ns(provider.node), ifname=access_ifname(provider.name),
                       peer_ns=pns, peer_ifname=prov_dev, mac=mac_address(ctx.name, "access", provider.name, "node"),
                       peer_mac=mac_address(ctx.name, "access", provider.name, "provider")),
                  Address(node=host, ns=pns, ifname=prov_dev, cidr=f"{peer}/31"))
        parts.shape(host, pns, prov_dev, provider.bandwidth)
        transit = list(ctx.topo.internet.transit.subnets(new_prefix=31))[index]
        prov_transit, inet_transit = str(transit.network_address), str(transit.network_address + 1)
        inet_ns, inet_dev = lab_ns(ctx.name, INTERNET), internet_device(provider.name)
        parts.add(Veth(node=host, ns=pns, ifname="to-inet", peer_ns=inet_ns, peer_ifname=inet_dev),
                  Address(node=host, ns=pns, ifname="to-inet", cidr=f"{prov_transit}/31"),
                  Address(node="+" + INTERNET, ns=inet_ns, ifname=inet_dev, cidr=f"{inet_transit}/31"))
        border = local.split("/")[0]
        parts.add(_router(ctx, provider, pns, peer, border, prov_transit, inet_transit))
        return provider, inet_transit, prov_transit


def provider_peering(index: int, provider: Provider) -> IPv4Network:
    """The provider's access-link prefix: as declared, else the index-th /28 of 192.0.2.0/24."""
    if provider.peering is not None:
        return provider.peering
    return list(IPv4Network("192.0.2.0/24").subnets(new_prefix=28))[index]


def _router(ctx, provider: Provider, pns: str, local: str, border: str, local_transit: str,
            inet_transit: str) -> Daemon:
    runtime, host = ctx.runtime, "+" + provider.name
    session = BorderSession(local=local, border=border, vasn=ctx.topo.asn)
    bfd = provider_bfd(provider)  # the same timers as the border's bfdd
    if provider.lab_daemon == "frr":  # zebra + bgpd (+ bfdd) under one supervisor (dataplane/frr.py)
        name = f"frr-{provider.name}"
        confs = render_provider_frr(ctx.topo, provider, session, local_transit, inet_transit, bfd)
        daemons = ("--daemons", "zebra,bgpd,bfdd") if bfd is not None else ()
        return Daemon(node=host, ns=pns, name=name,
                      argv=runtime.module_command("dataplane.frr", "--conf-dir", runtime.run_dir, "--name", name,
                                                  "--vty-dir", runtime.socket(name), *daemons),
                      env=runtime.module_env(), listens=(BGP_LISTEN,),
                      files=tuple((f"{name}.{daemon}.conf", text) for daemon, text in sorted(confs.items())))
    name = f"bird-{provider.name}"
    conf = render_provider_bird(ctx.topo, provider, session, local_transit, inet_transit, bfd)
    return bird_daemon(runtime, host, pns, name, conf)


def bird_daemon(runtime, node: str, ns: str, name: str, conf: str) -> Daemon:
    """BIRD in the foreground with its config, control socket and PID file (SIGHUP reloads);
    it serves BGP on port 179 and its control socket."""
    control = runtime.socket(f"{name}.ctl")
    return Daemon(node=node, ns=ns, name=name,
                  argv=("bird", "-f", "-c", runtime.run_file(f"{name}.conf"), "-s", control,
                        "-P", runtime.run_file(f"{name}.birdpid")),
                  files=((f"{name}.conf", conf),), reload_signal=signal.SIGHUP,
                  listens=(BGP_LISTEN, ("unix", control, 0)))
