"""The Host verbs for `routing: own` slivers (compiler.resources.host), mixed into the kernel
Host: namespaces owned by a user namespace of their own (dataplane.userns) and whether a
slice's user can read its own configuration. Side effects: namespaces and /proc."""
from __future__ import annotations

from . import userns


class OwnSliverVerbs:
    _fresh: set[str]

    def netns_create_owned(self, ns: str, uid: int, gid: int) -> None:
        userns.create(ns, uid, gid)
        self._fresh.add(ns)

    def netns_owned_elsewhere(self, ns: str) -> bool:
        try:
            return userns.owned_elsewhere(ns)
        except OSError:  # gone meanwhile: nothing in it to believe either way
            return False

    def netns_root_ids(self, ns: str) -> tuple[int, int] | None:
        return userns.root_ids(ns)

    def unreadable_by(self, path: str, uid: int, gid: int) -> str | None:
        try:
            return userns.unreadable_by(path, uid, gid)
        except OSError as exc:
            return f"{path}: {exc.strerror}"
