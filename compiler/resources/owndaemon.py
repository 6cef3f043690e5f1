"""A `routing: own` slice's routing suite in one of its slivers (pure data and recipe): a
`Daemon` (started, reloaded, observed and stopped as every other) that runs as the slice's
own root in its sliver and reads the slice's configuration file with the slice's rights
(compiler.daemons.own). What it adds: the machine refuses it, before anything is built,
when the slice's user could not read that file (the suite would die at once)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .daemon import Daemon


@dataclass(frozen=True)
class OwnSuiteDaemon(Daemon):
    KIND: ClassVar[str] = "daemon"  # one of the daemons: observed and keyed as they are
    config: str = ""  # absolute path of the slice's configuration
    uid: int = -1  # the slice's uid and gid outside its sliver's user namespace
    gid: int = -1

    def describe(self) -> str:
        return f"daemon {self.name} in {self.ns} (the slice's own, {self.config})"

    def refusal(self, host, old=None) -> str | None:
        why = host.unreadable_by(self.config, self.uid, self.gid)
        if why:
            return f"the slice's user (uid {self.uid}) cannot read its configuration: {why}"
        return None
