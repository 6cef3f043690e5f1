"""What a YAML scalar means in a topology file: YAML 1.2's core schema (pure).

PyYAML resolves plain scalars by YAML 1.1, where `no`, `yes`, `on`, `off`, `y` and `n` are
booleans (a node called `no`, Norway, becomes `false`), `010` is octal and `1:30` is 90.
Topology files follow YAML 1.2 instead: the only booleans are true/false, the only nulls
are null, ~ and nothing; integers are decimal, 0o octal or 0x hexadecimal; everything else
is text, as written. Quoted scalars are always text. The explicit tags of these types
(!!str, !!int, !!float, !!bool, !!null) and the non-specific `!` are understood; every
other tag is refused with one message, whatever it is on.
"""
from __future__ import annotations

import math
import re
from typing import Any

from .limits import MAX_NUMBER_CHARS

CORE = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (CORE + t for t in ("str", "int", "float", "bool", "null"))
SEQ, MAP, MERGE = CORE + "seq", CORE + "map", CORE + "merge"
SCALAR_TAGS = frozenset({STR, INT, FLOAT, BOOL, NULL})

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_DECIMAL = re.compile(r"[-+]?[0-9]+\Z")
_OCTAL = re.compile(r"0o[0-7]+\Z")
_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
_INFINITY = re.compile(r"[-+]?\.(?:inf|Inf|INF)\Z")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)\Z")

# YAML 1.1 booleans that are text here: said in hints where true/false was meant.
YAML11_BOOLEANS = frozenset({"yes", "no", "on", "off", "y", "n"})


class BadScalar(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def short_tag(tag: str) -> str:
    if tag.startswith(CORE):
        shown = "!!" + tag[len(CORE):]
    else:
        shown = tag if tag.startswith("!") else f"!<{tag}>"
    return shown if len(shown) <= 40 else shown[:37] + "..."


def unsupported(tag: str) -> str:
    return f"YAML: unsupported tag {short_tag(tag)}: only plain YAML values are accepted"


def _number(text: str) -> int | float | None:
    """The number `text` spells by the core schema, or None when it is not one."""
    if _DECIMAL.match(text):
        return int(text, 10)
    if _OCTAL.match(text):
        return int(text[2:], 8)
    if _HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    if _INFINITY.match(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.match(text):
        return math.nan
    return None


def _looks_numeric(text: str) -> bool:
    return bool(_DECIMAL.match(text) or _OCTAL.match(text) or _HEX.match(text) or _FLOAT.match(text))


def resolve_plain(text: str) -> tuple[str, Any]:
    """(tag, value) of a plain (unquoted, untagged) scalar. A plain `<<` is a merge key."""
    if text in _NULLS:
        return NULL, None
    if text in _BOOLS:
        return BOOL, _BOOLS[text]
    if text == "<<":
        return MERGE, "<<"
    if len(text) > MAX_NUMBER_CHARS and _looks_numeric(text):
        raise BadScalar(f"YAML: a number of {len(text)} characters: at most {MAX_NUMBER_CHARS} are accepted")
    number = _number(text)
    if number is None:
        return STR, text
    return (INT if isinstance(number, int) else FLOAT), number


def construct(tag: str, text: str) -> Any:
    """The value of a scalar with an explicit core tag; BadScalar when it is not one."""
    if tag == STR:
        return text
    if tag == NULL and text in _NULLS:
        return None
    if tag == BOOL and text in _BOOLS:
        return _BOOLS[text]
    if tag in (INT, FLOAT) and len(text) <= MAX_NUMBER_CHARS:
        number = _number(text)
        if isinstance(number, int) and tag == INT:
            return number
        if number is not None and tag == FLOAT:
            return float(number)
    if tag not in SCALAR_TAGS:
        raise BadScalar(unsupported(tag))
    shown = repr(text) if len(text) <= 40 else repr(text[:37] + "...")
    raise BadScalar(f"YAML: {shown} is not a valid {short_tag(tag)}")
