"""Semantic checks of access points (pure): the slice each serves and the nodes it spans,
pools inside the slice's prefix and large enough, users where the type needs them (no
duplicates), and each access type's own rules (compiler.access_types)."""
from __future__ import annotations

from ..access_types import ACCESS_TYPES
from ..addressing import allocate_slice_prefixes
from .common import hint


def check_access(topo, say, slice_names: set[str]) -> None:
    prefixes = allocate_slice_prefixes(topo)
    for i, access in enumerate(topo.access):
        base = ("access", i)
        if access.slice not in slice_names:
            say(base + ("slice",), f"access for unknown slice '{access.slice}'{hint(access.slice, slice_names)}")
            continue
        access_type = ACCESS_TYPES[access.type]
        access_type.check(access, base, say)
        own = prefixes.get(access.slice)
        if access.pool is not None and own is not None and not access.pool.subnet_of(own):
            say(base + ("pool",), f"pool {access.pool} is outside slice '{access.slice}''s prefix {own}")
        if access.pool is not None and access.pool.prefixlen > 29:
            say(base + ("pool",), f"pool {access.pool} is too small: give at least a /29")
        if access_type.NEEDS_USERS and not access.users:
            say(base, f"{access.type} access needs at least one user")
        names = [u.name for u in access.users]
        for j, user in enumerate(access.users):
            if names.index(user.name) != j:
                say(base + ("users", j, "name"), f"duplicate user '{user.name}'")
        if access.nodes != "all":
            members = set(topo.slice_nodes(topo.slice(access.slice)))
            for j, name in enumerate(access.nodes):
                if name not in members:
                    say(base + ("nodes", j), f"access point on '{name}', which slice '{access.slice}' does not span")
