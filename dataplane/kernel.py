"""The kernel backend: observe what vispd owns for a topology and apply diff steps, on this
machine. It composes a `KernelHost` (the verbs recipes call) and a `KernelReader` (views of
owned namespaces), and dispatches every step to its resource kind's recipe through the
registry `compiler.resources.RESOURCE_KINDS` — it never looks at a kind's name.

Nothing without a vispd marker is ever reported, changed or deleted.

I/O, through its KernelHost.
"""
from __future__ import annotations

import subprocess
import time
from typing import Callable, Iterable

from pyroute2.netlink.exceptions import NetlinkError

from compiler.diff import Step
from compiler.resources import DEVICE_KINDS, RESOURCE_KINDS, Device, Resource, RouteBatchError
from model.errors import VispdError

from .host import KernelHost
from .observe import KernelReader

IFF_LOWER_UP = 0x10000
FAILURES = (OSError, NetlinkError, subprocess.CalledProcessError, VispdError)


class ApplyError(VispdError):
    def __init__(self, step: Step, cause: BaseException):
        super().__init__(f"{step.describe()}: {cause}")
        self.step = step


class KernelBackend:
    """Observes and changes the kernel for one topology."""

    host_class = KernelHost

    def __init__(self, topology: str, journal: Callable[[list[str]], None] | None = None,
                 known_namespaces: Iterable[str] = (), run_dir: str | None = None,
                 shells_file: str | None = None, **host_options):
        self.topology = topology
        self.host = self.host_class(topology, journal=journal, run_dir=run_dir, shells_file=shells_file,
                                    **host_options)
        self.reader = KernelReader(self.host, known_namespaces)

    @property
    def unowned(self) -> list[str]:
        return self.reader.unowned

    def close(self) -> None:
        self.host.close()

    # -- observe -------------------------------------------------------------------------
    def namespaces(self) -> list[str]:
        return self.reader.namespaces()

    def observe(self, desired: dict[tuple, Resource]) -> list[Resource]:
        """Every resource vispd owns for this topology, as each kind reports it: the desired
        resource itself where the kernel matches it, else one that differs from it."""
        found: list[Resource] = []
        for ns in self.namespaces():
            view = self.reader.view(ns)
            for kind in RESOURCE_KINDS:
                found.extend(kind.observe(self.host, view, desired))
            if not view.broken:  # owned devices no kind claims: stray, removed
                found.extend(Device(node=view.node, ns=ns, ifname=d.ifname, mtu=-1)
                             for d in view.devices if not any(k.claims(d) for k in DEVICE_KINDS))
        for kind in RESOURCE_KINDS:
            found.extend(kind.observe_machine(self.host, desired))
        return found

    def refusals(self, steps: list[Step]) -> list[str]:
        """Why this machine cannot hold what `steps` would create or change (asked before
        any step is applied, so a refusal leaves nothing half-built)."""
        said = []
        for step in steps:
            if step.action != "delete":
                reason = step.resource.refusal(self.host, step.old)
                if reason:
                    said.append(f"{step.resource.describe()}: {reason}")
        return said

    # -- apply ---------------------------------------------------------------------------
    def apply(self, steps: list[Step], progress: Callable[[Step], None] | None = None) -> None:
        """Carry out steps in order. Kinds that batch (namespaces, shaping, routes) gather
        their steps per batch key and are flushed before the first step of a later phase."""
        pending: dict[tuple[type, tuple], list[Step]] = {}
        for step in steps:
            kind = type(step.resource)
            self._flush(pending, progress, before_phase=step.resource.PHASE)
            if kind.batched(step.action):
                pending.setdefault((kind, step.resource.batch_key()), []).append(step)
                continue
            self._run(step)
            if progress:
                progress(step)
        self._flush(pending, progress)

    def _run(self, step: Step) -> None:
        try:
            if step.action == "create":
                step.resource.create(self.host)
            elif step.action == "update":
                step.resource.update(self.host, step.old)
            else:
                step.resource.delete(self.host)
        except FAILURES as exc:
            raise ApplyError(step, exc) from exc

    def _flush(self, pending: dict, progress, before_phase: int | None = None) -> None:
        for key in sorted((k for k in pending if before_phase is None or k[0].PHASE < before_phase),
                          key=lambda k: (k[0].PHASE, k[1])):
            kind, _ = key
            batch = pending.pop(key)
            try:
                kind.apply_batch(self.host, batch)
            except RouteBatchError as exc:
                raise ApplyError(exc.step, exc) from exc
            except FAILURES as exc:
                raise ApplyError(batch[0], exc) from exc
            if progress:
                for step in batch:
                    progress(step)

    # -- links ---------------------------------------------------------------------------
    def wait_carrier(self, devices: list[tuple[str, str]], timeout: float) -> bool:
        """Wait until every (namespace, device) has carrier (IFF_LOWER_UP); False on timeout."""
        deadline = time.monotonic() + timeout
        pending = list(devices)
        while pending:
            pending = [(ns, ifname) for ns, ifname in pending if not self._has_carrier(ns, ifname)]
            if not pending:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        return True

    def _has_carrier(self, ns: str, ifname: str) -> bool:
        index = self.host.lookup(ns, ifname)
        if index is None:
            return True  # nothing to wait for
        return bool(self.host.ipr(ns).get_links(index)[0]["flags"] & IFF_LOWER_UP)
