"""The CLI's contract with scripts: exit codes and where messages go (no root needed)."""
from __future__ import annotations

import os
import subprocess
import sys

from unit_helpers import ABILENE, ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vispd.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "VISPD_STATE_DIR": "/nonexistent/vispd-state"})


def test_validate_ok_exits_0_with_a_summary():
    result = run("validate", ABILENE)
    assert result.returncode == 0
    assert result.stdout.strip() == f"{ABILENE}: ok: 11 nodes, 14 links, 2 slices"


def test_an_unknown_topology_name_is_bad_input():
    for command in (["status", "nosuch"], ["check", "nosuch"], ["exec", "nosuch", "plb", "seattle", "--", "true"]):
        result = run(*command)
        assert result.returncode == 2, command
        assert result.stderr.strip() == "vispd: 'nosuch' is neither a topology file nor the name of a topology that is up"
        assert "Traceback" not in result.stderr


def test_exec_needs_a_command():
    result = run("exec", ABILENE, "plb", "seattle")
    assert result.returncode == 1 and "give a command after --" in result.stderr
