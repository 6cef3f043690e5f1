"""The routing suites a `routing: own` slice may bring (`own: {daemon: bird | frr, config:
PATH}`, issue 14): which suites exist, where the slice's configuration is, and the daemon
vispd runs for it in every sliver. Pure, but for reading the configuration file the
topology names (as the topology itself is read): the plan carries its digest, so a
changed file reloads (BIRD) or restarts (FRR) the suite at the next `up`.

The suite runs as the slice's own root in its sliver (dataplane.userns: uid 0 of the
sliver's user namespace, the slice's uid outside) and reads the slice's file where it is,
with the slice's permissions: vispd copies nothing, so the file's secrets (OSPF keys, BGP
passwords) stay as protected as the slice keeps them, and its `include`s work as written.
Its control sockets and PID files go to a directory of the slice's own
(`/run/vispd/TOPO/own-SLICE-NODE`, mode 0700). `dataplane.ownsuite` launches it.

* `bird`: BIRD 2 (`bird -f`), reloaded with SIGHUP; control socket DIR/bird.ctl
  (`birdc -s`).
* `frr`: FRR's zebra, then every daemon the configuration needs (`router ospf` → ospfd,
  `router bgp` → bgpd, `ip route` → staticd, ...), each reading the whole file (`-f`) as
  FRR's integrated configuration; restarted on a change (FRR has no reload signal).
  `vtysh --vty_socket DIR` reaches them.
"""
from __future__ import annotations

import hashlib
import os
import re
import signal
from dataclasses import dataclass

from model.schema import Slice, Topology

from ..resources.owndaemon import OwnSuiteDaemon

MAX_CONFIG_BYTES = 1 << 20  # a routing configuration is a few kB; anything this big is a mistake
FRR_BINARIES = "/usr/lib/frr"
# FRR daemons a configuration needs, by the statements that configure them.
FRR_DAEMONS = (
    ("ospfd", r"^\s*router ospf(\s|$)"),
    ("ospf6d", r"^\s*router ospf6\b"),
    ("bgpd", r"^\s*router bgp\b"),
    ("isisd", r"^\s*router isis\b|^\s*ip router isis\b"),
    ("ripd", r"^\s*router rip(\s|$)"),
    ("ripngd", r"^\s*router ripng\b"),
    ("eigrpd", r"^\s*router eigrp\b"),
    ("babeld", r"^\s*router babel\b"),
    ("fabricd", r"^\s*router openfabric\b"),
    ("staticd", r"^\s*ipv?6? route\s"),
    ("bfdd", r"^\s*bfd\s*$"),
)


@dataclass(frozen=True)
class Suite:
    """What vispd starts for a suite: the launcher's mode, its reload signal (0: restart)."""

    name: str
    reload_signal: int

    def daemons(self, config: str) -> tuple[str, ...]:
        return ()

    def sockets(self, directory: str, config: str) -> tuple[str, ...]:
        raise NotImplementedError


class Bird(Suite):
    def sockets(self, directory: str, config: str) -> tuple[str, ...]:
        return (os.path.join(directory, "bird.ctl"),)


class Frr(Suite):
    def daemons(self, config: str) -> tuple[str, ...]:
        """zebra first, then each daemon the configuration has statements for."""
        return ("zebra",) + tuple(name for name, pattern in FRR_DAEMONS if re.search(pattern, config, re.MULTILINE))

    def sockets(self, directory: str, config: str) -> tuple[str, ...]:
        return (os.path.join(directory, "zserv.api"),) + tuple(
            os.path.join(directory, f"{daemon}.vty") for daemon in self.daemons(config))


SUITES: dict[str, Suite] = {s.name: s for s in (Bird("bird", signal.SIGHUP), Frr("frr", 0))}


def config_path(topo: Topology, sl: Slice) -> str:
    """The absolute path of the slice's configuration: `own.config` as written when
    absolute, else relative to the topology file's directory."""
    written = sl.own.config
    if os.path.isabs(written):
        return os.path.normpath(written)
    source = topo.source.file if topo.source is not None else ""
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(source)) if source else os.getcwd(),
                                         written))


def read_config(path: str) -> str:
    """The configuration's text; raises ValueError saying what is wrong with the file."""
    if not os.path.lexists(path):
        raise ValueError(f"no such file: {path}")
    if not os.path.isfile(path):
        raise ValueError(f"{path} is not a regular file")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{path} cannot be read: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ValueError(f"{path} is larger than {MAX_CONFIG_BYTES >> 20} MiB: not a routing configuration")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None


def daemon_name(slice_name: str, node: str) -> str:
    return f"own-{slice_name}-{node}"


def suite_dir(sock_dir: str, slice_name: str, node: str) -> str:
    """The slice's own directory for one sliver's suite: control sockets, PID files."""
    return os.path.join(sock_dir, daemon_name(slice_name, node))


def own_daemon(runtime, sl: Slice, node: str, ns: str, uid: int, gid: int, path: str, text: str) -> OwnSuiteDaemon:
    """The slice's suite in its sliver `ns` on `node`, reading configuration `path` (whose
    content is `text`) as the slice's root there."""
    suite = SUITES[sl.own.daemon]
    name = daemon_name(sl.name, node)
    directory = suite_dir(runtime.sock_dir, sl.name, node)
    args = ["--suite", suite.name, "--ns", ns, "--uid", str(uid), "--gid", str(gid), "--dir", directory,
            "--config", path]
    if suite.daemons(text):
        args += ["--daemons", ",".join(suite.daemons(text)), "--group-file", runtime.run_file(f"{name}.group")]
    digest = hashlib.sha256(text.encode()).hexdigest()
    return OwnSuiteDaemon(node=node, ns=ns, name=name, argv=runtime.module_command("dataplane.ownsuite", *args),
                          env=runtime.module_env(), files=((f"{name}.config-sha256", digest + "\n"),),
                          reload_signal=suite.reload_signal,
                          listens=tuple(("unix", sock, 0) for sock in suite.sockets(directory, text)),
                          config=path, uid=uid, gid=gid)
