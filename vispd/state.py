"""The controller's on-disk state for each topology (SQLite-free: a directory per topology).

`STATE_DIR/TOPO/` holds `source` (absolute path of the YAML last applied, so commands can
name the topology instead of the file), `namespaces` (a journal: every namespace vispd
began to create, written *before* creating it, so a crash never leaves one unowned) and
`lock` (serialises commands on one topology) and `borrowed/` (what the machine lends vispd —
interfaces, sysctls — as it was found, until it is given back). STATE_DIR is $VISPD_STATE_DIR or
/var/lib/vispd.

I/O: files under the state directory.
"""
from __future__ import annotations

import contextlib
import fcntl
import grp
import os
import pwd
import shutil
import sys
from typing import Iterator

from compiler.context import DEFAULT_UID_BASE, UID_SPAN
from compiler.runtime import DEFAULT_STATE_ROOT, Runtime
from model.errors import VispdError

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def state_root() -> str:
    return os.environ.get("VISPD_STATE_DIR", DEFAULT_STATE_ROOT)


def machine_runtime(topology: str) -> Runtime:
    """The Runtime of this machine: this interpreter and checkout, the state root of the
    environment ($VISPD_STATE_DIR), and the ids of its accounts in the range default slice
    uids come from (they must not be given to a slice)."""
    return Runtime.for_topology(topology, python=sys.executable or "python3", project_root=PROJECT_ROOT,
                                state_root=state_root(), taken_ids=accounts_in(DEFAULT_UID_BASE, UID_SPAN))


def accounts_in(base: int, span: int) -> frozenset[int]:
    """uids and gids of this machine's accounts and groups in [base, base + span)."""
    ids = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
    return frozenset(i for i in ids if base <= i < base + span)


def account_of(uid: int) -> str | None:
    """'account NAME' or 'group NAME' that has this id on this machine, else None."""
    try:
        return f"account '{pwd.getpwuid(uid).pw_name}'"
    except KeyError:
        pass
    try:
        return f"group '{grp.getgrgid(uid).gr_name}'"
    except KeyError:
        return None


class TopologyState:
    def __init__(self, name: str):
        self.name = name
        self.runtime = machine_runtime(name)
        self.dir = self.runtime.state_dir

    def _path(self, leaf: str) -> str:
        return os.path.join(self.dir, leaf)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        os.makedirs(self.dir, exist_ok=True)
        with open(self._path("lock"), "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise VispdError(f"another vispd command is working on '{self.name}'") from None
            yield

    def source(self) -> str | None:
        try:
            with open(self._path("source")) as handle:
                return handle.read().strip() or None
        except FileNotFoundError:
            return None

    def set_source(self, path: str) -> None:
        os.makedirs(self.dir, exist_ok=True)
        with open(self._path("source"), "w") as handle:
            handle.write(os.path.abspath(path) + "\n")

    def journal(self, namespaces: list[str]) -> None:
        """Record namespaces about to be created (durably, before they exist)."""
        os.makedirs(self.dir, exist_ok=True)
        with open(self._path("namespaces"), "a") as handle:
            handle.write("".join(n + "\n" for n in namespaces))
            handle.flush()
            os.fsync(handle.fileno())

    def journaled(self) -> set[str]:
        try:
            with open(self._path("namespaces")) as handle:
                return {line.strip() for line in handle if line.strip()}
        except FileNotFoundError:
            return set()

    def failed_links(self) -> frozenset[tuple[str, str]]:
        """Substrate links taken down with `vispd link down` (sorted node pairs)."""
        try:
            with open(self._path("failed-links")) as handle:
                return frozenset(tuple(sorted(line.split())) for line in handle if len(line.split()) == 2)
        except FileNotFoundError:
            return frozenset()

    def set_failed_links(self, links: frozenset[tuple[str, str]]) -> None:
        os.makedirs(self.dir, exist_ok=True)
        tmp = self._path("failed-links.tmp")
        with open(tmp, "w") as handle:
            handle.write("".join(f"{a} {b}\n" for a, b in sorted(links)))
        os.replace(tmp, self._path("failed-links"))

    def borrow_dir(self) -> str:
        """Where what the machine lends is recorded before it is changed (dataplane.borrow)."""
        return self._path("borrowed")

    def lab_shells_file(self) -> str:
        """Where a Mininet lab records its host shells by PID (dataplane.shells)."""
        return self._path("lab-shells")

    def forget(self) -> None:
        """Remove the state of a topology that is fully down."""
        shutil.rmtree(self.dir, ignore_errors=True)


def rewrite_journal(state: TopologyState, namespaces: list[str]) -> None:
    """After a complete apply, the journal is exactly the namespaces that exist now."""
    os.makedirs(state.dir, exist_ok=True)
    tmp = os.path.join(state.dir, "namespaces.tmp")
    with open(tmp, "w") as handle:
        handle.write("".join(n + "\n" for n in sorted(namespaces)))
    os.replace(tmp, os.path.join(state.dir, "namespaces"))
