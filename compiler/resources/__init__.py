"""The resource kinds of a plan, one module each (pure): what a machine should hold, and the
recipe — through the `Host` port — by which it is created, changed, observed and removed.

`RESOURCE_KINDS` is the registry: backends observe and apply through it and nothing else
dispatches on a kind's name. Adding a kind is adding its module and a line here.
"""
from __future__ import annotations

from .address import Address
from .adopted import Adopted
from .base import BORROWED_TOKEN, KIND_TOKEN, Device, DeviceRef, Resource, owner_marker
from .bpfguard import BpfGuard, GuardedDevice, GuardedEnd
from .daemon import Daemon
from .guard import IsolationFilter
from .linkdown import LinkDown
from .macvlan import Macvlan
from .neighbour import Neighbour
from .forward import PortForward
from .netns import Netns
from .owndaemon import OwnSuiteDaemon
from .ownlink import OwnLink
from .ownsteer import OwnSteering, SteeredEnd
from .route import MAIN_TABLE, VISPD_RTPROTO, Route, RouteBatchError
from .rule import RoutingRule
from .shaping import Shaping, ShapingClass
from .tuntap import TunTap
from .veth import Veth

# In the order observation reports them (the diff does not depend on it).
RESOURCE_KINDS: tuple[type[Resource], ...] = (
    Netns, IsolationFilter, BpfGuard, OwnSteering, Veth, Adopted, Macvlan, OwnLink, TunTap, LinkDown, Shaping, Address, Neighbour,
    Route,
    RoutingRule, Daemon, PortForward,
)
DEVICE_KINDS: tuple[type[Device], ...] = tuple(k for k in RESOURCE_KINDS if issubclass(k, Device))

__all__ = [
    "Address", "Adopted", "BORROWED_TOKEN", "BpfGuard", "KIND_TOKEN", "OwnLink", "OwnSteering", "OwnSuiteDaemon", "Daemon", "PortForward",
    "Device", "DeviceRef", "GuardedDevice", "GuardedEnd", "IsolationFilter", "LinkDown", "Macvlan", "Neighbour",
    "MAIN_TABLE", "Netns", "RESOURCE_KINDS", "RoutingRule", "DEVICE_KINDS", "Resource", "Route", "RouteBatchError", "Shaping",
    "ShapingClass", "SteeredEnd", "TunTap", "VISPD_RTPROTO", "Veth", "owner_marker",
]
