"""Every kind a topology names must be one the compiler knows (pure): link kinds, access
types (their registries, compiler.links and compiler.access_types). Checked before the
other semantic checks, which ask those kinds for their own rules."""
from __future__ import annotations

from model.errors import describe_value

from ..access_types import ACCESS_TYPES
from ..links import LINK_KINDS
from .common import one_of


def check_kinds(topo, say) -> None:
    for i, link in enumerate(topo.links):
        if link.kind not in LINK_KINDS:
            say(("links", i, "kind"), f"kind: must be {one_of(LINK_KINDS)}, got {describe_value(link.kind)}")
    for i, entry in enumerate(topo.access):
        if entry.type not in ACCESS_TYPES:
            say(("access", i, "type"), f"type: must be {one_of(ACCESS_TYPES)}, got {describe_value(entry.type)}")
