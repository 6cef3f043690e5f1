"""A process vispd runs (pure data and recipe): BIRD, ExaBGP, the egress manager, access
servers. It runs in namespace `ns` ("" is the machine's own), with its configuration files
written into the topology's run directory; it is started without daemonising, tracked and
stopped by PID. When only its files change and it has a `reload_signal`, the files are
rewritten and the daemon signalled (BIRD and the egress manager reload on SIGHUP);
otherwise it is restarted.

A daemon that serves declares where (`listens`: (tcp|udp, address, port) or (unix, path,
0)): `up` refuses to start it where a foreign process already holds that place (naming
the process), waits until it does serve, and a daemon that runs but does not serve is
observed as broken, so `status` shows it and the next `up` restarts it."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from typing import ClassVar

from model.errors import VispdError

from .base import Resource

SERVE_TIMEOUT = 30.0  # seconds a started daemon has to take its listening places

Listen = tuple[str, str, int]  # ("tcp" | "udp" | "unix", address or path, port)


@dataclass(frozen=True, slots=True)
class Daemon(Resource):
    KIND: ClassVar[str] = "daemon"
    PHASE: ClassVar[int] = 6
    MODE: ClassVar[str] = "update"
    name: str = ""
    argv: tuple[str, ...] = ()
    files: tuple[tuple[str, str], ...] = ()  # (file name in the run directory, content)
    env: tuple[tuple[str, str], ...] = ()
    reload_signal: int = 0  # 0: restart on any change
    listens: tuple[Listen, ...] = ()  # where it serves, once started

    def launch_digest(self) -> str:
        """Hash of what a reload cannot change: namespace, command line, environment."""
        blob = json.dumps([self.ns, self.argv, self.env], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def make_key(self) -> tuple:
        return (self.KIND, self.name)

    def describe(self) -> str:
        return f"daemon {self.name} in {self.ns or 'the host namespace'}"

    @classmethod
    def batched(cls, action: str) -> bool:
        return action != "delete"  # started together, then waited for together

    def batch_key(self) -> tuple:
        return ()

    @classmethod
    def apply_batch(cls, host, steps) -> None:
        for step in steps:
            if step.action == "create":
                step.resource.create(host)
            else:
                step.resource.update(host, step.old)
        wait_serving(host, [s.resource for s in steps if s.resource.listens])

    def create(self, host) -> None:
        host.daemon_stop(self.name)  # a stale one from an earlier run, if any
        refuse_foreign_holders(host, self)
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
            if want is not None and want.ns == running.ns and host.daemon_missing(running.name, want.ns, want.listens):
                found.append(replace(want, argv=("not serving",)))  # restarted by the next `up`
            elif want is not None and running.digest == want.digest() and want.ns == running.ns:
                found.append(want)
            elif want is not None and running.launch == want.launch_digest() and want.ns == running.ns:
                found.append(replace(want, files=(("?", running.digest),)))  # same process, other files
            else:
                found.append(cls(node=want.node if want else "", ns=running.ns, name=running.name, argv=("?",)))
        return found


def refuse_foreign_holders(host, daemon: Daemon) -> None:
    """Fail, naming the process, when something else already holds a place `daemon` serves on."""
    for listen in daemon.listens:
        holders = host.port_holders(daemon.ns, listen)
        if holders:
            who = ", ".join(f"pid {pid} ({name})" for pid, name in holders)
            raise VispdError(f"{daemon.name}: {_place(listen)} in {daemon.ns or 'the host namespace'} is already "
                             f"held by {who}, not by vispd: stop it, then run `vispd up` again")


def wait_serving(host, daemons: list[Daemon], timeout: float = SERVE_TIMEOUT) -> None:
    """Wait until every daemon holds its listening places; fail naming those that do not."""
    deadline = time.monotonic() + timeout
    pending = list(daemons)
    while pending:
        pending = [d for d in pending if host.daemon_missing(d.name, d.ns, d.listens)]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if pending:
        problems = [f"{d.name} does not serve on "
                    + ", ".join(_place(m) for m in host.daemon_missing(d.name, d.ns, d.listens))
                    + f" (see {host.daemon_log(d.name)})" for d in pending]
        raise VispdError("; ".join(problems))


def _place(listen: Listen) -> str:
    proto, address, port = listen
    return f"the UNIX socket {address}" if proto == "unix" else f"{proto} {address}:{port}"
