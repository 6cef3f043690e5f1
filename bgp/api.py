"""ExaBGP 5's API text protocol, both directions. Pure.

Inbound (ExaBGP -> helper stdin, `encoder json`): one JSON object per line for state changes
and received updates, and the plain-text acks `done` / `error` / `shutdown` for the commands
the helper wrote. `parse_line` turns a line into one event object (or None for what the
speaker ignores: EOR, keepalives, opens...).

Outbound (helper stdout -> ExaBGP): `announce route ...` / `withdraw route ...` commands."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from compiler.daemons.speaker_config import Announcement


@dataclass(frozen=True)
class Ack:
    ok: bool          # `done` (True) or `error` (False)


@dataclass(frozen=True)
class Shutdown:
    """ExaBGP says it is exiting."""


@dataclass(frozen=True)
class StateChange:
    peer: str          # the neighbour's address
    state: str         # "connected" | "up" | "down"
    reason: str = ""
    time: float = 0.0


@dataclass
class Update:
    peer: str
    # one entry per attribute set: (prefixes, AS path with every ASN, path length for selection)
    announced: list = field(default_factory=list)
    withdrawn: list = field(default_factory=list)
    time: float = 0.0


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


def _nlris(entries) -> list[str]:
    out = []
    for entry in entries:
        if isinstance(entry, dict):
            prefix = entry.get("nlri")
            if isinstance(prefix, str):
                out.append(prefix)
        elif isinstance(entry, str):
            out.append(entry)
    return out


def _update(peer: str, when: float, update: dict) -> Update:
    result = Update(peer=peer, time=when)
    attributes = update.get("attribute", {})
    announce = update.get("announce", {}).get("ipv4 unicast")
    if announce:
        as_path, length = as_path_from_json(attributes.get("as-path"))
        prefixes: list[str] = []
        for entries in announce.values():       # keyed by next hop
            prefixes.extend(_nlris(entries))
        if prefixes:
            result.announced.append((prefixes, as_path, length))
    withdraw = update.get("withdraw", {}).get("ipv4 unicast")
    if withdraw:
        result.withdrawn.extend(_nlris(withdraw))
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


def announce_command(announcement: Announcement, local_as: int) -> str:
    """The command that originates an (already policy-checked) announcement to every peer.

    ExaBGP sends the as-path verbatim on eBGP (measured: it does not add local-as when one is
    given), so our AS appears 1 + prepend times."""
    path = " ".join([str(local_as)] * (1 + announcement.prepend))
    command = f"announce route {announcement.prefix} next-hop self origin igp as-path [ {path} ]"
    if announcement.communities:
        command += f" community [ {' '.join(announcement.communities)} ]"
    return command


REFRESH_COMMAND = "announce route-refresh ipv4 unicast"


def withdraw_command(announcement: Announcement) -> str:
    return f"withdraw route {announcement.prefix} next-hop self"
