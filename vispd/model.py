"""The topology as the user declared it: frozen pydantic models, strict (unknown keys rejected).

These are the *resolved* types: bandwidths are bits/s, prefixes are `IPv4Network`s,
`all` has been expanded by the loader. Keys are kebab-case in YAML. Objects do not hold
their source position themselves; `Topology.source` (a `SourceMap`) answers "where was
`slices[1].links[0]` written" for every path, which is what errors cite.
"""
from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
)

from .units import parse_bandwidth

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Bandwidth = Annotated[int, BeforeValidator(parse_bandwidth)]


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=_kebab,
        populate_by_name=True,
        strict=False,
    )


class Node(Strict):
    name: Name
    site: Annotated[str, Field(pattern=r"^[a-z0-9]{1,6}$")] | None = None
    description: str | None = None
    latitude: float | None = None
    longitude: float | None = None


class Link(Strict):
    between: tuple[Name, Name]
    bandwidth: Bandwidth
    cost: Annotated[int, Field(ge=1, le=65535)] = 1
    kind: Literal["mpls-tunnel"] = "mpls-tunnel"
    mtu: Annotated[int, Field(ge=1280, le=9000)] = 1500

    @property
    def key(self) -> tuple[str, str]:
        """Order-independent identity of the link: the two node names, sorted."""
        a, b = self.between
        return (a, b) if a <= b else (b, a)


class PseudoDevice(Strict):
    node: Name
    type: Literal["tun", "tap"]
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{0,14}$")] | None = None


class Slice(Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,15}$")]
    prefix: IPv4Network | None = None
    prefix_length: Annotated[int, Field(ge=8, le=28)] = 22
    nodes: Literal["all"] | list[Name] = "all"
    links: Literal["all"] | list[tuple[Name, Name]] = "all"
    bandwidth: Bandwidth
    datapath: Literal["kernel"] = "kernel"
    uid: Annotated[int, Field(ge=1000, le=2**31 - 2)] | None = None
    pseudo_devices: list[PseudoDevice] = []
    egress: list[Name] = []
    description: str | None = None

    @field_validator("prefix", mode="before")
    @classmethod
    def _strict_prefix(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                IPv4Network(value, strict=True)
            except ValueError as exc:
                raise ValueError(f"bad prefix {value!r}: {exc}") from None
        return value


class ProviderLink(Strict):
    local: IPv4Address
    remote: IPv4Address
    prefix_length: Annotated[int, Field(ge=8, le=31)] = 30


class Provider(Strict):
    name: Name
    node: Name
    asn: Annotated[int, Field(ge=1, le=4294967295)]
    link: ProviderLink
    bandwidth: Bandwidth
    local_pref: Annotated[int, Field(ge=0, le=4294967295)] = 100
    max_prefix: Annotated[int, Field(ge=1)] | None = None


class AccessUser(Strict):
    name: Name
    credential: str | None = None


class Access(Strict):
    slice: Name
    type: Literal["openvpn", "wireguard", "pptp", "socket"]
    nodes: Literal["all"] | list[Name]
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    pool: IPv4Network | None = None
    users: list[AccessUser] = []
    insecure_legacy: bool = False


class Topology(Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,15}$")]
    asn: Annotated[int, Field(ge=1, le=4294967295)]
    address_space: list[IPv4Network] = Field(min_length=1)
    description: str | None = None
    nodes: list[Node] = Field(min_length=1)
    links: list[Link] = []
    slices: list[Slice] = []
    providers: list[Provider] = []
    access: list[Access] = []

    _source: Any = PrivateAttr(default=None)

    @property
    def source(self):  # -> SourceMap | None
        return self._source

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def slice(self, name: str) -> Slice:
        return next(s for s in self.slices if s.name == name)

    def slice_nodes(self, sl: Slice) -> list[str]:
        """The nodes a slice spans, in declaration order of the topology."""
        if sl.nodes == "all":
            return [n.name for n in self.nodes]
        wanted = set(sl.nodes)
        return [n.name for n in self.nodes if n.name in wanted]

    def slice_links(self, sl: Slice) -> list[Link]:
        """The substrate links a slice uses, in declaration order of the topology."""
        nodes = set(self.slice_nodes(sl))
        if sl.links == "all":
            return [lk for lk in self.links if set(lk.between) <= nodes]
        wanted = {tuple(sorted(pair)) for pair in sl.links}
        return [lk for lk in self.links if lk.key in wanted]
