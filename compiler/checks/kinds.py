"""Every kind a topology names must be one the compiler knows (pure): link kinds, access
types, the routing suites of `routing: own` slices (their registries, compiler.links,
compiler.access_types and compiler.daemons.own). Checked before the
other semantic checks, which ask those kinds for their own rules."""
from __future__ import annotations

from model.errors import describe_value

from ..access_types import ACCESS_TYPES
from ..daemons.own import SUITES
from ..links import LINK_KINDS
from .common import one_of


def check_kinds(topo, say) -> None:
    for i, link in enumerate(topo.links):
        if link.kind not in LINK_KINDS:
            say(("links", i, "kind"), f"kind: must be {one_of(LINK_KINDS)}, got {describe_value(link.kind)}")
    for i, entry in enumerate(topo.access):
        if entry.type not in ACCESS_TYPES:
            say(("access", i, "type"), f"type: must be {one_of(ACCESS_TYPES)}, got {describe_value(entry.type)}")
    for i, sl in enumerate(topo.slices):
        if sl.own is not None and sl.own.daemon not in SUITES:
            say(("slices", i, "own", "daemon"), f"daemon: must be {one_of(SUITES)} (the routing suites vispd can "
                f"run for a slice), got {describe_value(sl.own.daemon)}")
