"""Golden test: the rendered plan of topologies/abilene.yaml, one line per resource, as
`vispd plan` shows it on an empty machine. Regenerate after an intended change with

    VISPD_UPDATE_GOLDEN=1 python3 -m pytest tests/golden

and review the diff of abilene.plan.txt like any other change."""
from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import replace

import pytest

from compiler.diff import diff
from compiler.loader import load_topology
from compiler.planner import compile_plan
from compiler.resources import Daemon
from compiler.runtime import Runtime

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(HERE, "abilene.plan.txt")
# The plan is a pure function of the topology and the runtime: with this runtime, the daemons'
# command lines read <python> and <repo> on every machine.
# The node's guard is part of the runtime: the nftables one (the default) and the BPF one
# (what machines with tc BPF run: the engine detects it) each have their golden plan. Links
# are delayed as on a kernel without netem (this project's test machines): a delay process
# per node (compiler.delay).
RUNTIME = dataclasses.replace(Runtime.for_topology("abilene", python="<python>", project_root="<repo>"),
                              delay_mechanism="delayline")
GOLDEN_BY_GUARD = {"nft": GOLDEN, "bpf-tcx": os.path.join(HERE, "abilene.plan-bpf.txt")}


def render_plan(path: str, runtime: Runtime = RUNTIME) -> str:
    plan = compile_plan(load_topology(path), runtime)
    steps = diff([], plan.resources)
    assert len(steps) == len(plan.resources)
    return "".join(step.describe() + "\n" for step in steps)


@pytest.mark.parametrize("guard", sorted(GOLDEN_BY_GUARD))
def test_abilene_plan_matches_golden(guard):
    golden = GOLDEN_BY_GUARD[guard]
    actual = render_plan(os.path.join(ROOT, "topologies", "abilene.yaml"), replace(RUNTIME, guard=guard))
    if os.environ.get("VISPD_UPDATE_GOLDEN") == "1":
        with open(golden, "w", encoding="utf-8") as handle:
            handle.write(actual)
    with open(golden, encoding="utf-8") as handle:
        expected = handle.read()
    if actual != expected:
        delta = "".join(difflib.unified_diff(
            expected.splitlines(keepends=True), actual.splitlines(keepends=True),
            fromfile=f"tests/golden/{os.path.basename(golden)} (golden)", tofile="plan now", n=1))
        lines = delta.splitlines()
        shown = "\n".join(lines[:80]) + (f"\n... ({len(lines) - 80} more diff lines)" if len(lines) > 80 else "")
        raise AssertionError(f"the plan of abilene.yaml ({guard} guard) differs from the golden file "
                             "(VISPD_UPDATE_GOLDEN=1 regenerates it):\n" + shown)


DAEMONS_GOLDEN = os.path.join(HERE, "abilene.daemons.txt")


def render_daemons(path: str) -> str:
    """Every daemon's command line and files (the machine-specific paths are the runtime's)."""
    plan = compile_plan(load_topology(path), RUNTIME)
    parts = []
    for daemon in sorted((r for r in plan.resources if isinstance(r, Daemon)), key=lambda d: d.name):
        parts.append(f"=== {daemon.name} in {daemon.ns or 'the host namespace'}\n$ {' '.join(daemon.argv)}\n")
        for leaf, content in daemon.files:
            parts.append(f"--- {leaf}\n{content.rstrip()}\n")
    return "".join(parts)


def test_abilene_daemon_configs_match_golden():
    actual = render_daemons(os.path.join(ROOT, "topologies", "abilene.yaml"))
    if os.environ.get("VISPD_UPDATE_GOLDEN") == "1":
        with open(DAEMONS_GOLDEN, "w") as handle:
            handle.write(actual)
    with open(DAEMONS_GOLDEN) as handle:
        expected = handle.read()
    if actual != expected:
        delta = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                             "abilene.daemons.txt", "rendered now"))
        raise AssertionError(f"daemon configurations differ from the golden file:\n{delta}")
