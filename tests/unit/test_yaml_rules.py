"""The YAML rules of topology files (YAML 1.2 core schema, core tags only) and the bounded
'did you mean' helper. Pure."""
from __future__ import annotations

import math

import pytest

from model.hints import Hints
from model.yamlscalar import BOOL, FLOAT, INT, MERGE, NULL, STR, BadScalar, construct, resolve_plain


@pytest.mark.parametrize("text, tag, value", [
    ("true", BOOL, True), ("False", BOOL, False), ("TRUE", BOOL, True),
    ("yes", STR, "yes"), ("no", STR, "no"), ("on", STR, "on"), ("off", STR, "off"), ("y", STR, "y"),
    ("null", NULL, None), ("~", NULL, None), ("", NULL, None), ("None", STR, "None"),
    ("12", INT, 12), ("-12", INT, -12), ("+12", INT, 12), ("010", INT, 10), ("0o17", INT, 15),
    ("0x1F", INT, 31), ("0b101", STR, "0b101"), ("1_000", STR, "1_000"), ("1:30", STR, "1:30"),
    ("1.5", FLOAT, 1.5), ("1e3", FLOAT, 1000.0), ("-.inf", FLOAT, -math.inf), (".5", FLOAT, 0.5),
    ("2005-02-01", STR, "2005-02-01"), ("<<", MERGE, "<<"), ("1G", STR, "1G"), ("١٢", STR, "١٢"),
])
def test_plain_scalars_resolve_by_the_yaml12_core_schema(text, tag, value):
    assert resolve_plain(text) == (tag, value)


def test_nan_is_a_float():
    tag, value = resolve_plain(".nan")
    assert tag == FLOAT and math.isnan(value)


def test_long_numbers_are_refused_long_text_is_not():
    with pytest.raises(BadScalar, match="a number of 41 characters"):
        resolve_plain("9" * 41)
    assert resolve_plain("a" * 10_000) == (STR, "a" * 10_000)


@pytest.mark.parametrize("tag, text, value", [
    (STR, "123", "123"), (INT, "0x10", 16), (FLOAT, "2", 2.0), (BOOL, "false", False), (NULL, "~", None),
])
def test_core_tags_construct_their_type(tag, text, value):
    assert construct(tag, text) == value


@pytest.mark.parametrize("tag, text, said", [
    (INT, "sixty", "'sixty' is not a valid !!int"), (INT, "1.5", "is not a valid !!int"),
    (BOOL, "yes", "'yes' is not a valid !!bool"), (NULL, "x", "is not a valid !!null"),
    ("tag:yaml.org,2002:binary", "aGk=", "unsupported tag !!binary"), ("!x", "a", "unsupported tag !x"),
    ("tag:example.com,2000:x", "a", "unsupported tag !<tag:example.com,2000:x>"),
    ("!" + "t" * 1000, "a", "unsupported tag !ttt"),
])
def test_other_tags_and_bad_values_are_refused(tag, text, said):
    with pytest.raises(BadScalar) as caught:
        construct(tag, text)
    assert said in caught.value.message and len(caught.value.message) < 120


def test_hints_suggest_the_closest_name_and_stop_at_their_budget():
    hints = Hints(["seattle", "denver", "chicago"], budget=7)
    assert hints.suffix("seatle") == " (did you mean 'seattle'?)"
    assert hints.closest("zzz") is None
    assert hints.closest("seatle") == "seattle"  # answered again from memory, no budget spent
    assert hints.suffix("denvr") == ""  # 3 + 3 comparisons spent, 3 more would exceed 7


def test_hints_bound_the_work_of_many_misses():
    known = [f"node-{i}" for i in range(2000)]
    hints = Hints(known)
    answered = [hints.closest(f"zz-{i}") for i in range(5000)]
    assert answered.count(None) == 5000 and hints.budget < len(known)
