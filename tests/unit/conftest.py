"""Fixtures for the pure-core tests (no root, no kernel): the default topology and its plan."""
from __future__ import annotations

import pytest

from unit_helpers import ABILENE, abilene_text
from compiler.loader import load_topology
from compiler.planner import compile_plan


@pytest.fixture(scope="session")
def abilene():
    return load_topology(ABILENE, abilene_text())


@pytest.fixture(scope="session")
def abilene_plan(abilene):
    return compile_plan(abilene)
