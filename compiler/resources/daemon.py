"""A process vispd runs (pure data and recipe): BIRD, ExaBGP, the egress manager, access
servers. It runs in namespace `ns` ("" is the machine's own), with its configuration files
written into the topology's run directory; it is started without daemonising, tracked and
stopped by PID. When only its files change and it has a `reload_signal`, the files are
rewritten and the daemon signalled (BIRD and the egress manager reload on SIGHUP);
otherwise it is restarted."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import ClassVar

from .base import Resource


@dataclass(frozen=True)
class Daemon(Resource):
    KIND: ClassVar[str] = "daemon"
    PHASE: ClassVar[int] = 6
    MODE: ClassVar[str] = "update"
    name: str = ""
    argv: tuple[str, ...] = ()
    files: tuple[tuple[str, str], ...] = ()  # (file name in the run directory, content)
    env: tuple[tuple[str, str], ...] = ()
    reload_signal: int = 0  # 0: restart on any change

    def launch_digest(self) -> str:
        """Hash of what a reload cannot change: namespace, command line, environment."""
        blob = json.dumps([self.ns, self.argv, self.env], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def key(self) -> tuple:
        return (self.KIND, self.name)

    def describe(self) -> str:
        return f"daemon {self.name} in {self.ns or 'the host namespace'}"

    def create(self, host) -> None:
        host.daemon_stop(self.name)  # a stale one from an earlier run, if any
        host.daemon_start(self.name, self.ns, list(self.argv), dict(self.files), dict(self.env),
                          self.digest(), self.launch_digest())

    def update(self, host, old) -> None:
        same_process = old is not None and old.launch_digest() == self.launch_digest()
        if not (same_process and self.reload_signal and host.daemon_reload(
                self.name, dict(self.files), self.reload_signal, self.digest(), self.launch_digest())):
            self.create(host)

    def delete(self, host) -> None:
        host.daemon_stop(self.name)

    @classmethod
    def observe_machine(cls, host, desired) -> list[Resource]:
        found: list[Resource] = []
        for running in host.daemons_running():
            want = desired.get(("daemon", running.name))
            if want is not None and running.digest == want.digest() and want.ns == running.ns:
                found.append(want)
            elif want is not None and running.launch == want.launch_digest() and want.ns == running.ns:
                found.append(replace(want, files=(("?", running.digest),)))  # same process, other files
            else:
                found.append(cls(node=want.node if want else "", ns=running.ns, name=running.name, argv=("?",)))
        return found
