"""BFD between each egress node's border router and its providers (pure planning).

A provider that stops answering without a NOTIFICATION (a cut fibre, a hung router) is
found by BGP only when the hold timer runs out (9 s); BFD (RFC 5880/5881, single hop on
the access link) finds it in interval x multiplier (100 ms x 3 by default). Per egress
node with a provider using BFD, `with_bfd` plans FRR's bfdd in the node's namespace (under
dataplane/frr.py, the supervisor that also runs the lab's FRR providers), a peer per such
provider, and adds the `bfd` section (compiler/daemons/bfd.py) to the border router's
configuration, so its helper follows those peers on bfdd's control socket and drops a
provider's session the moment BFD says it is down (bgp/border.py).

The knob, per provider (`provider_bfd`): BFD is on by default (100 ms x 3); `bfd: false`
switches it off (a provider that does not run BFD), `bfd: {interval: 50ms, multiplier: 5}`
sets the timers. The lab's emulated providers use the same timers on their side.
Until model.schema.Provider has the field, every provider gets the default.
"""
from __future__ import annotations

import dataclasses
import json

from .daemons.bfd import UDP_PORT, BfdPeer, BfdTimers, border_section, render_border_bfdd
from .resources import Daemon

DEFAULT_TIMERS = BfdTimers(interval_ms=100, multiplier=3)


def provider_bfd(provider) -> BfdTimers | None:
    """The BFD timers of a provider's session, None when it runs without BFD.

    Reads the provider's `bfd` field: absent, None or True -> the default; False -> off;
    an object (or mapping) with `interval` (microseconds, as model.linkprops parses
    durations) and `multiplier` -> those timers."""
    setting = getattr(provider, "bfd", None)
    if setting is None or setting is True:
        return DEFAULT_TIMERS
    if setting is False:
        return None
    get = setting.get if isinstance(setting, dict) else lambda key, default: getattr(setting, key, default)
    interval_us = get("interval", DEFAULT_TIMERS.interval_ms * 1000)
    if interval_us % 1000:
        raise ValueError(f"provider {provider.name}: BFD interval must be whole milliseconds")
    return BfdTimers(interval_ms=interval_us // 1000, multiplier=get("multiplier", DEFAULT_TIMERS.multiplier))


def bfd_peers(ctx, ends) -> list[BfdPeer]:
    """The border's BFD peers among the providers `ends` (compiler.border.ProviderEnd) of a node."""
    peers = []
    for end in ends:
        timers = provider_bfd(ctx.topo.provider(end.name))
        if timers is not None:
            peers.append(BfdPeer(end.name, end.peer, end.local_cidr.split("/")[0], timers))
    return peers


def bfdd_name(node: str) -> str:
    return f"bfdd-{node}"


def control_socket(ctx, node: str) -> str:
    """bfdd's control socket: in its vty directory, which bfdd (user frr) may write."""
    return ctx.runtime.socket(f"{bfdd_name(node)}/bfdd.sock")


def with_bfd(ctx, node: str, ends, border: Daemon) -> tuple[Daemon, ...]:
    """The border router's daemon of `node` (with a `bfd` section added to its JSON
    configuration) and the node's bfdd; the border alone when no provider there uses BFD."""
    peers = bfd_peers(ctx, ends)
    if not peers:
        return (border,)
    return _with_section(border, border_section(control_socket(ctx, node), peers)), bfdd_daemon(ctx, node, peers)


def bfdd_daemon(ctx, node: str, peers: list[BfdPeer]) -> Daemon:
    """FRR's bfdd in the node's namespace, alone (no zebra), a single-hop peer per provider."""
    runtime, name, control = ctx.runtime, bfdd_name(node), control_socket(ctx, node)
    return Daemon(node=node, ns=ctx.node_ns(node), name=name,
                  argv=runtime.module_command("dataplane.frr", "--conf-dir", runtime.run_dir, "--name", name,
                                              "--vty-dir", runtime.socket(name), "--daemons", "bfdd",
                                              "--bfdctl", control),
                  env=runtime.module_env(), listens=(("unix", control, 0), ("udp", "0.0.0.0", UDP_PORT)),
                  files=((f"{name}.bfdd.conf", render_border_bfdd(node, peers)),))


def _with_section(border: Daemon, section: dict) -> Daemon:
    """`border` with the `bfd` section in its JSON configuration (written as
    compiler.border.exabgp_daemon writes it)."""
    leaf = f"{border.name}.json"
    files = []
    for name, content in border.files:
        if name == leaf:
            config = json.loads(content)
            config["bfd"] = section
            content = json.dumps(config, indent=1, sort_keys=True)
        files.append((name, content))
    return dataclasses.replace(border, files=tuple(files))
