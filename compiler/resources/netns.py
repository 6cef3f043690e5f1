"""Network namespaces (a substrate node's, a sliver's, a lab host's): pure data and recipe.

Ownership: the namespace's `lo` carries the marker (`vispd:TOPO d=DIGEST`), and every
namespace is written to the state journal *before* it is created (all of one apply in one
write), so a run killed between creating and marking one still leaves it vispd's.

A `routing: own` slice's sliver (`userns`: the slice's uid and gid) is created inside a user
namespace of its own whose root is the slice (dataplane.userns). Who owns a namespace is
fixed when it is made, so the owner is part of the key: a slice changing to or from
`routing: own` gets its slivers removed and made again, and the owner is read from the
kernel, never from the `lo` marker (which such a slice can rewrite).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
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
    userns: tuple[int, ...] = ()  # (uid, gid) root of its own user namespace is; () the machine's

    def make_key(self) -> tuple:
        return (self.KIND, self.ns, "userns") if self.userns else (self.KIND, self.ns)

    def digest(self) -> str:
        if self.userns:
            return Resource.digest(self)
        # the machine's own namespaces keep the digest they had before `userns` existed
        plain = {f.name: getattr(self, f.name) for f in fields(self) if f.compare and f.name != "userns"}
        return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:12]

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
        self._make(host)
        self._configure(host, fresh=True)

    def _make(self, host) -> None:
        if self.userns:
            host.netns_create_owned(self.ns, *self.userns)
        else:
            host.netns_create(self.ns)

    def update(self, host, old) -> None:
        if old is not None and old.role == "broken":
            host.netns_delete(self.ns)
            self._make(host)
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
        owner = tuple(host.netns_root_ids(view.ns) or ()) if view.slice else ()
        want = desired.get(("netns", view.ns, "userns")) or desired.get(("netns", view.ns))
        if want is not None and view.lo_tokens.get("d") == want.digest() and want.userns == owner:
            return [want]
        role = "sliver" if view.slice else ("lab" if view.node.startswith("+") else "node")
        return [cls(node=view.node, ns=view.ns, role=role, slice=view.slice, userns=owner,
                    sysctls=(("unknown", view.lo_tokens.get("d", "")),))]
