"""Semantic checks of `routing: own` slices (issue 14). Pure, but for looking at the
configuration file a slice names (as the topology file itself is read).

A slice that is root over its slivers gets nothing vispd would have to trust it with:
* `own:` (a suite vispd starts) only with `routing: own`, and a configuration that is a
  readable text file (relative paths are relative to the topology file; that the suite is
  one vispd knows is checked with the other kinds, compiler.checks.kinds);
* no BGP egress yet: an egress sliver holds vispd's speaker and the egress manager writes
  its routes, both of which a slice that is root there could subvert;
* no remote access points: their public side is a macvlan on the node's public device,
  which a slice that is root in its sliver could make pose as another slice's. (The local
  socket, a pseudo-device inside the sliver, is fine.)
"""
from __future__ import annotations

from ..access_types import ACCESS_TYPES
from ..daemons.own import config_path, read_config


def check_own_slices(topo, say) -> None:
    for si, sl in enumerate(topo.slices):
        base = ("slices", si)
        if sl.own is not None and sl.routing != "own":
            say(base + ("own",), f"slice '{sl.name}' brings a routing suite (own:) but has routing: {sl.routing}"
                " (set 'routing: own')")
        if sl.routing == "own" and sl.egress:
            say(base + ("egress",), f"slice '{sl.name}' has routing: own, which cannot egress yet: its egress "
                "slivers would hold vispd's BGP speaker and routes, which the slice is root over")
        if sl.own is not None:
            _check_suite(topo, sl, base + ("own",), say)
    own = {sl.name for sl in topo.slices if sl.routing == "own"}
    for i, entry in enumerate(topo.access):
        kind = ACCESS_TYPES.get(entry.type)
        if entry.slice in own and kind is not None and kind.REMOTE:
            say(("access", i, "type"), f"slice '{entry.slice}' has routing: own, which cannot have {entry.type} "
                "access points yet: their public macvlan is a device the slice would be root over "
                "(a socket access point works)")


def _check_suite(topo, sl, where: tuple, say) -> None:
    try:
        read_config(config_path(topo, sl))
    except ValueError as exc:
        say(where + ("config",), f"the configuration of slice '{sl.name}': {exc}")
