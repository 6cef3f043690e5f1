"""Lab host shells by PID: recorded when a Mininet host starts, killed by `down`.

Mininet hosts are interactive shells (they ignore SIGTERM) holding a namespace vispd
names; their PIDs and start times are recorded in the topology's state so `vispd down`
stops exactly those processes, even when the lab's own process died.

I/O: the record file and signals to the recorded PIDs.
"""
from __future__ import annotations

import contextlib
import os
import signal


def process_start(pid: int) -> str | None:
    """The start time of a process (field 22 of /proc/PID/stat), to tell a PID reused."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (FileNotFoundError, IndexError):
        return None


def kill_recorded_shells(shells_file: str, ns: str | None = None) -> list[int]:
    """SIGKILL the lab shells recorded in `shells_file` (all, or those in namespace `ns`)
    whose PID still names the same process; interactive shells ignore SIGTERM."""
    killed = []
    try:
        with open(shells_file) as handle:
            records = [line.split() for line in handle if len(line.split()) == 3]
    except FileNotFoundError:
        return killed
    for where, pid_text, start in records:
        if ns is not None and where != ns:
            continue
        pid = int(pid_text)
        if process_start(pid) == start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed
