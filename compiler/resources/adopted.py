"""An interface the machine lends vispd (pure data and recipe): one that exists outside vispd,
in the machine's own namespace — a port a substrate link ends on (`interfaces:`), the
access link to a real provider (`external:`) — moved into a node's namespace under the name
vispd plans there (`to-PEER`, `x-PROVIDER`), and given back on delete.

Borrowing records the interface as it was found (name, MTU, state, ARP, alias, addresses,
routes) durably before moving it, so a run killed midway can still give it back; while it
is vispd's its marker says `borrowed=ORIGINAL`, by which it is observed whatever its kernel
kind (a veth stays a veth: no other device kind claims it, and the stray-device sweep leaves
it alone). Giving it back is never left to the namespace's removal (a namespace that goes
would destroy a veth, and return a real port under vispd's name): the interface is given
back by its own step, after the devices stacked on it (the slices' macvlans) are deleted —
moving it does not take them along.

The machine refuses, before anything is built (`refusal`), an interface that is missing,
already used (enslaved, another topology's, carrying stacked devices) or its way out (it
carries the default route).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import BORROWED_TOKEN, Device


@dataclass(frozen=True, slots=True)
class Adopted(Device):
    """The machine's interface `original`, in `ns` as `ifname` while vispd holds it."""

    KIND: ClassVar[str] = "adopted"
    PHASE: ClassVar[int] = 1
    SURVIVES_NAMESPACE: ClassVar[bool] = True
    TAKES_STACKED: ClassVar[bool] = False
    original: str = ""
    mtu: int = 0  # 0: keep the interface's own MTU
    arp: bool = True

    def describe(self) -> str:
        return f"adopted {self.original} as {self.ns}/{self.ifname}"

    @property
    def substrate(self) -> bool:
        return True  # a link's end, laid down with the links

    def refusal(self, host, old=None) -> str | None:
        return host.borrow_refusal(self.original, self.ns, self.ifname)

    def create(self, host) -> None:
        host.borrow(self.ns, self.ifname, self.original)
        host.mark(self.ns, self.ifname, {BORROWED_TOKEN: self.original, "d": self.digest()}, replace=True,
                  up=True, arp=self.arp, mtu=self.mtu or None)

    def delete(self, host) -> None:
        host.give_back(self.ns, self.ifname)

    def healthy(self, device) -> bool:
        # its administrative state is LinkDown's business, as a veth's
        return device.tokens.get("d") == self.digest() and (not self.mtu or device.mtu == self.mtu)

    @classmethod
    def claims(cls, device) -> bool:
        return BORROWED_TOKEN in device.tokens

    @classmethod
    def broken(cls, node: str, ns: str, device) -> "Adopted":
        return cls(node=node, ns=ns, ifname=device.ifname, mtu=-1, original=device.tokens.get(BORROWED_TOKEN, ""))
