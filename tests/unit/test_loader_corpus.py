"""The bad-input corpus: every file in tests/data/bad names, in `# expect: LINE:COL: text`
header lines, exactly the problems the loader must report (in file order), and the CLI
must turn them into FILE:LINE:COL lines with a caret, a count line and exit status 2."""
from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

import pytest

from unit_helpers import BAD_DIR, ROOT
from vispd import cli
from model.errors import TopologyError
from compiler.loader import load_topology

EXPECT = re.compile(r"^# expect: (\d+):(\d+): (.+)$")
FILES = sorted(glob.glob(os.path.join(BAD_DIR, "*.yaml")))


def expectations(path: str) -> list[tuple[int, int, str]]:
    found = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            match = EXPECT.match(line.rstrip("\n"))
            if match:
                found.append((int(match[1]), int(match[2]), match[3]))
    return found


def ids(path: str) -> str:
    return os.path.basename(path)[: -len(".yaml")]


def test_corpus_is_there():
    assert len(FILES) >= 30
    for path in FILES:
        assert expectations(path), f"{path} has no '# expect:' line"


@pytest.mark.parametrize("path", FILES, ids=ids)
def test_loader_reports_exactly_the_expected_problems(path):
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    got = [(p.mark.line, p.mark.column, p.message) for p in caught.value.problems]
    expected = expectations(path)
    report = "\n".join(f"  {line}:{col}: {msg}" for line, col, msg in got)
    assert len(got) == len(expected), f"expected {len(expected)} problems, got:\n{report}"
    for (line, col, message), (want_line, want_col, want_text) in zip(got, expected):
        assert (line, col) == (want_line, want_col), f"{want_text!r} expected at {want_line}:{want_col}, got:\n{report}"
        assert want_text in message, f"at {line}:{col}: {message!r} does not contain {want_text!r}"
    assert all(p.mark.file == path for p in caught.value.problems)


@pytest.mark.parametrize("path", FILES, ids=ids)
def test_cli_validate_exits_2_with_located_lines(path, capsys):
    status = cli.main(["validate", path])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    located = [line for line in lines if line.startswith(f"{path}:")]
    expected = expectations(path)
    assert [tuple(map(int, line[len(path) + 1:].split(":")[:2])) for line in located] == \
        [(line, col) for line, col, _ in expected]
    count = len(expected)
    assert lines[-1] == f"{count} error{'s' if count != 1 else ''}; nothing was changed"
    # Every problem on a line of the file is followed by that line (or an excerpt of it, when
    # long) and a caret under the column's character.
    with open(path, encoding="utf-8") as handle:
        source = handle.read().splitlines()
    for index, line in enumerate(lines):
        if line.startswith(f"{path}:") and index + 2 < len(lines) and lines[index + 2].strip() == "^":
            row, column = map(int, line[len(path) + 1:].split(":")[:2])
            quoted, caret = lines[index + 1], lines[index + 2]
            if "…" not in quoted:
                assert caret == "    " + " " * (column - 1) + "^"
            elif column <= len(source[row - 1]):
                assert quoted[caret.index("^")] == source[row - 1][column - 1], (quoted, caret)


def test_multi_error_file_reports_several_kinds_in_file_order():
    for name in ("multi-error.yaml", "multi-error-schema.yaml"):
        path = os.path.join(BAD_DIR, name)
        with pytest.raises(TopologyError) as caught:
            load_topology(path)
        problems = caught.value.problems
        assert len(problems) >= 3
        assert [p.mark.line for p in problems] == sorted(p.mark.line for p in problems)
        # Different kinds: no two messages share their first three words.
        kinds = {" ".join(p.message.split()[:3]) for p in problems}
        assert len(kinds) == len(problems)


def test_real_cli_process_prints_carets_and_no_traceback():
    """One run through `python -m vispd.cli`, as a user runs it (the rest run in-process)."""
    path = os.path.relpath(os.path.join(BAD_DIR, "multi-error.yaml"), ROOT)
    result = subprocess.run([sys.executable, "-m", "vispd.cli", "validate", path], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[:3] == [
        f"{path}:16:18: link endpoint 'z' is not a declared node",
        "      - between: [b, z]",
        "                     ^",
    ]
    assert result.stderr.splitlines()[-1] == "4 errors; nothing was changed"
