"""What `vispd plan` prints: every step up to PLAN_LIST_LIMIT, a table by kind beyond it
(--full lists them all), the summary line last either way, and --json the same bytes as one
`json.dumps` of every step, written step by step."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from compiler.diff import diff
from compiler.planner import compile_plan
from unit_helpers import ROOT, edited_abilene
from vispd.cli import PLAN_LIST_LIMIT, _json_lines, _kind_table


def test_json_is_written_step_by_step_and_reads_as_one_document(abilene_plan):
    steps = diff([], abilene_plan.resources)
    expected = json.dumps([{"action": s.action, **s.resource.to_json()} for s in steps], indent=1, default=str)
    assert "\n".join(_json_lines(steps)) == expected
    assert "\n".join(_json_lines([])) == json.dumps([], indent=1)


def test_the_table_counts_every_step_by_kind_and_action(abilene_plan):
    cheaper = compile_plan(edited_abilene("denver],           bandwidth: 1G, cost: 16, delay: geo}",
                                          "denver],           bandwidth: 1G, cost: 60, delay: geo}"))
    steps = diff(abilene_plan.resources, cheaper.resources) + diff([], abilene_plan.resources[:40])
    lines = _kind_table(steps)
    rows = {line.split()[0]: [int(n.replace(",", "")) for n in line.split()[1:]] for line in lines[2:-1]}
    for kind, (create, update, delete, namespaces) in rows.items():
        mine = [s for s in steps if s.resource.KIND == kind]
        assert [create, update, delete] == [sum(1 for s in mine if s.action == a) for a in ("create", "update", "delete")]
        assert namespaces == len({s.resource.ns for s in mine})
    assert sum(sum(r[:3]) for r in rows.values()) == len(steps)
    assert list(rows) == sorted(rows, key=lambda k: next(s.resource.PHASE for s in steps if s.resource.KIND == k))
    assert lines[-1].startswith(f"  on {len({s.resource.node for s in steps} - {''})} nodes")


def ring(name: str, nodes: int) -> str:
    names = [f"r{i:02d}" for i in range(nodes)]
    links = "".join(f"  - {{between: [{a}, {b}], bandwidth: 1G, cost: 1}}\n"
                    for a, b in zip(names, names[1:] + names[:1]))
    return (f"name: {name}\nasn: 64512\naddress-space: [10.0.0.0/12]\n"
            f"nodes: [{', '.join('{name: %s}' % n for n in names)}]\nlinks:\n{links}"
            "slices:\n  - {name: a, bandwidth: 10M}\n  - {name: b, bandwidth: 10M}\n")


def test_a_long_plan_is_a_table_unless_full_is_asked(tmp_path):
    path = tmp_path / "hsplanout.yaml"
    path.write_text(ring("hsplanout", 60))
    env = {**os.environ, "VISPD_STATE_DIR": str(tmp_path / "state")}

    def plan(*flags: str) -> list[str]:
        result = subprocess.run([sys.executable, "-m", "vispd.cli", "plan", str(path), *flags], capture_output=True,
                                text=True, cwd=ROOT, env=env, check=True)
        return result.stdout.splitlines()

    table, full = plan(), plan("--full")
    steps = len(full) - 1
    assert steps > PLAN_LIST_LIMIT
    assert full[-1] == table[-1] == f"{steps} to create"
    assert table[0].startswith(f"{steps:,} steps, by kind") and "--full" in table[0]
    assert len(table) < 20 and any(line.split()[:2] == ["route", f"{sum(1 for x in full if '+ route' in x):,}"]
                                   for line in (t.strip() for t in table))
    assert all(line[:2] in ("+ ", "~ ", "- ") for line in full[:-1])
    assert len(json.loads("\n".join(plan("--json")))) == steps
