"""What every resource kind shares (pure): identity, digest, ownership marker, and the
contract a kind fulfils.

A *resource* is one thing vispd wants a machine to hold (a namespace, a device, an address,
a route, a shaping tree, a daemon...). Each kind is one module of this package: its frozen
dataclass says what defines it (its fields), how it is keyed (`make_key`; `key` computes it
once per resource: plans hold hundreds of thousands of resources, and the planner, the diff
and the backends all look them up by key), in which phase it is made and
how a change is reconciled (`MODE`), and its recipe says how it is created, updated,
deleted and observed — through the `Host` port (`compiler.resources.host`) it is handed,
never by touching the kernel itself. The planner only builds these values; backends
(dataplane.kernel, dataplane.mininet_backend) implement the port and run the recipes.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # the port is only a type here: recipes receive an implementation
    from .host import Host, NamespaceView

OWNER_PREFIX = "vispd"  # every ownership marker starts with this
# A device the machine lends vispd (compiler.resources.adopted) says so in its marker
# (`borrowed=ORIGINAL-NAME`); no other kind claims it, whatever its kernel kind.
BORROWED_TOKEN = "borrowed"
# A device whose marker says `k=KIND` is claimed by that kind only (several kinds of one
# kernel kind: a veth pair and an own slice's link are both veths).
KIND_TOKEN = "k"

DeviceRef = tuple[str, str]  # (namespace, device name)


def owner_marker(topology: str) -> str:
    """The ifalias prefix that marks a kernel object as created by vispd for `topology`."""
    return f"{OWNER_PREFIX}:{topology}"


@dataclass(frozen=True, slots=True)  # slots: a resource is ~40% smaller (every kind has them too)
class Resource:
    KIND: ClassVar[str] = "resource"
    PHASE: ClassVar[int] = 0  # creation order; deletion runs in reverse
    MODE: ClassVar[str] = "identity"  # "recreate" | "update" | "identity"
    # False: removing its namespace removes it. True: it must be undone by its own recipe
    # even then (a borrowed interface is given back, not destroyed with the namespace).
    SURVIVES_NAMESPACE: ClassVar[bool] = False
    node: str = field(compare=False)  # the substrate node whose agent applies this
    ns: str
    _key: tuple | None = field(default=None, init=False, repr=False, compare=False)  # `key`, once computed

    @property
    def key(self) -> tuple:
        """What identifies the resource among the others (`make_key`), computed once."""
        key = getattr(self, "_key", None)  # a kind declared without slots=True never set the slot
        if key is None:
            key = self.make_key()
            object.__setattr__(self, "_key", key)  # a cache, not a field: equality, hash and digest ignore it
        return key

    def make_key(self) -> tuple:
        return (self.KIND, self.ns)

    def digest(self) -> str:
        """A short hash of everything that defines the resource (stored in ownership markers)."""
        payload = {f.name: getattr(self, f.name) for f in fields(self) if f.compare}
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def describe(self) -> str:
        return f"{self.KIND} {self.ns}"

    def to_json(self) -> dict:
        data = asdict(self)
        del data["_key"]
        data["kind"] = self.KIND
        return data

    # -- where it sits among the others (read by the diff and the scheduler) ------------
    @property
    def on_device(self) -> DeviceRef | None:
        """The device this resource lives on and dies with (None: not on a device)."""
        ifname = getattr(self, "ifname", None)
        return (self.ns, ifname) if ifname else None

    @property
    def substrate(self) -> bool:
        """Laid down before any node agent works (node and lab namespaces, the links
        between them); everything else belongs to one node."""
        return False

    def bound_devices(self) -> tuple[DeviceRef, ...]:
        """Devices whose re-creation requires this resource to be applied again although it
        did not change itself (hooks bound to a device)."""
        return ()

    # -- the recipe ------------------------------------------------------------------------
    def refusal(self, host: "Host", old: "Resource | None" = None) -> str | None:
        """Why this machine cannot hold the resource (asked of every resource about to be
        created or updated from `old`, before anything is changed): None when it can."""
        return None

    def create(self, host: "Host") -> None:
        raise NotImplementedError(f"{self.KIND} has no create recipe")

    def update(self, host: "Host", old: "Resource") -> None:
        """Change in place (MODE "update"); by default the create recipe, which replaces."""
        self.create(host)

    def delete(self, host: "Host") -> None:
        raise NotImplementedError(f"{self.KIND} has no delete recipe")

    @classmethod
    def batched(cls, action: str) -> bool:
        """Whether steps of this kind with `action` go through `apply_batch` (grouped by
        `batch_key`) rather than one by one."""
        return False

    def batch_key(self) -> tuple:
        """Resources applied in one batch share this key."""
        return (self.ns,)

    @classmethod
    def apply_batch(cls, host: "Host", steps: list) -> None:
        """Create or update `steps` (of this kind, one batch key) together."""
        raise NotImplementedError(f"{cls.KIND} is not batched")

    @classmethod
    def observe(cls, host: "Host", view: "NamespaceView", desired: dict) -> list["Resource"]:
        """What of this kind the namespace in `view` holds, as resources: the desired one
        itself where the kernel matches it, else a resource that differs from it."""
        return []

    @classmethod
    def observe_machine(cls, host: "Host", desired: dict) -> list["Resource"]:
        """What of this kind the machine holds outside any one namespace (processes)."""
        return []


@dataclass(frozen=True, slots=True)
class Device(Resource):
    """A network device vispd creates (and deletes) in one namespace, marked as its own."""

    KIND: ClassVar[str] = "device"  # an owned device of a kind no planned resource makes
    MODE: ClassVar[str] = "recreate"
    KERNEL_KIND: ClassVar[str] = ""  # IFLA_INFO_KIND of such devices ("veth", "macvlan", "tun")
    # Whether deleting it takes the devices stacked on it along (a deleted veth takes its
    # macvlans; a borrowed interface given back does not: they are deleted first).
    TAKES_STACKED: ClassVar[bool] = True
    ifname: str = ""
    mtu: int = 1500

    def make_key(self) -> tuple:
        return ("device", self.ns, self.ifname)

    def describe(self) -> str:
        return f"{self.KIND} {self.ns}/{self.ifname}"

    @property
    def carries(self) -> tuple[DeviceRef, ...]:
        """Other devices that go when this one goes (a veth's peer end)."""
        return ()

    @property
    def stacked_on(self) -> DeviceRef | None:
        """The device this one is stacked on and dies with (a macvlan's lower device)."""
        return None

    def delete(self, host: "Host") -> None:
        host.device_delete(self.ns, self.ifname)

    def healthy(self, device) -> bool:
        """Whether the observed `device` (a DeviceView) is this planned device, unchanged."""
        return device.tokens.get("d") == self.digest() and device.mtu == self.mtu and device.up

    @classmethod
    def broken(cls, node: str, ns: str, device) -> "Device":
        """What an observed device of this kernel kind that is not as planned is reported as."""
        return cls(node=node, ns=ns, ifname=device.ifname, mtu=-1)

    @classmethod
    def claims(cls, device) -> bool:
        """Whether an owned device (a DeviceView) is of this kind: by its kernel kind, unless
        the machine lent it (BORROWED_TOKEN) or its marker names another kind (KIND_TOKEN:
        two kinds of one kernel kind, a veth and an own slice's link)."""
        return (device.kind == cls.KERNEL_KIND and BORROWED_TOKEN not in device.tokens
                and device.tokens.get(KIND_TOKEN, cls.KIND) == cls.KIND)

    @classmethod
    def observe(cls, host: "Host", view: "NamespaceView", desired: dict) -> list[Resource]:
        found: list[Resource] = []
        untrusted = slice_is_root(host, view)
        for device in view.devices:
            if not cls.claims(device) or device.tokens.get("role") == "peer":
                continue
            want = desired.get(("device", view.ns, device.ifname))
            if isinstance(want, cls) and want.healthy(device):
                found.append(want)
            elif untrusted:  # whatever its marker says, it is a device of that sliver, nothing more
                found.append(Device(node=view.node, ns=view.ns, ifname=device.ifname, mtu=-1))
            else:
                found.append(cls.broken(view.node, view.ns, device))
        return found


def slice_is_root(host: "Host", view: "NamespaceView") -> bool:
    """Whether `view` is a sliver whose slice is root there (`routing: own`, its network
    namespace owned by a user namespace of its own): the slice can write any marker on its
    devices, so none is believed beyond "a device of this sliver" — not a peer elsewhere it
    would take along, nor an interface the machine lent (asked of the kernel, not of the plan:
    a slice switching modes is still root until its namespace goes)."""
    return view.slice is not None and not view.broken and host.netns_owned_elsewhere(view.ns)
