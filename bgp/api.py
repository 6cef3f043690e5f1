"""ExaBGP 5's API text protocol, both directions. Pure.

Inbound (ExaBGP -> helper stdin, `encoder json`): one JSON object per line for state changes
and received updates, and the plain-text acks `done` / `error` / `shutdown` for the commands
the helper wrote. `parse_line` turns a line into one event object (or None for what the
speaker ignores: EOR, keepalives, opens...).

Outbound (helper stdout -> ExaBGP): `announce route ...` / `withdraw route ...` commands, and
the border router's ADD-PATH commands (`neighbor A announce attributes path-information ID
next-hop H ... nlri P1 P2 ...`: many prefixes with one attribute set in one command).

ADD-PATH (RFC 7911) as ExaBGP 5 encodes it, measured: each received NLRI carries
`"path-information": "0.0.0.1"` beside its `"nlri"`, under the next hop it was announced with;
a withdrawal carries the path id and no next hop."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple

from compiler.daemons.speaker_config import Announcement


@dataclass(frozen=True)
class Ack:
    ok: bool          # `done` (True) or `error` (False)


@dataclass(frozen=True)
class Shutdown:
    """ExaBGP says it is exiting."""


@dataclass(frozen=True)
class RefreshRequest:
    """A peer asked for our routes again (ROUTE-REFRESH), seen by vispd's hook in ExaBGP: the
    routes the helper encoded itself are not in ExaBGP's adj-RIB-out, so it must resend them."""
    peer: str


@dataclass(frozen=True)
class StateChange:
    peer: str          # the neighbour's address
    state: str         # "connected" | "up" | "down"
    reason: str = ""
    time: float = 0.0


class Routes(NamedTuple):
    """Prefixes announced with one attribute set (and one ADD-PATH path id)."""

    prefixes: list
    as_path: tuple          # every ASN, in order
    length: int             # the path's length for selection (an AS_SET counts 1)
    path_id: str = ""       # ADD-PATH path identifier, "" without ADD-PATH
    next_hop: str = ""
    communities: tuple = ()  # "ASN:VALUE" strings


@dataclass
class Update:
    peer: str
    announced: list = field(default_factory=list)        # Routes
    withdrawn: list = field(default_factory=list)        # prefixes, without ADD-PATH
    withdrawn_paths: dict = field(default_factory=dict)  # path id -> prefixes
    time: float = 0.0
    notes: list = field(default_factory=list)            # RFC 7606 actions taken (bgp/wire.py)


def as_path_from_json(segments) -> tuple[tuple[int, ...], int]:
    """ExaBGP's as-path attribute -> (every ASN in order, path length for best-path).

    5.x: `{"0": {"element": "as-sequence", "value": [65002]}, ...}`; a list of ASNs (older
    encoders) is accepted too. An AS_SET counts as one; confederation segments count zero."""
    if segments is None:
        return (), 0
    if isinstance(segments, list):
        asns = tuple(int(a) for a in segments)
        return asns, len(asns)
    asns: list[int] = []
    length = 0
    for key in sorted(segments, key=lambda k: int(k) if str(k).isdigit() else 0):
        segment = segments[key]
        values = [int(a) for a in segment.get("value", [])]
        element = segment.get("element", "as-sequence")
        asns.extend(values)
        if element == "as-sequence":
            length += len(values)
        elif element == "as-set":
            length += 1 if values else 0
    return tuple(asns), length


def _nlris_by_path(entries) -> dict[str, list[str]]:
    """{path id ("" without ADD-PATH): prefixes} of a list of NLRI entries."""
    out: dict[str, list[str]] = {}
    for entry in entries:
        if isinstance(entry, dict):
            prefix = entry.get("nlri")
            if isinstance(prefix, str):
                path_id = entry.get("path-information", "")
                out.setdefault(path_id if isinstance(path_id, str) else str(path_id), []).append(prefix)
        elif isinstance(entry, str):
            out.setdefault("", []).append(entry)
    return out


def communities_from_json(value) -> tuple[str, ...]:
    """ExaBGP's `community` attribute ([[65000, 1], ...] or ["65000:1", ...]) -> strings."""
    if not isinstance(value, list):
        return ()
    out = []
    for item in value:
        if isinstance(item, list) and len(item) == 2:
            out.append(f"{item[0]}:{item[1]}")
        elif isinstance(item, str):
            out.append(item)
    return tuple(out)


