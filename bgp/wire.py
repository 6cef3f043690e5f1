"""BGP UPDATE messages as bytes -> the helper's events (api.Update). Pure.

ExaBGP keeps the sessions; the UPDATEs it receives reach the helper as raw bodies (the
part after the 19-byte header, bgp/exabgp_hook.py) and are decoded here, for IPv4 unicast:
withdrawn routes, path attributes (ORIGIN, AS_PATH with 2- or 4-byte ASNs and AS_SET /
confederation segments, NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES, MP_REACH/MP_UNREACH for
IPv4 unicast, unknown optional transitive attributes kept opaque), NLRI, and ADD-PATH
(RFC 7911) path identifiers in both NLRI fields when negotiated. Path identifiers are
written dotted ("0.0.0.1"), the way ExaBGP's JSON writes them, so api.Update means the
same whichever way it was made.

Error handling is RFC 7606's, since ExaBGP no longer looks at these messages:
- session reset (`SessionReset`: the caller has ExaBGP send an UPDATE Message Error
  NOTIFICATION and drop the session): the withdrawn/attribute lengths do not add up to the
  message, the NLRI or withdrawn field does not parse, MP_REACH/MP_UNREACH appears twice or
  is malformed, an unrecognised well-known attribute;
- treat-as-withdraw (the message's announced prefixes are withdrawn, `Update.notes` says
  why): a malformed ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES, ORIGINATOR_ID
  or CLUSTER_LIST, flags in conflict with the attribute, an attribute overrunning the
  attribute section, a missing mandatory attribute;
- attribute discard (the attribute is ignored, the routes kept): a malformed
  ATOMIC_AGGREGATE, AGGREGATOR, AS4_PATH or AS4_AGGREGATOR, LOCAL_PREF from an eBGP peer,
  a repeated attribute (all but the first)."""
from __future__ import annotations

import struct
from socket import inet_ntoa

from bgp.api import Routes, Update

ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF, ATOMIC_AGGREGATE, AGGREGATOR, COMMUNITIES = 1, 2, 3, 4, 5, 6, 7, 8
ORIGINATOR_ID, CLUSTER_LIST, MP_REACH, MP_UNREACH, AS4_PATH, AS4_AGGREGATOR = 9, 10, 14, 15, 17, 18
OPTIONAL, TRANSITIVE, PARTIAL, EXTENDED = 0x80, 0x40, 0x20, 0x10
AS_SET, AS_SEQUENCE, CONFED_SEQUENCE, CONFED_SET = 1, 2, 3, 4
UPDATE_ERROR = 3
MALFORMED_ATTRIBUTE_LIST, UNRECOGNIZED_WELL_KNOWN, INVALID_NETWORK_FIELD, MALFORMED_AS_PATH = 1, 2, 10, 11

WELL_KNOWN = {ORIGIN, AS_PATH, NEXT_HOP, LOCAL_PREF, ATOMIC_AGGREGATE}
OPTIONAL_TRANSITIVE = {AGGREGATOR, COMMUNITIES, AS4_PATH, AS4_AGGREGATOR}
OPTIONAL_NON_TRANSITIVE = {MED, ORIGINATOR_ID, CLUSTER_LIST, MP_REACH, MP_UNREACH}
KNOWN = WELL_KNOWN | OPTIONAL_TRANSITIVE | OPTIONAL_NON_TRANSITIVE
TREAT_AS_WITHDRAW_LENGTHS = {ORIGIN: (1,), NEXT_HOP: (4,), MED: (4,), LOCAL_PREF: (4,), ORIGINATOR_ID: (4,)}
DISCARD_LENGTHS = {ATOMIC_AGGREGATE: (0,), AS4_AGGREGATOR: (8,)}


class SessionReset(Exception):
    """An error RFC 7606 answers with a session reset: (code, subcode, data) for the
    NOTIFICATION."""

    def __init__(self, subcode: int, reason: str, data: bytes = b""):
        super().__init__(reason)
        self.code, self.subcode, self.data, self.reason = UPDATE_ERROR, subcode, data, reason


class _Withdraw(Exception):
    """Internal: the attribute makes the message treat-as-withdraw."""


