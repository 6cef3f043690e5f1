"""A realistic table for the ingestion bench (issue 12): the same prefixes as the lab's
generator (compiler.daemons.bird.generated_prefixes) but with varied attributes, so that a
sending BIRD packs about 3 prefixes per UPDATE, as real tables do (the packed generator's
one attribute set fills every UPDATE with hundreds). Pure: it writes BIRD configuration text.

Every run of GROUP consecutive prefixes shares one attribute set, and no two runs share one:
an AS path of 1 to 5 ASNs (2-byte and 4-byte), an origin (IGP, EGP, incomplete), 0 to 3
communities and, for one group in four, a MED; all derived from the group's number."""
from __future__ import annotations

from compiler.daemons.bird import generated_prefixes

GROUP = 3
ORIGINS = ("ORIGIN_IGP", "ORIGIN_EGP", "ORIGIN_INCOMPLETE")


def group_attributes(group: int) -> str:
    """BIRD filter statements giving group `group` its attribute set."""
    mixed = (group * 2654435761) & 0xFFFFFFFF
    path = [1000 + group % 50000]                          # distinct per group: one set each
    for i in range(mixed % 5):
        asn = 1 + (mixed >> (4 * i)) % 64000
        path.append(asn if i % 2 else 4200000000 + asn)   # a 4-byte ASN every other hop
    statements = [f"bgp_path.prepend({asn});" for asn in reversed(path)]
    statements.append(f"bgp_origin = {ORIGINS[group % 3]};")
    statements += [f"bgp_community.add(({65000 + k}, {(mixed >> k) & 0xFFFF}));" for k in range((mixed >> 8) % 4)]
    if group % 4 == 0:
        statements.append(f"bgp_med = {mixed % 1000};")
    if group >= 50000:
        statements.append(f"bgp_path.prepend({group // 50000});")  # keeps big tables' sets distinct
    return " ".join(statements)


def varied_static(count: int, name: str = "gen") -> str:
    """A BIRD `protocol static` originating `count` prefixes with varied attributes."""
    lines = [f"protocol static {name} {{", "  ipv4;"]
    for index, prefix in enumerate(generated_prefixes(count)):
        lines.append(f"  route {prefix} blackhole {{ {group_attributes(index // GROUP)} }};")
    lines.append("}")
    return "\n".join(lines) + "\n"
