"""Network namespaces (a substrate node's, a sliver's, a lab host's): pure data and recipe.

Ownership: the namespace's `lo` carries the marker (`vispd:TOPO d=DIGEST`), and every
namespace is written to the state journal *before* it is created (all of one apply in one
write), so a run killed between creating and marking one still leaves it vispd's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Resource


@dataclass(frozen=True, slots=True)
class Netns(Resource):
    """A network namespace: a substrate node (`role=node`), a slice's sliver on a node
    (`role=sliver`) or a lab host (`role=lab`); `broken` is only ever observed."""

    KIND: ClassVar[str] = "netns"
    PHASE: ClassVar[int] = 0
    MODE: ClassVar[str] = "update"
    role: str = "node"
    slice: str | None = None
    sysctls: tuple[tuple[str, str], ...] = ()

    def make_key(self) -> tuple:
        return (self.KIND, self.ns)

    @property
    def substrate(self) -> bool:
        return self.role in ("node", "lab")

    @classmethod
    def batched(cls, action: str) -> bool:
        return action != "delete"  # one journal write before any namespace of an apply is made

    def batch_key(self) -> tuple:
        return ()

    @classmethod
    def apply_batch(cls, host, steps) -> None:
        creating = [s.resource.ns for s in steps if s.action == "create"]
        if creating:
            host.journal(creating)
        for step in steps:
            if step.action == "create":
                step.resource.create(host)
            else:
                step.resource.update(host, step.old)

    def create(self, host) -> None:
        if host.netns_exists(self.ns):
            host.netns_delete(self.ns)  # journaled as ours but unmarked or half-made: afresh
        host.netns_create(self.ns)
        self._configure(host, fresh=True)

    def update(self, host, old) -> None:
        if old is not None and old.role == "broken":
            host.netns_delete(self.ns)
            host.netns_create(self.ns)
            self._configure(host, fresh=True)
            return
        self._configure(host, fresh=False)

    def _configure(self, host, fresh: bool) -> None:
        host.set_sysctls(self.ns, self.sysctls)
        host.mark(self.ns, "lo", {"d": self.digest()}, replace=fresh, up=True)

    def delete(self, host) -> None:
        host.netns_delete(self.ns)

    @classmethod
    def observe(cls, host, view, desired) -> list[Resource]:
        if view.broken:
            return [cls(node=view.node, ns=view.ns, role="broken", slice=view.slice)]
        want = desired.get(("netns", view.ns))
        if want is not None and view.lo_tokens.get("d") == want.digest():
            return [want]
        role = "sliver" if view.slice else ("lab" if view.node.startswith("+") else "node")
        return [cls(node=view.node, ns=view.ns, role=role, slice=view.slice,
                    sysctls=(("unknown", view.lo_tokens.get("d", "")),))]