_PATH_IDS: dict[int, str] = {}
_SLASH = [f"/{n}" for n in range(33)]
_PAD = [b"\0\0\0\0", b"\0\0\0", b"\0\0", b"\0", b""]


def path_id_text(value: int) -> str:
    text = _PATH_IDS.get(value)
    if text is None:
        text = f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
        if len(_PATH_IDS) < 4096:   # a session carries a handful of path ids
            _PATH_IDS[value] = text
    return text


def parse_prefixes(data: bytes, addpath: bool, what: str) -> list[tuple[str, str]]:
    """An NLRI or withdrawn field -> [(path id text or "", "A.B.C.D/L")]; SessionReset if it
    does not parse (RFC 7606 5.3)."""
    out = []
    append = out.append
    position, end = 0, len(data)
    path_id = ""
    ntoa, slash, pad = inet_ntoa, _SLASH, _PAD
    while position < end:
        if addpath:
            if position + 5 > end:
                raise SessionReset(INVALID_NETWORK_FIELD, f"{what}: a path identifier overruns the field")
            path_id = path_id_text(int.from_bytes(data[position:position + 4], "big"))
            position += 4
        length = data[position]
        size = (length + 7) >> 3
        stop = position + 1 + size
        if length > 32 or stop > end:
            raise SessionReset(INVALID_NETWORK_FIELD, f"{what}: prefix length {length} does not fit")
        append((path_id, ntoa(data[position + 1:stop] + pad[size]) + slash[length]))
        position = stop
    return out


def parse_as_path(data: bytes, asn_size: int) -> tuple[tuple[int, ...], int]:
    """AS_PATH (or AS4_PATH) -> (every ASN in order, length for best path: an AS_SET counts
    one, confederation segments zero). ValueError if malformed."""
    end = len(data)
    if end >= 2 and data[0] == AS_SEQUENCE and end == 2 + data[1] * asn_size and data[1]:   # one sequence
        return struct.unpack(f"!{data[1]}{'I' if asn_size == 4 else 'H'}", data[2:]), data[1]
    asns: list[int] = []
    length = 0
    position = 0
    code = "!" + ("I" if asn_size == 4 else "H")
    while position < end:
        if position + 2 > end:
            raise ValueError("a segment header overruns the attribute")
        kind, count = data[position], data[position + 1]
        stop = position + 2 + count * asn_size
        if kind not in (AS_SET, AS_SEQUENCE, CONFED_SEQUENCE, CONFED_SET) or count == 0 or stop > end:
            raise ValueError(f"segment type {kind} of {count} ASNs does not fit")
        values = struct.unpack(f"!{count}{code[1]}", data[position + 2:stop])
        asns.extend(values)
        if kind == AS_SEQUENCE:
            length += count
        elif kind == AS_SET:
            length += 1
        position = stop
    return tuple(asns), length


def _merge_as4(as_path: tuple, length: int, as4: tuple | None) -> tuple[tuple, int]:
    """RFC 6793 4.2.3, simplified: AS_TRANS-bearing 2-byte paths take the AS4_PATH's tail."""
    if as4 is None:
        return as_path, length
    path4, length4 = as4
    if len(path4) > len(as_path):
        return as_path, length
    merged = as_path[:len(as_path) - len(path4)] + path4
    return merged, length - len(path4) + length4 if length >= len(path4) else length


class _Attributes:
    __slots__ = ("as_path", "length", "next_hop", "communities", "local_pref", "med", "origin",
                 "opaque", "reach", "unreach", "seen", "withdraw_reasons", "notes", "as4")

    def __init__(self):
        self.as_path, self.length, self.next_hop, self.communities = None, 0, "", ()
        self.local_pref = self.med = self.origin = None
        self.opaque: list[bytes] = []
        self.reach = self.unreach = self.as4 = None
        self.seen: set[int] = set()
        self.withdraw_reasons: list[str] = []
        self.notes: list[str] = []


def _flags_conflict(code: int, flags: int) -> bool:
    if code in WELL_KNOWN:
        return bool(flags & OPTIONAL) or not flags & TRANSITIVE
    if code in OPTIONAL_TRANSITIVE:
        return not flags & OPTIONAL or not flags & TRANSITIVE
    if code in OPTIONAL_NON_TRANSITIVE:
        return not flags & OPTIONAL or bool(flags & TRANSITIVE)
    return False


def _one_attribute(attrs: _Attributes, code: int, flags: int, value: bytes, asn_size: int, ibgp: bool,
                   addpath: bool) -> None:
    """Decode one attribute into `attrs`; _Withdraw for treat-as-withdraw."""
    if code in TREAT_AS_WITHDRAW_LENGTHS and len(value) not in TREAT_AS_WITHDRAW_LENGTHS[code]:
        raise _Withdraw(f"attribute {code} of length {len(value)}")
    if code in DISCARD_LENGTHS and len(value) not in DISCARD_LENGTHS[code]:
        attrs.notes.append(f"attribute {code} of length {len(value)} discarded")
        return
    if code == ORIGIN:
        if value[0] > 2:
            raise _Withdraw(f"ORIGIN {value[0]}")
        attrs.origin = value[0]
    elif code == AS_PATH:
        try:
            attrs.as_path, attrs.length = parse_as_path(value, asn_size)
        except ValueError as exc:
            raise _Withdraw(f"AS_PATH: {exc}") from None
    elif code == NEXT_HOP:
        attrs.next_hop = f"{value[0]}.{value[1]}.{value[2]}.{value[3]}"
    elif code == MED:
        attrs.med = int.from_bytes(value, "big")
    elif code == LOCAL_PREF:
        if not ibgp:
            attrs.notes.append("LOCAL_PREF from an eBGP peer discarded")
            return
        attrs.local_pref = int.from_bytes(value, "big")
    elif code == AGGREGATOR:
        if len(value) != asn_size + 4:
            attrs.notes.append(f"AGGREGATOR of length {len(value)} discarded")
    elif code == COMMUNITIES:
        if not value or len(value) % 4:
            raise _Withdraw(f"COMMUNITIES of length {len(value)}")
        numbers = struct.unpack(f"!{len(value) // 2}H", value)
        attrs.communities = tuple(f"{numbers[i]}:{numbers[i + 1]}" for i in range(0, len(numbers), 2))
    elif code == CLUSTER_LIST:
        if not value or len(value) % 4:
            raise _Withdraw(f"CLUSTER_LIST of length {len(value)}")
    elif code == AS4_PATH:
        if asn_size == 2:
            try:
                attrs.as4 = parse_as_path(value, 4)
            except ValueError as exc:
                attrs.notes.append(f"AS4_PATH discarded: {exc}")
    elif code == MP_REACH:
        attrs.reach = _mp_reach(value, addpath)
    elif code == MP_UNREACH:
        attrs.unreach = _mp_unreach(value, addpath)
    elif code not in (ORIGINATOR_ID, ATOMIC_AGGREGATE, AS4_AGGREGATOR):
        if not flags & OPTIONAL:
            raise SessionReset(UNRECOGNIZED_WELL_KNOWN, f"unrecognised well-known attribute {code}",
                               bytes([flags, code]))
        if flags & TRANSITIVE:   # passed on opaque, marked partial (RFC 4271 5)
            attrs.opaque.append(bytes([flags | PARTIAL, code]) + value)


def _mp_reach(value: bytes, addpath: bool):
    """MP_REACH_NLRI -> (next hop, [(path id, prefix)]) for IPv4 unicast, None for another
    family (not negotiated by us: ignored). SessionReset if malformed (RFC 7606 7.11)."""
    if len(value) < 5:
        raise SessionReset(MALFORMED_ATTRIBUTE_LIST, "MP_REACH_NLRI too short")
    afi, safi, hop_length = struct.unpack("!HBB", value[:4])
    if 4 + hop_length + 1 > len(value):
        raise SessionReset(MALFORMED_ATTRIBUTE_LIST, "MP_REACH_NLRI next hop overruns the attribute")
    if (afi, safi) != (1, 1):
        return None
    if hop_length != 4:
        raise SessionReset(MALFORMED_ATTRIBUTE_LIST, f"MP_REACH_NLRI IPv4 next hop of length {hop_length}")
    hop = value[4:8]
    nlri = value[4 + hop_length + 1:]   # after the reserved octet
    return f"{hop[0]}.{hop[1]}.{hop[2]}.{hop[3]}", parse_prefixes(nlri, addpath, "MP_REACH_NLRI")


