"""The Host verbs for what the machine lends vispd (compiler.resources.host: `borrow_refusal`,
`borrow`, `give_back`, `borrow_sysctl`, `give_back_sysctl`, `routes_overlapping`,
`nft_table_names`), as a part of `dataplane.host.KernelHost` (which the Mininet host
inherits). Records and the reading of interfaces are dataplane.borrow's.

I/O: the kernel (netlink, sysctls, nft) of the machine's namespace and of vispd's, and the
topology's borrow records.
"""
from __future__ import annotations

import ipaddress
import json
import socket
import subprocess

from model.errors import VispdError
from model.naming import HOME_NS

from . import borrow, netns
from .borrow import Ledger

RT_TABLE_LOCAL = 255


class LendingVerbs:
    """Mixed into KernelHost: needs `ipr`, `raw`, `lookup`, `forget_index`, `aliases`, `marker`
    and `ledger` (a borrow.Ledger)."""

    ledger: Ledger

    # -- interfaces ------------------------------------------------------------------------
    def borrow_refusal(self, original: str, ns: str, ifname: str) -> str | None:
        record = self.ledger.device(ns, ifname)
        if record is not None and record.original == original and self.lookup(ns, ifname) is not None:
            return None  # already ours (it is given back and taken again within this apply)
        index = self.lookup(HOME_NS, original)
        holder = self.ledger.holder(original) if index is None else None
        return borrow.refusal(self.ipr(HOME_NS), index, original, holder)

    def borrow(self, ns: str, ifname: str, original: str) -> None:
        record = self.ledger.device(ns, ifname)
        if record is not None and record.original == original and self.lookup(ns, ifname) is not None:
            # moved by a run killed before marking it: unobserved since, what was put on it is
            # planned again (a root qdisc would refuse the shaping's `replace`)
            self._clear_qdisc(ns, ifname)
            return
        if record is None or record.original != original:
            problem = self.borrow_refusal(original, ns, ifname)
            if problem:
                raise VispdError(problem)
            index = self.lookup(HOME_NS, original)
            self.ledger.record(borrow.snapshot(self.ipr(HOME_NS), index, original, ns, ifname, netns.home_inode()))
        index = self.lookup(HOME_NS, original)
        if index is None:
            raise VispdError(f"interface {original} disappeared before vispd could borrow it")
        with open(netns.path(ns)) as target:
            self.ipr(HOME_NS).link("set", index=index, net_ns_fd=target.fileno(), ifname=ifname)
        self.forget_index(HOME_NS, original)
        self.forget_index(ns, ifname)

    def give_back(self, ns: str, ifname: str) -> None:
        record = self.ledger.device(ns, ifname)
        if record is None:
            raise VispdError(f"{ns}/{ifname} is marked as borrowed but its record is gone: "
                             "vispd cannot tell how to give it back")
        if not netns.exists(ns):
            self._returned_alone(record)
            return
        index = self.lookup(ns, ifname)
        if index is None:  # never moved (killed before), or gone with its peer
            self.ledger.forget_device(ns, ifname)
            return
        if record.home != netns.home_inode():
            where = netns.find_by_inode(record.home) or "a namespace that is gone"
            raise VispdError(f"cannot give {record.original} back from here: it came from {where}; "
                             "run vispd in the namespace `up` ran in")
        if self.lookup(HOME_NS, record.original) is not None:
            raise VispdError(f"cannot give {record.original} back: the machine has another device of that name")
        self._clear_qdisc(ns, ifname)  # vispd's shaping goes: the kernel's default comes back
        with open(netns.path(HOME_NS)) as target:
            self.ipr(ns).link("set", index=index, net_ns_fd=target.fileno(), ifname=record.original)
        self.aliases.pop((ns, ifname), None)
        self.forget_index(ns, ifname)
        borrow.restore(self.ipr(HOME_NS), self.raw(HOME_NS), self.index(HOME_NS, record.original), record)
        self.ledger.forget_device(ns, ifname)

    def _returned_alone(self, record) -> None:
        """Its namespace went without giving it back (a run killed in between): a virtual
        device died with it; a real one came back on its own, under vispd's name."""
        index = self.lookup(HOME_NS, record.ifname)
        if index is not None and record.home == netns.home_inode():
            alias = self.ipr(HOME_NS).get_links(index)[0].get_attr("IFLA_IFALIAS") or ""
            if alias.split(" ", 1)[0] == self.marker:
                self.ipr(HOME_NS).link("set", index=index, ifname=record.original)
                self.forget_index(HOME_NS, record.ifname)
                borrow.restore(self.ipr(HOME_NS), self.raw(HOME_NS), index, record)
        self.ledger.forget_device(record.ns, record.ifname)

    def give_back_leftovers(self) -> None:
        """Give back whatever is still recorded as borrowed (`down`, after its steps)."""
        for record in self.ledger.devices():
            self.give_back(record.ns, record.ifname)
        for key in self.ledger.sysctls():
            self.give_back_sysctl(key)

    def _clear_qdisc(self, ns: str, ifname: str) -> None:
        self.run_batch(ns, ["tc", "-force", "-batch", "-"], f"qdisc del dev {ifname} root\n", check=False)

    def give_back_inside(self, ns: str) -> None:
        """Give back every interface recorded as inside `ns` (before `ns` is removed)."""
        for record in self.ledger.devices():
            if record.ns == ns:
                self.give_back(ns, record.ifname)

    def borrowed(self) -> list[str]:
        """What is still borrowed, as `ORIGINAL (NS/IFNAME)` and `sysctl KEY`."""
        return ([f"{r.original} ({r.ns}/{r.ifname})" for r in self.ledger.devices()]
                + [f"sysctl {key}" for key in self.ledger.sysctls()])

    # -- sysctls of the machine's namespace ------------------------------------------------
    def borrow_sysctl(self, key: str, value: str) -> str:
        with netns.entered(HOME_NS):
            before = netns.read_sysctl(key)
            self.ledger.record_sysctl(key, before)
            netns.write_sysctl(key, value)
        return self.ledger.sysctl(key) or before

    def give_back_sysctl(self, key: str) -> None:
        before = self.ledger.sysctl(key)
        if before is None:
            return
        with netns.entered(HOME_NS):
            try:
                netns.write_sysctl(key, before)
            except FileNotFoundError:
                pass  # the interface is gone: nothing to give back
        self.ledger.forget_sysctl(key)

    # -- reading the machine's namespace ---------------------------------------------------
    def routes_overlapping(self, ns: str, prefix: str) -> list[str]:
        wanted = ipaddress.IPv4Network(prefix, strict=False)
        ipr = self.ipr(ns)
        names = {link["index"]: (link.get_attr("IFLA_IFNAME"), link.get_attr("IFLA_IFALIAS") or "")
                 for link in ipr.get_links()}
        found = []
        for msg in ipr.get_routes(family=socket.AF_INET):
            if msg.get_attr("RTA_TABLE", msg["table"]) == RT_TABLE_LOCAL:
                continue
            dst = ipaddress.IPv4Network(f"{msg.get_attr('RTA_DST') or '0.0.0.0'}/{msg['dst_len']}")
            name, alias = names.get(msg.get_attr("RTA_OIF"), ("?", ""))
            if msg["dst_len"] and dst.overlaps(wanted) and alias.split(" ", 1)[0] != self.marker:
                found.append(f"{dst} dev {name}")
        return found

    def nft_table_names(self, ns: str, family: str) -> list[str]:
        with netns.entered(ns):
            listed = subprocess.run(["nft", "-j", "list", "tables", family], capture_output=True, text=True)
        if listed.returncode != 0:
            return []
        return [item["table"]["name"] for item in json.loads(listed.stdout).get("nftables", []) if "table" in item]
