"""Announcement safety, PEERING-style: what a slice may originate. Pure.

An announcement is accepted only if its prefix is an IPv4 network (no host bits) inside one
of the slice's allocated prefixes, no longer than /24, with at most 5 AS-path prepends and at
most 5 well-formed standard communities. Everything else is refused with a reason naming the
rule; the helper never hands a refused announcement to ExaBGP, and `vispd validate` checks
a topology's announcements against the same rules."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .daemons.speaker_config import Announcement

MAX_PREFIX_LENGTH = 24
MAX_PREPEND = 5
MAX_COMMUNITIES = 5


@dataclass(frozen=True)
class Refusal:
    announcement: Announcement
    reason: str

    def as_dict(self) -> dict:
        return {"prefix": self.announcement.prefix, "prepend": self.announcement.prepend,
                "communities": list(self.announcement.communities), "reason": self.reason}


def community_error(community: str) -> str | None:
    parts = community.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return f"community {community!r} is not of the form ASN:VALUE"
    if not all(0 <= int(p) <= 0xFFFF for p in parts):
        return f"community {community!r} has a part outside 0..65535"
    return None


def refusal_reason(announcement: Announcement, allowed_prefixes) -> str | None:
    """None if the announcement is safe to send, else why it is refused."""
    text = announcement.prefix
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return f"{text!r} is not an IP prefix"
    if network.version != 4:
        return f"{text} is not IPv4 (only IPv4 unicast is announced)"
    if "/" not in text:
        return f"{text} has no prefix length"
    if str(network) != text:
        return f"{text} has host bits set (the network is {network})"
    if network.prefixlen > MAX_PREFIX_LENGTH:
        return f"{text} is longer than /{MAX_PREFIX_LENGTH}"
    allocations = []
    for allowed in allowed_prefixes:
        try:
            allocations.append(ipaddress.ip_network(allowed, strict=False))
        except ValueError:
            continue
    if not any(a.version == 4 and network.subnet_of(a) for a in allocations):
        listed = ", ".join(str(a) for a in allocations) or "none"
        return f"{text} is outside the slice's allocation ({listed})"
    prepend = announcement.prepend
    if isinstance(prepend, bool) or not isinstance(prepend, int) or prepend < 0:
        return f"prepend {prepend!r} is not a non-negative integer"
    if prepend > MAX_PREPEND:
        return f"prepend {prepend} exceeds the limit of {MAX_PREPEND}"
    if len(announcement.communities) > MAX_COMMUNITIES:
        return f"{len(announcement.communities)} communities exceed the limit of {MAX_COMMUNITIES}"
    for community in announcement.communities:
        error = community_error(community)
        if error:
            return error
    return None


def screen(announcements, allowed_prefixes) -> tuple[list[Announcement], list[Refusal]]:
    """Split announcements into (accepted, refused); duplicates of an accepted prefix are refused."""
    accepted: list[Announcement] = []
    refused: list[Refusal] = []
    seen: set[str] = set()
    for announcement in announcements:
        reason = refusal_reason(announcement, allowed_prefixes)
        if reason is None and announcement.prefix in seen:
            reason = f"{announcement.prefix} is announced twice"
        if reason is None:
            seen.add(announcement.prefix)
            accepted.append(announcement)
        else:
            refused.append(Refusal(announcement, reason))
    return accepted, refused