def _mp_unreach(value: bytes, addpath: bool):
    if len(value) < 3:
        raise SessionReset(MALFORMED_ATTRIBUTE_LIST, "MP_UNREACH_NLRI too short")
    afi, safi = struct.unpack("!HB", value[:3])
    if (afi, safi) != (1, 1):
        return None
    return parse_prefixes(value[3:], addpath, "MP_UNREACH_NLRI")


def parse_attributes(data: bytes, asn_size: int = 4, ibgp: bool = False, addpath: bool = False) -> _Attributes:
    attrs = _Attributes()
    seen = attrs.seen
    position, end = 0, len(data)
    while position < end:
        if position + 3 > end:
            attrs.withdraw_reasons.append("an attribute header overruns the attribute section")
            break
        flags, code = data[position], data[position + 1]
        if flags & EXTENDED:
            if position + 4 > end:
                attrs.withdraw_reasons.append("an attribute header overruns the attribute section")
                break
            size, start = (data[position + 2] << 8) | data[position + 3], position + 4
        else:
            size, start = data[position + 2], position + 3
        position = start + size
        if position > end:
            attrs.withdraw_reasons.append(f"attribute {code} overruns the attribute section")
            break
        if code in seen:
            if code in (MP_REACH, MP_UNREACH):
                raise SessionReset(MALFORMED_ATTRIBUTE_LIST, f"attribute {code} repeated")
            attrs.notes.append(f"repeated attribute {code} discarded")
            continue
        seen.add(code)
        kind = flags & 0xC0
        # well-formed common attributes first (a full table is made of them), the rest below
        if code == AS_PATH and kind == 0x40:
            try:
                attrs.as_path, attrs.length = parse_as_path(data[start:position], asn_size)
            except ValueError as exc:
                attrs.withdraw_reasons.append(f"AS_PATH: {exc}")
            continue
        if code == ORIGIN and kind == 0x40 and size == 1 and data[start] <= 2:
            attrs.origin = data[start]
            continue
        if code == NEXT_HOP and kind == 0x40 and size == 4:
            attrs.next_hop = inet_ntoa(data[start:position])
            continue
        if code == MED and kind == 0x80 and size == 4:
            attrs.med = int.from_bytes(data[start:position], "big")
            continue
        if _flags_conflict(code, flags):
            attrs.withdraw_reasons.append(f"attribute {code} with flags {flags:#04x}")
            continue
        try:
            _one_attribute(attrs, code, flags, data[start:position], asn_size, ibgp, addpath)
        except _Withdraw as exc:
            attrs.withdraw_reasons.append(str(exc))
    return attrs


def _framing(body: bytes) -> tuple[bytes, bytes, bytes]:
    """(withdrawn, attributes, nlri) fields; SessionReset when the lengths do not add up."""
    if len(body) < 4:
        raise SessionReset(MALFORMED_ATTRIBUTE_LIST, "UPDATE shorter than its two length fields")
    withdrawn_length = (body[0] << 8) | body[1]
    if 2 + withdrawn_length + 2 > len(body):
        raise SessionReset(MALFORMED_ATTRIBUTE_LIST, "withdrawn routes length overruns the message")
    at = 2 + withdrawn_length
    attributes_length = (body[at] << 8) | body[at + 1]
    if at + 2 + attributes_length > len(body):
        raise SessionReset(MALFORMED_ATTRIBUTE_LIST, "total path attribute length overruns the message")
    start = at + 2
    return body[2:at], body[start:start + attributes_length], body[start + attributes_length:]


def _walk_prefixes(data: bytes, addpath: bool, what: str) -> None:
    """parse_prefixes' checks without making the strings."""
    position, end, step = 0, len(data), 4 if addpath else 0
    while position < end:
        position += step
        if position >= end:
            raise SessionReset(INVALID_NETWORK_FIELD, f"{what}: a path identifier overruns the field")
        length = data[position]
        position += 1 + ((length + 7) >> 3)
        if length > 32 or position > end:
            raise SessionReset(INVALID_NETWORK_FIELD, f"{what}: prefix length {length} does not fit")


