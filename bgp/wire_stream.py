"""The hook's lines (`#vispd-wire PEER ADDPATH ASN4 BASE64`, bgp/exabgp_hook.py) -> the
helper's events: one api.Update per UPDATE message in the run. Pure.

A line holds complete BGP messages (19-byte header included), all UPDATEs, already checked
inside ExaBGP for what RFC 7606 answers with a session reset; if one still fails to parse
here its error is returned beside the events, for the log (the others are kept)."""
from __future__ import annotations

import base64

from bgp.wire import SessionReset, parse_update

WIRE_PREFIX = "#vispd-wire"
HEADER_LEN = 19


def is_wire_line(line) -> bool:
    return isinstance(line, str) and line.startswith(WIRE_PREFIX)


def decode_line(line: str, ibgp_peers: frozenset | set, now: float) -> tuple[list, list[str]]:
    """(api.Update events in order, error strings)."""
    try:
        _tag, peer, addpath, asn4, payload = line.split(None, 4)
        data = base64.b64decode(payload)
    except ValueError as exc:
        return [], [f"unreadable wire line ({exc})"]
    addpath_on, asn_size, ibgp = addpath == "1", 4 if asn4 == "1" else 2, peer in ibgp_peers
    events, errors = [], []
    position, end = 0, len(data)
    while position + HEADER_LEN <= end:
        length = (data[position + 16] << 8) | data[position + 17]
        if length < HEADER_LEN or position + length > end:
            errors.append(f"{peer}: a message of length {length} overruns the wire line")
            break
        try:
            events.append(parse_update(data[position + HEADER_LEN:position + length], peer, addpath_on, asn_size,
                                       ibgp, now))
        except SessionReset as exc:
            errors.append(f"{peer}: UPDATE dropped ({exc.reason})")
        position += length
    return events, errors
