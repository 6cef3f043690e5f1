"""What the access components share: the description of a process to start (`DaemonSpec`,
which the planner turns into a vispd `Daemon`), machine-wide unique interface names, and
atomic file writes (readers such as OpenVPN's CRL check never see half a file).

`DaemonSpec` is pure data; `atomic_write` writes files.
"""
from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class DaemonSpec:
    """A foreground process run in a namespace with cwd = the run directory and stopped by
    PID: `files` are written into the run directory before it starts (file name -> text;
    secrets are never among them, they stay in the caller's key directories)."""

    name: str
    argv: tuple[str, ...]
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


def python() -> str:
    return sys.executable or "python3"


def module_env() -> dict[str, str]:
    """Environment a `python -m access.X` daemon needs to import this package from any cwd."""
    return {"PYTHONPATH": PROJECT_ROOT}


def atomic_write(path: str, data: bytes | str, mode: int = 0o644) -> None:
    """Write `data` to `path` through a temporary file and rename (same directory), with
    permissions `mode` from the start (a private key is never briefly world-readable)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