def check_update(body: bytes, addpath: bool = False) -> None:
    """SessionReset if parse_update would raise it; cheap (no strings, no attribute values
    but MP_REACH/MP_UNREACH), for the hook inside ExaBGP (bgp/exabgp_hook.py)."""
    withdrawn_field, attribute_field, nlri_field = _framing(body)
    _walk_prefixes(withdrawn_field, addpath, "withdrawn routes")
    _walk_prefixes(nlri_field, addpath, "NLRI")
    position, end, seen = 0, len(attribute_field), set()
    while position + 3 <= end:
        flags, code = attribute_field[position], attribute_field[position + 1]
        if flags & EXTENDED:
            if position + 4 > end:
                return
            size, start = (attribute_field[position + 2] << 8) | attribute_field[position + 3], position + 4
        else:
            size, start = attribute_field[position + 2], position + 3
        position = start + size
        if position > end:
            return   # treat-as-withdraw, parse_update's to say
        if code in seen:
            if code in (MP_REACH, MP_UNREACH):
                raise SessionReset(MALFORMED_ATTRIBUTE_LIST, f"attribute {code} repeated")
            continue
        seen.add(code)
        if _flags_conflict(code, flags):
            continue
        if code == MP_REACH:
            _mp_reach(attribute_field[start:position], addpath)
        elif code == MP_UNREACH:
            _mp_unreach(attribute_field[start:position], addpath)
        elif code not in KNOWN and not flags & OPTIONAL:
            raise SessionReset(UNRECOGNIZED_WELL_KNOWN, f"unrecognised well-known attribute {code}",
                               bytes([flags, code]))


def _withdrawals(update: Update, entries) -> None:
    for path_id, prefix in entries:
        if path_id:
            update.withdrawn_paths.setdefault(path_id, []).append(prefix)
        else:
            update.withdrawn.append(prefix)


def parse_update(body: bytes, peer: str = "", addpath: bool = False, asn_size: int = 4, ibgp: bool = False,
                 when: float = 0.0) -> Update:
    """One UPDATE body (without the 19-byte header) -> api.Update. SessionReset for what
    RFC 7606 answers with a session reset; treat-as-withdraw turns the announced prefixes
    into withdrawals (reasons in `notes`)."""
    withdrawn_field, attribute_field, nlri_field = _framing(body)
    update = Update(peer=peer, time=when)
    _withdrawals(update, parse_prefixes(withdrawn_field, addpath, "withdrawn routes"))
    announced = parse_prefixes(nlri_field, addpath, "NLRI")
    if not attribute_field:
        if announced:
            update.notes.append("treat-as-withdraw: NLRI without path attributes")
            _withdrawals(update, announced)
        return update
    attrs = parse_attributes(attribute_field, asn_size, ibgp, addpath)
    update.notes.extend(attrs.notes)
    if attrs.unreach:
        _withdrawals(update, attrs.unreach)
    groups = []
    if announced:
        groups.append((attrs.next_hop, announced))
    if attrs.reach:
        groups.append(attrs.reach)
    if not groups:
        return update
    missing = [name for code, name in ((ORIGIN, "ORIGIN"), (AS_PATH, "AS_PATH")) if code not in attrs.seen]
    if announced and NEXT_HOP not in attrs.seen:
        missing.append("NEXT_HOP")
    reasons = attrs.withdraw_reasons + [f"missing {name}" for name in missing]
    if reasons:
        update.notes.append("treat-as-withdraw: " + "; ".join(reasons))
        for _hop, entries in groups:
            _withdrawals(update, entries)
        return update
    as_path, length = _merge_as4(attrs.as_path, attrs.length, attrs.as4 if asn_size == 2 else None)
    for next_hop, entries in groups:
        by_path: dict[str, list[str]] = {}
        for path_id, prefix in entries:
            by_path.setdefault(path_id, []).append(prefix)
        for path_id, prefixes in by_path.items():
            update.announced.append(Routes(prefixes, as_path, length, path_id, next_hop, attrs.communities))
    return update
