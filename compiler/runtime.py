"""Everything machine-specific a plan depends on (pure data): the interpreter that runs
vispd's own daemons, where the project lives (their PYTHONPATH), and where a topology's
files go. The compiler takes it as a value, so the same topology compiles to the same plan
on every machine, apart from these fields (default slice uids step around the machine's
accounts); the application makes it from the machine it
runs on (vispd.state.machine_runtime).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_STATE_ROOT = "/var/lib/vispd"
SOCKET_ROOT = "/run/vispd"  # control sockets: UNIX socket paths are limited to 107 bytes
GUARDS = ("nft", "bpf-tcx", "bpf-clsact")  # the node's guard: nftables + u32, or tc BPF on a hook


@dataclass(frozen=True)
class Runtime:
    python: str  # the interpreter that runs `python -m bgp.helper`, the egress manager, supervisors
    project_root: str  # on their PYTHONPATH, so they import this project from any directory
    state_dir: str  # the topology's state: credentials (PKI, keys, passwords)
    run_dir: str  # daemons' configuration, PID and log files
    sock_dir: str  # daemons' control sockets (kept short)
    taken_ids: frozenset[int] = frozenset()  # this machine's account and group ids: default uids avoid them
    guard: str = "nft"  # the node's guard this machine runs (GUARDS; vispd.engine detects it)
    delay_mechanism: str | None = None  # how links' delay is realised here: "netem", "delayline", None (neither, or not asked)

    @classmethod
    def for_topology(cls, topology: str, python: str = "python3", project_root: str = "",
                     state_root: str = DEFAULT_STATE_ROOT, taken_ids: frozenset[int] = frozenset()) -> "Runtime":
        state_dir = os.path.join(state_root, topology)
        return cls(python=python, project_root=project_root, state_dir=state_dir,
                   run_dir=os.path.join(state_dir, "run"), sock_dir=f"{SOCKET_ROOT}/{topology}",
                   taken_ids=frozenset(taken_ids))

    def module_command(self, module: str, *args: str) -> tuple[str, ...]:
        """argv that runs one of the project's modules as a program."""
        return (self.python, "-m", module, *args)

    def module_env(self) -> tuple[tuple[str, str], ...]:
        """The environment such a program needs on top of the machine's."""
        return (("PYTHONPATH", self.project_root),)

    def run_file(self, leaf: str) -> str:
        return os.path.join(self.run_dir, leaf)

    def socket(self, leaf: str) -> str:
        return os.path.join(self.sock_dir, leaf)
