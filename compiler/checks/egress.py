"""Semantic checks of BGP egress (pure): providers (their node, AS, access-link addressing
and capacity, their kind's own rules), the lab's Internet, and PEERING-style announcement
safety — the rules of compiler.policy, which the BGP helper applies again at run time."""
from __future__ import annotations

from model.units import format_bandwidth

from ..addressing import allocate_slice_prefixes
from ..border import MAX_PROVIDERS_AT_A_NODE
from ..policy import MAX_COMMUNITIES, MAX_PREFIX_LENGTH, MAX_PREPEND, community_error
from ..providers import provider_kind
from .common import hint, unique_names

DEFAULT_PEERINGS = 16  # /28s of 192.0.2.0/24 handed to providers without a `peering`
# The lab's own hosts live beside the providers' (`vispd.T.+NAME`): a provider may not take
# their names (the public underlay's client hosts are `c-TYPE-SLICE-NODE`).
RESERVED_PROVIDER_NAMES = {"internet": "the lab's Internet router", "public": "the lab's public underlay"}


def check_providers(topo, say, node_names: set[str]) -> set[str]:
    names = unique_names(topo.providers, "name", ("providers",), "provider", say)
    peerings = []
    for i, provider in enumerate(topo.providers):
        base = ("providers", i)
        _check_name(provider, base, say)
        if provider.node not in node_names:
            say(base + ("node",), f"provider '{provider.name}' attaches to unknown node '{provider.node}'"
                f"{hint(provider.node, node_names)}")
        if provider.asn == topo.asn:
            say(base + ("asn",), f"provider '{provider.name}' has the vISP's own AS {topo.asn}: egress is eBGP")
        users = [s for s in topo.slices if provider.name in s.egress]
        _check_peering(provider, i, users, peerings, say)
        total = sum(s.bandwidth for s in users)
        if total > provider.bandwidth:
            listed = " + ".join(f"{s.name} {format_bandwidth(s.bandwidth)}" for s in users)
            say(base + ("bandwidth",), f"access link to '{provider.name}' is over-subscribed: {listed} "
                f"> {format_bandwidth(provider.bandwidth)}")
        provider_kind(provider).check(provider, base, say)
    at_node: dict[str, list[str]] = {}
    for provider in topo.providers:
        at_node.setdefault(provider.node, []).append(provider.name)
    for node, names_here in at_node.items():
        if len(names_here) > MAX_PROVIDERS_AT_A_NODE:
            index = next(i for i, p in enumerate(topo.providers) if p.name == names_here[MAX_PROVIDERS_AT_A_NODE])
            say(("providers", index, "node"), f"node '{node}' has {len(names_here)} providers: a border router "
                f"takes at most {MAX_PROVIDERS_AT_A_NODE} (one next hop each on a slice's /28 link)")
    if len(topo.providers) > topo.internet.transit.num_addresses // 2:
        say(("internet", "transit"), f"transit {topo.internet.transit} is too small for {len(topo.providers)} providers")
    if topo.providers and topo.internet.host not in topo.internet.prefix:
        say(("internet", "host"), f"host {topo.internet.host} is outside the Internet prefix {topo.internet.prefix}")
    return names


def _check_name(provider, base: tuple, say) -> None:
    reserved = RESERVED_PROVIDER_NAMES.get(provider.name)
    if reserved is None and provider.name.startswith("c-"):
        reserved = "the lab's client hosts (c-TYPE-SLICE-NODE)"
    if reserved:
        say(base + ("name",), f"provider name '{provider.name}' is reserved for {reserved}: choose another name")


def _check_peering(provider, index: int, users: list, peerings: list, say) -> None:
    base = ("providers", index)
    if provider.peering is None:
        if index >= DEFAULT_PEERINGS:
            say(base, f"give provider '{provider.name}' a 'peering' prefix: the default /28s of 192.0.2.0/24 are used up")
        return
    if provider.peering.num_addresses < 2:
        say(base + ("peering",), f"peering {provider.peering} has no room for the border's session "
            f"(a /31: the provider, then the border)")
    for other in peerings:
        if provider.peering.overlaps(other):
            say(base + ("peering",), f"peering {provider.peering} overlaps {other} of another provider")
    peerings.append(provider.peering)


def check_announcements(topo, say) -> None:
    prefixes = allocate_slice_prefixes(topo)
    for si, sl in enumerate(topo.slices):
        if sl.announce and not sl.egress:
            say(("slices", si, "announce"), f"slice '{sl.name}' announces but has no egress")
        own = prefixes.get(sl.name)
        for j, announcement in enumerate(sl.announce):
            where = ("slices", si, "announce", j)
            if own is not None and not announcement.prefix.subnet_of(own):
                say(where + ("prefix",), f"refusing to announce {announcement.prefix}: outside slice "
                    f"'{sl.name}''s allocation {own}")
            if announcement.prefix.prefixlen > MAX_PREFIX_LENGTH:
                say(where + ("prefix",), f"refusing to announce {announcement.prefix}: longer than /{MAX_PREFIX_LENGTH}")
            if announcement.prepend > MAX_PREPEND:
                say(where + ("prepend",), f"AS-path prepending is limited to {MAX_PREPEND}")
            if len(announcement.communities) > MAX_COMMUNITIES:
                say(where + ("communities",), f"at most {MAX_COMMUNITIES} communities per announcement")
            for k, community in enumerate(announcement.communities):
                error = community_error(community)
                if error:
                    say(where + ("communities", k), error)
