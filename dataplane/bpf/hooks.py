"""Where programs are attached: tcx (Linux 6.6+) or clsact + cls_bpf (Linux 5.10+).

Side effects. Both backends work on the calling thread's network namespace (enter it
with `dataplane.netns.entered` first) and offer the same four verbs, by program name
(`spec.program_name`: the ownership marker and digest):

    names(ifname, hook)  -> names of the programs on the hook, ours and anyone else's
    attach(ifname, hook, fd, name, replacing)  -> put ours there (atomically swapping `replacing`)
    detach(ifname, hook, name)
    prog_ids(ifname, hook) -> {name: program id}  (to read maps back)

* `Tcx`: bpf(BPF_PROG_ATTACH) to BPF_TCX_INGRESS/EGRESS, no qdisc; the cheapest hook
  (measured in bench/guard.py: about 0.03 of plain-path pps per hook less than clsact).
  A replacement uses BPF_F_REPLACE (atomic, keeps its place); a new program goes first
  (BPF_F_BEFORE), ahead of anything else on the hook.
* `Clsact`: a clsact qdisc and a cls_bpf filter in direct-action mode at preference 1,
  handle 1, named like the program, added over netlink by descriptor (pyroute2; `tc`
  cannot attach by descriptor). `filter replace` swaps atomically. The clsact qdisc is
  removed when our last filter goes and nobody else's is left on it.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from . import loader, syscall

TCX_TYPES = {"ingress": syscall.TCX_INGRESS, "egress": syscall.TCX_EGRESS}
CLSACT_PARENTS = {"ingress": 0xFFFFFFF2, "egress": 0xFFFFFFF3}  # TC_H_MAKE(TC_H_CLSACT, MIN_*)
PRIO, HANDLE = 1, 1
ENOENT, EEXIST, EINVAL = 2, 17, 22


class Tcx:
    mode = "tcx"

    def _ids(self, ifname: str, hook: str) -> list[int]:
        try:
            return syscall.prog_query(socket.if_nametoindex(ifname), TCX_TYPES[hook])
        except syscall.BpfError as exc:
            if exc.errno == EINVAL:  # a kernel without tcx: nothing can be attached there
                return []
            raise

    def prog_ids(self, ifname: str, hook: str) -> dict[str, int]:
        return {loader.program_name_of(pid): pid for pid in self._ids(ifname, hook)}

    def names(self, ifname: str, hook: str) -> list[str]:
        return list(self.prog_ids(ifname, hook))

    def attach(self, ifname: str, hook: str, fd: int, name: str, replacing: str | None) -> None:
        index = socket.if_nametoindex(ifname)
        old = self.prog_ids(ifname, hook).get(replacing) if replacing else None
        if old is None:
            syscall.prog_attach(index, fd, TCX_TYPES[hook], syscall.F_BEFORE)
            return
        old_fd = syscall.prog_fd_by_id(old)
        try:
            syscall.prog_attach(index, fd, TCX_TYPES[hook], syscall.F_REPLACE, replace_fd=old_fd)
        finally:
            os.close(old_fd)

    def detach(self, ifname: str, hook: str, name: str) -> None:
        prog_id = self.prog_ids(ifname, hook).get(name)
        if prog_id is None:
            return
        fd = syscall.prog_fd_by_id(prog_id)
        try:
            syscall.prog_detach(socket.if_nametoindex(ifname), fd, TCX_TYPES[hook])
        finally:
            os.close(fd)

    def close(self) -> None:
        pass


class Clsact:
    mode = "clsact"

    def __init__(self) -> None:
        self.ipr = IPRoute()  # opened in the calling thread's (entered) namespace

    def _index(self, ifname: str) -> int:
        return socket.if_nametoindex(ifname)

    def names(self, ifname: str, hook: str) -> list[str]:
        try:
            found = self.ipr.get_filters(self._index(ifname), parent=CLSACT_PARENTS[hook])
        except NetlinkError as exc:
            if exc.code in (ENOENT, EINVAL):
                return []
            raise
        names = []
        for msg in found:
            options = msg.get_attr("TCA_OPTIONS")
            if msg.get_attr("TCA_KIND") == "bpf" and options is not None:
                names.append(options.get_attr("TCA_BPF_NAME") or "")
        return names

    def attach(self, ifname: str, hook: str, fd: int, name: str, replacing: str | None) -> None:
        index = self._index(ifname)
        try:
            self.ipr.tc("add", "clsact", index)
        except NetlinkError as exc:
            if exc.code != EEXIST:
                raise
        self.ipr.tc("replace-filter", "bpf", index, handle=HANDLE, prio=PRIO, parent=CLSACT_PARENTS[hook],
                    fd=fd, name=name, direct_action=True)

    def detach(self, ifname: str, hook: str, name: str) -> None:
        if name not in self.names(ifname, hook):
            return
        index = self._index(ifname)
        with contextlib.suppress(NetlinkError):
            self.ipr.tc("del-filter", "bpf", index, handle=HANDLE, prio=PRIO, parent=CLSACT_PARENTS[hook])
        if not self.names(ifname, "ingress") and not self.names(ifname, "egress"):
            with contextlib.suppress(NetlinkError):
                self.ipr.tc("del", "clsact", index)

    def prog_ids(self, ifname: str, hook: str) -> dict[str, int]:
        """pyroute2 does not decode TCA_BPF_ID: ask `tc -j` (only to read maps back)."""
        argv = ["tc", "-j", "filter", "show", "dev", ifname, hook]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        ids = {}
        for entry in json.loads(out or "[]"):
            options = entry.get("options") or {}
            if "prog" in options:
                ids[options.get("bpf_name", "")] = options["prog"]["id"]
        return ids

    def close(self) -> None:
        self.ipr.close()


MODES = {"tcx": Tcx, "clsact": Clsact}


@contextlib.contextmanager
def opened(mode: str):
    """The hooks of `mode` in the calling thread's current network namespace."""
    hooks = MODES[mode]()
    try:
        yield hooks
    finally:
        hooks.close()
