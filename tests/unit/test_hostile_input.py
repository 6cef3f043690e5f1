"""Hostile topology files (issue 10, "Parsing is not bounded"), by class: every input up to
the size limit gets exit 0 or 2 from `vispd validate`, located one-line messages with
short excerpts, within 5 s of CPU and 300 MiB, no traceback, no hang; over the limit,
one line at once. The bound checks run `vispd validate` in a child process and read its
resource usage (a capability bound, not a speed claim: CPU time, so a busy machine does
not make it flaky)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time

import pytest
import yaml

from bench import hostile_topologies as hostile
from model import limits
from unit_helpers import ROOT, abilene_full_text
from vispd import cli

# The bounds are for PyYAML built with libyaml (pip's wheels are); its pure-Python parser
# scans about 20 times slower.
needs_libyaml = pytest.mark.skipif(not getattr(yaml, "__with_libyaml__", False),
                                   reason="PyYAML without libyaml: the time bounds assume its C parser")
CPU_BOUND_S = 5.0
MEMORY_BOUND_MIB = 300
CHILD = """
import json, os, resource, sys
sys.path.insert(0, os.getcwd())
from vispd import cli
status = cli.main(["validate", sys.argv[1]])
usage = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM, not ru_maxrss: the latter keeps the high-water mark of the forked parent's image
# from before exec (a big pytest process), the former starts afresh with this program.
hwm_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"status": status, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "maxrss_mib": hwm_kib / 1024}))
"""


def validate(path: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["validate", str(path)])
    return status, out.getvalue(), err.getvalue()


def bounded_run(path, timeout: float = 30) -> tuple[dict, str]:
    """`vispd validate PATH` in a child process: (its status and usage, its stderr)."""
    result = subprocess.run([sys.executable, "-c", CHILD, str(path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1]), result.stderr


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def first_problem(err: str) -> str:
    return err.splitlines()[0]


HEAVY = {  # name: (text, what the first message says)
    "merge-bomb": (hostile.merge_bomb, "expands to more than"),
    "merge-and-alias-bomb": (hostile.merge_and_alias_bomb, "expands to more than"),
    "billion-laughs": (hostile.laughs, "expands to more than"),
    "aliased-megabyte-values": (hostile.aliased_big_values, "characters through its aliases"),
    "plain-nodes-to-the-size-limit": (lambda: hostile.plain_nodes(limits.MAX_FILE_BYTES - 100),
                                      f"more than {limits.MAX_VALUES} values"),
    "bad-names-to-the-size-limit": (lambda: hostile.many_bad_names(limits.MAX_FILE_BYTES - 100),
                                    f"more than {limits.MAX_VALUES} values"),
    "flow-of-numbers": (lambda: hostile.flow_of_ones(limits.MAX_FILE_BYTES - 100), "values"),
    "one-line-of-unknown-keys": (hostile.long_line_of_unknown_keys, "values"),
    "unknown-keys-at-the-value-limit": (hostile.unknown_keys_at_the_value_limit, "unknown key 'bad0'"),
    "deep-flow": (hostile.deep_flow, f"nested more than {limits.MAX_DEPTH} levels"),
    "syntax-error-after-3-mib-of-comments": (
        lambda: hostile.syntax_error_after(hostile.HEAD + "# a comment line of some length\n" * 98_000),
        "YAML syntax error"),
}


@needs_libyaml
@pytest.mark.parametrize("name", sorted(HEAVY))
def test_heavy_inputs_are_refused_within_the_bounds(tmp_path, name):
    make, said = HEAVY[name]
    text = make()
    assert len(text.encode()) <= limits.MAX_FILE_BYTES
    usage, err = bounded_run(write(tmp_path, name, text))
    assert usage["status"] == 2
    assert said in first_problem(err)
    assert usage["cpu_s"] <= CPU_BOUND_S, usage
    assert usage["maxrss_mib"] <= MEMORY_BOUND_MIB, usage
    assert len(err) <= hostile.output_bound(len(str(tmp_path)) + 40)


@needs_libyaml
def test_the_largest_topology_the_limits_accept_validates_within_the_bounds(tmp_path):
    usage, err = bounded_run(write(tmp_path, "limits", hostile.at_the_count_limits()))
    assert (usage["status"], err) == (0, "")
    assert usage["cpu_s"] <= CPU_BOUND_S, usage
    assert usage["maxrss_mib"] <= MEMORY_BOUND_MIB, usage


def test_dangling_names_at_the_count_limits_are_reported_within_the_bounds(tmp_path):
    try:
        usage, err = bounded_run(write(tmp_path, "dangling", hostile.dangling_link_ends()), timeout=8)
    except subprocess.TimeoutExpired:
        pytest.fail("vispd validate ran for more than 8 s")
    assert usage["status"] == 2 and usage["cpu_s"] <= CPU_BOUND_S


# -- size and endless input ---------------------------------------------------------------


def test_over_the_size_limit_one_line_at_once_without_reading(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as handle:
        handle.truncate(1 << 40)  # a sparse terabyte: reading it would never end
    started = time.monotonic()
    status, out, err = validate(path)
    assert time.monotonic() - started < 2
    assert status == 2 and out == ""
    assert err.splitlines() == [f"{path}:1:1: the file has {1 << 40} bytes: a topology file is at most "
                                f"4 MiB ({limits.MAX_FILE_BYTES} bytes)", "1 error; nothing was changed"]


def test_just_over_the_size_limit_is_refused(tmp_path):
    path = write(tmp_path, "five", hostile.plain_nodes(limits.MAX_FILE_BYTES + 1))
    status, _, err = validate(path)
    assert status == 2 and len(err.splitlines()) == 2
    assert "a topology file is at most 4 MiB" in err


def test_an_endless_device_is_refused_at_the_size_limit():
    status, _, err = validate("/dev/zero")
    assert status == 2
    assert first_problem(err) == ("/dev/zero:1:1: more than 4 MiB of input: a topology file is at most "
                                  f"4 MiB ({limits.MAX_FILE_BYTES} bytes)")


def test_a_fifo_nobody_writes_to_does_not_hang(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    started = time.monotonic()
    status, _, err = validate(fifo)
    assert time.monotonic() - started < limits.READ_TIMEOUT_S + 2
    assert status == 2 and "did not end within" in first_problem(err)


def test_a_fifo_whose_writer_never_finishes_does_not_hang(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    stop = threading.Event()

    def slow_writer():
        with open(fifo, "w") as handle:
            while not stop.is_set():
                handle.write("# still writing\n")
                handle.flush()
                time.sleep(0.05)

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        status, _, err = validate(fifo)
    finally:
        stop.set()
        writer.join(5)
    assert status == 2 and "did not end within" in first_problem(err)


def test_a_fifo_with_a_topology_in_it_validates(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    text = abilene_full_text()
    writer = threading.Thread(target=lambda: fifo.write_text(text))
    writer.start()
    try:
        status, out, err = validate(fifo)
    finally:
        writer.join(5)
    assert (status, err) == (0, "")
    assert out == f"{fifo}: ok: 11 nodes, 14 links, 2 slices\n"


def test_not_utf8_is_located_in_characters(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: é\ndescription: caf".encode() + b"\xe9\n")
    status, _, err = validate(path)
    assert status == 2 and first_problem(err) == f"{path}:2:17: not UTF-8 text (byte 0xe9)"
