"""Every validation rule is proven by the bad-input corpus: each place in the semantic checks
that reports a problem (a `say(...)` call in compiler/checks/ or in a kind's `check`) is
reached by at least one file of tests/data/bad/. A new rule without a corpus file fails here."""
from __future__ import annotations

import ast
import glob
import inspect
import os

import pytest

from compiler.checks import common
from compiler.loader import load_topology
from model.errors import TopologyError
from unit_helpers import BAD_DIR, ROOT

RULE_DIRS = ("compiler/checks", "compiler/access_types", "compiler/links", "compiler/providers")


def rule_sites() -> set[tuple[str, int]]:
    """(file, line) of every `say(...)` call in the modules that hold semantic rules."""
    sites = set()
    for directory in RULE_DIRS:
        for path in glob.glob(os.path.join(ROOT, directory, "*.py")):
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "say":
                    sites.add((os.path.relpath(path, ROOT), node.lineno))
    return sites


@pytest.fixture
def reached(monkeypatch) -> set[tuple[str, int]]:
    """(file, line) of the `say(...)` calls the corpus reaches."""
    seen: set[tuple[str, int]] = set()
    original = common.Reporter.__call__

    def recording(self, path, message):
        caller = inspect.stack()[1]
        seen.add((os.path.relpath(caller.filename, ROOT), caller.positions.lineno))
        original(self, path, message)

    monkeypatch.setattr(common.Reporter, "__call__", recording)
    for path in sorted(glob.glob(os.path.join(BAD_DIR, "*.yaml"))):
        try:
            load_topology(path)
        except TopologyError:
            pass
    return seen


def test_every_rule_is_reached_by_the_corpus(reached):
    sites = rule_sites()
    assert len(sites) > 40
    missing = sorted(sites - reached)
    assert not missing, "rules no corpus file triggers (add one to tests/data/bad/):\n" + "\n".join(
        f"  {path}:{line}: {open(os.path.join(ROOT, path)).read().splitlines()[line - 1].strip()}"
        for path, line in missing)