def _update(peer: str, when: float, update: dict) -> Update:
    result = Update(peer=peer, time=when)
    attributes = update.get("attribute", {})
    announce = update.get("announce", {}).get("ipv4 unicast")
    if announce:
        as_path, length = as_path_from_json(attributes.get("as-path"))
        communities = communities_from_json(attributes.get("community"))
        for next_hop, entries in announce.items():
            for path_id, prefixes in _nlris_by_path(entries).items():
                result.announced.append(Routes(prefixes, as_path, length, path_id, next_hop, communities))
    withdraw = update.get("withdraw", {}).get("ipv4 unicast")
    if withdraw:
        for path_id, prefixes in _nlris_by_path(withdraw).items():
            if path_id:
                result.withdrawn_paths.setdefault(path_id, []).extend(prefixes)
            else:
                result.withdrawn.extend(prefixes)
    return result


def parse_line(line: str):
    """One line from ExaBGP -> Ack | Shutdown | StateChange | Update | None."""
    text = line.strip()
    if not text:
        return None
    if text[0] != "{":
        if text == "done":
            return Ack(True)
        if text == "error":
            return Ack(False)
        if text == "shutdown":
            return Shutdown()
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    kind = message.get("type")
    when = float(message.get("time", 0.0))
    if kind == "notification" and message.get("notification") == "shutdown":
        return Shutdown()
    neighbor = message.get("neighbor")
    if not isinstance(neighbor, dict):
        return None
    peer = neighbor.get("address", {}).get("peer")
    if kind == "state":
        return StateChange(peer=peer, state=neighbor.get("state", ""),
                           reason=neighbor.get("reason", ""), time=when)
    if kind == "update":
        body = neighbor.get("message", {})
        if "update" in body and neighbor.get("direction", "receive") == "receive":
            return _update(peer, when, body["update"])
    return None


def announce_command(announcement: Announcement, local_as: int, ibgp: bool = False) -> str:
    """The command that originates an (already policy-checked) announcement to every peer.

    ExaBGP sends the as-path verbatim on eBGP (measured: it does not add local-as when one is
    given), so our AS appears 1 + prepend times. Toward the vISP's border (`ibgp`) it appears
    prepend times: the border adds the one every eBGP speaker adds."""
    return _originate("", announcement.prefix, [local_as] * (announcement.prepend + (0 if ibgp else 1)),
                      announcement.communities)


def _originate(selector: str, prefix: str, as_path, communities) -> str:
    command = f"{selector}announce route {prefix} next-hop self origin igp"
    if as_path:
        command += f" as-path [ {' '.join(str(a) for a in as_path)} ]"
    if communities:
        command += f" community [ {' '.join(communities)} ]"
    return command


def export_command(neighbor: str, prefix: str, as_path, communities) -> str:
    """The border announces a slice's (screened) prefix to one provider."""
    return _originate(f"neighbor {neighbor} ", prefix, as_path, communities)


def unexport_command(neighbor: str, prefix: str) -> str:
    return f"neighbor {neighbor} withdraw route {prefix} next-hop self"


class PathRoutes(NamedTuple):
    """A border's routes for a slice on an ADD-PATH path: what the helper encodes itself when
    ExaBGP runs with vispd's hook (bgp/wire_encode.py, bgp/exabgp_hook.py), else turned into
    the command text ExaBGP's API takes (`path_command_text`)."""

    neighbor: str
    path_id: str
    next_hop: str
    local_pref: int | None
    as_path: tuple | None     # None: a withdrawal
    prefixes: list


def path_command_text(routes: PathRoutes) -> str:
    """ExaBGP's command for `routes`: the provider's routes (one attribute set) on that
    provider's ADD-PATH path, with that provider's next hop on the slice's link."""
    verb = "withdraw" if routes.as_path is None else "announce"
    text = f"neighbor {routes.neighbor} {verb} attributes path-information {routes.path_id} next-hop {routes.next_hop} "
    if routes.as_path is not None:
        path = f" as-path [ {' '.join(str(a) for a in routes.as_path)} ]" if routes.as_path else ""
        text += f"origin igp local-preference {routes.local_pref}{path} "
    return text + f"nlri {' '.join(routes.prefixes)}"


REFRESH_COMMAND = "announce route-refresh ipv4 unicast"


def withdraw_command(announcement: Announcement) -> str:
    return f"withdraw route {announcement.prefix} next-hop self"
