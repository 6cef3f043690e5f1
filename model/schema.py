"""The topology as the user declared it: frozen pydantic models, strict (unknown keys rejected).

These are the *resolved* types: bandwidths are bits/s, prefixes are `IPv4Network`s
(host bits must be clear), node pairs are 2-tuples; `all` stays `"all"` in the model and is
expanded by `Topology.slice_nodes` / `slice_links`. Scalars are strict: YAML already types
them, so `cost: true` or `asn: "64512"` is a mistake rather than a 1 or a number. Keys are
kebab-case in YAML. Objects do not hold their source position themselves; `Topology.source`
(a `SourceMap`) answers "where was `slices[1].links[0]` written" for every path, which is
what errors cite.

Pure.
"""
from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict as StrictType,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from . import linkdelay
from .errors import describe_value
from .linkprops import parse_duration_us, parse_loss
from .units import parse_bandwidth
from .yamlscalar import YAML11_BOOLEANS

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
SHORT_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,15}$"
SITE_PATTERN = r"^[a-z0-9]{1,6}$"
IFNAME_PATTERN = r"^[a-z][a-z0-9]{0,14}$"
# A machine's own interface (eth0, enp3s0, eth0.100, br-lan): what the kernel accepts, less
# the odd characters; starting with a letter or digit rules out "." and "..".
INTERFACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$"
INTERFACES_KIND = "interfaces"  # the link kind `interfaces:` implies (compiler.links.interfaces)


def _name_not_boolean(value: Any) -> Any:
    """A name written `true` or `false` is read as a boolean (YAML 1.2, see yamlscalar):
    say how to write it as a name. Other values go on to the pattern check."""
    if isinstance(value, bool):
        written = "true" if value else "false"
        raise ValueError(f"must be a string, got {written} (if '{written}' is the name, quote it: "
                         f"\"{written}\")")
    return value


def _bool_not_text(value: Any) -> Any:
    """`yes`, `no`, `on`, `off` are text in YAML 1.2 (booleans only in YAML 1.1)."""
    if isinstance(value, str) and value.lower() in YAML11_BOOLEANS:
        meant = "true" if value.lower() in ("yes", "on", "y") else "false"
        raise ValueError(f"must be true or false, got {value!r} (topology files are YAML 1.2, where "
                         f"yes/no/on/off are text: write {meant})")
    return value


def _name(pattern: str) -> Any:
    """A name field: text matching `pattern`, with a hint when YAML read it as a boolean."""
    return Annotated[str, BeforeValidator(_name_not_boolean), Field(pattern=pattern)]


Name = _name(NAME_PATTERN)
ShortName = _name(SHORT_NAME_PATTERN)
SiteCode = _name(SITE_PATTERN)
DeviceName = _name(IFNAME_PATTERN)
ProviderName = _name(r"^[a-z][a-z0-9-]{0,12}$")
Bandwidth = Annotated[int, BeforeValidator(parse_bandwidth)]
Duration = Annotated[int, BeforeValidator(parse_duration_us)]  # microseconds, from '12ms', '500us'
LossRate = Annotated[float, BeforeValidator(parse_loss)]  # a fraction in [0, 1), from '0.1%'
# YAML already types its scalars: `cost: true` or `cost: "10"` is a mistake, not a 1 or a 10.
Int = Annotated[int, StrictType()]
Float = Annotated[float, StrictType()]
Bool = Annotated[bool, StrictType(), BeforeValidator(_bool_not_text)]


def _typed_text(value: Any, what: str, example: str) -> str:
    if isinstance(value, str):
        return value.strip()
    raise ValueError(f"must be {what} written as text such as {example}, got {describe_value(value)}")


def _parse_prefix(value: Any) -> Any:
    """'10.0.0.0/16' → IPv4Network; host bits set, a missing length or a number are errors."""
    if isinstance(value, IPv4Network):
        return value
    text = _typed_text(value, "an IPv4 prefix", "'10.0.0.0/16'")
    if "/" not in text:
        try:
            IPv4Address(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an IPv4 prefix such as '10.0.0.0/16'") from None
        raise ValueError(f"{text!r} has no prefix length: write it as e.g. {text}/24")
    try:
        return IPv4Network(text, strict=True)
    except ValueError as exc:
        try:
            network = IPv4Network(text, strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not an IPv4 prefix ({exc})") from None
        raise ValueError(f"{text} has host bits set: the prefix is {network}") from None


def _parse_address(value: Any) -> Any:
    if isinstance(value, IPv4Address):
        return value
    text = _typed_text(value, "an IPv4 address", "'192.0.2.1'")
    try:
        return IPv4Address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address") from None


def _parse_pair(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return tuple(value)
    if isinstance(value, (list, tuple)):
        raise ValueError(f"must name exactly two nodes, [a, b], got {len(value)}")
    raise ValueError(f"must be a pair of node names such as [seattle, denver], got {describe_value(value)}")


def _parse_interface_address(value: Any) -> Any:
    """'192.0.2.2/30' → IPv4Interface (an address with its subnet's length)."""
    if isinstance(value, IPv4Interface):
        return value
    text = _typed_text(value, "an address with its length", "'192.0.2.2/30'")
    if "/" not in text:
        raise ValueError(f"{text!r} has no length: write the address with its subnet's length, e.g. {text}/30")
    try:
        return IPv4Interface(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address with a length such as '192.0.2.2/30'") from None


Prefix = Annotated[IPv4Network, BeforeValidator(_parse_prefix)]
HostAddress = Annotated[IPv4Address, BeforeValidator(_parse_address)]
InterfaceAddress = Annotated[IPv4Interface, BeforeValidator(_parse_interface_address)]
InterfaceName = Annotated[str, Field(pattern=INTERFACE_PATTERN)]
NodePair = Annotated[tuple[Name, Name], BeforeValidator(_parse_pair)]


def _parse_delay(value: Any) -> Any:
    """`geo` stays `geo` (model.linkdelay resolves it); anything else is a duration."""
    if isinstance(value, str) and value.strip() == linkdelay.GEO:
        return linkdelay.GEO
    return parse_duration_us(value)


LinkDelay = Annotated[int | Literal["geo"], BeforeValidator(_parse_delay)]


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
    site: SiteCode | None = None
    description: str | None = None
    latitude: Annotated[Float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[Float, Field(ge=-180, le=180)] | None = None


class Link(Strict):
    between: NodePair
    bandwidth: Bandwidth
    cost: Annotated[Int, Field(ge=1, le=65535)] = 1
    kind: str = "mpls-tunnel"  # a link kind of compiler.links (checked against its registry)
    mtu: Annotated[Int, Field(ge=1280, le=9000)] = 1500
    # the machine's interfaces the link ends on, {node: interface}; implies kind: interfaces
    interfaces: dict[str, InterfaceName] | None = None

    @model_validator(mode="before")
    @classmethod
    def _interfaces_imply_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("interfaces") is not None and "kind" not in data:
            return {**data, "kind": INTERFACES_KIND}
        return data

    # one way, each direction: a duration ('12ms') or 'geo' (from both nodes' latitude and
    # longitude, model.geo); jitter spreads it (FIFO, never above the delay); loss drops
    delay: LinkDelay | None = None
    jitter: Duration | None = None
    loss: LossRate | None = None

    @property
    def key(self) -> tuple[str, str]:
        """Order-independent identity of the link: the two node names, sorted."""
        a, b = self.between
        return (a, b) if a <= b else (b, a)


class PseudoDevice(Strict):
    node: Name
    type: Literal["tun", "tap"]
    name: DeviceName | None = None


class Ospf(Strict):
    """OSPF timers of a slice that runs `routing: ospf` (BIRD 2 in every sliver)."""

    hello: Annotated[Int, Field(ge=1, le=65535)] = 1  # seconds between hellos
    dead: Annotated[Int, Field(ge=2, le=65535)] = 4  # seconds without hellos before a neighbour is down
    retransmit: Annotated[Int, Field(ge=1, le=65535)] = 2


class OwnSuite(Strict):
    """The routing suite a `routing: own` slice brings: vispd starts `daemon` in every sliver
    as the slice's own root there, with the slice's `config` (a path relative to the
    topology file; the daemon reads it as the slice's user)."""

    daemon: str  # a suite of compiler.daemons.own (checked against its registry)
    config: Annotated[str, Field(min_length=1)]


class Slice(Strict):
    name: ShortName
    prefix: Prefix | None = None
    prefix_length: Annotated[Int, Field(ge=8, le=28)] = 22
    nodes: Literal["all"] | list[Name] = "all"
    links: Literal["all"] | list[NodePair] = "all"
    bandwidth: Bandwidth
    datapath: Literal["kernel"] = "kernel"
    # static: vispd installs least-cost routes (and recomputes them when a link fails);
    # ospf: BIRD 2 runs OSPF in every sliver; none: interfaces and addresses only;
    # own: the slice is root over its slivers and routes them itself (issue 14).
    routing: Literal["static", "ospf", "none", "own"] = "static"
    ospf: Ospf | None = None
    own: OwnSuite | None = None  # with routing: own, a suite vispd starts in every sliver
    uid: Annotated[Int, Field(ge=1000, le=2**31 - 2)] | None = None
    pseudo_devices: list[PseudoDevice] = []
    egress: list[Name] = []
    # what the border router passes the slice from its providers: full tables (each provider's
    # routes on a path of its own) or one default route per provider
    provider_routes: Literal["full", "default"] = "full"
    announce: list["Announcement"] = []
    description: str | None = None


class Announcement(Strict):
    """What a slice originates to its providers (default: its whole prefix)."""

    prefix: Prefix
    prepend: Annotated[Int, Field(ge=0)] = 0
    communities: list[Annotated[str, Field(pattern=r"^\d{1,10}:\d{1,10}$")]] = []


class ExternalPeering(Strict):
    """A real provider's access link: the machine's interface toward it, the border's address
    on it (with the subnet's length) and the provider's address (its BGP peer)."""

    interface: InterfaceName
    address: InterfaceAddress
    peer: HostAddress


def _bfd_interval(text: object) -> int:
    micros = parse_duration_us(text)
    if not 10_000 <= micros <= 10_000_000 or micros % 1000:
        raise ValueError(f"a BFD interval is whole milliseconds from 10ms to 10s, got {text!r}")
    return micros


class Bfd(Strict):
    """BFD on the provider's access link (RFC 5880/5881, single hop) between the border and
    the provider: a silent failure ends the BGP session within interval x multiplier."""

    interval: Annotated[int, BeforeValidator(_bfd_interval)] = 100_000  # µs
    multiplier: Annotated[Int, Field(ge=2, le=255)] = 3


class Provider(Strict):
    """An upstream provider at an egress node: in the lab, a BIRD router of its own; with
    `external:`, a real one behind one of the machine's interfaces."""

    name: ProviderName
    node: Name
    asn: Annotated[Int, Field(ge=1, le=4294967295)]
    bandwidth: Bandwidth
    peering: Prefix | None = None  # access-link addresses: its first /31 holds the border's session
    local_pref: Annotated[Int, Field(ge=0, le=4294967295)] = 100
    max_prefix: Annotated[Int, Field(ge=1)] | None = None
    lab_routes: Annotated[Int, Field(ge=0, le=2**20)] = 0  # prefixes the lab provider originates
    lab_daemon: Literal["bird", "frr"] = "bird"  # the router that emulates it in the lab
    bfd: Bfd | Literal[False] | None = None  # None: BFD on with the defaults; false: no BFD
    external: ExternalPeering | None = None  # a real provider: nothing is emulated for it

    @property
    def kind(self) -> str:
        """Which provider kind (compiler.providers) this declaration is."""
        return "external" if self.external is not None else "emulated"


class Internet(Strict):
    """The lab's stand-in for the rest of the Internet, behind every provider."""

    asn: Annotated[Int, Field(ge=1, le=4294967295)] = 65000
    prefix: Prefix = IPv4Network("203.0.113.0/24")
    host: HostAddress = IPv4Address("203.0.113.10")
    transit: Prefix = IPv4Network("198.51.100.0/24")


class Public(Strict):
    """Where remote clients reach the access points: the lab's public underlay, or, with
    `interface:`, the machine's own public address (its access ports forwarded to the
    slivers; `prefix` then numbers the forwarding links between the machine and its nodes)."""

    prefix: Prefix = IPv4Network("100.64.0.0/16")
    interface: InterfaceName | None = None
    address: HostAddress | None = None  # what clients dial (default: the interface's address)


class Border(Strict):
    """The border routers' flap guard: a slice prefix that changes more than `flap-changes`
    times within `flap-window` seconds is held (not passed to the providers) until it calms."""

    flap_changes: Annotated[Int, Field(ge=1, le=10000)] = 10
    flap_window: Annotated[Int, Field(ge=1, le=86400)] = 60


class AccessUser(Strict):
    name: Name
    credential: str | None = None


class Access(Strict):
    slice: Name
    type: str  # an access type of compiler.access_types (checked against its registry)
    nodes: Literal["all"] | list[Name]
    port: Annotated[Int, Field(ge=1, le=65535)] | None = None
    pool: Prefix | None = None
    users: list[AccessUser] = []
    insecure_legacy: Bool = False


class Topology(Strict):
    name: ShortName
    asn: Annotated[Int, Field(ge=1, le=4294967295)]
    address_space: list[Prefix] = Field(min_length=1)
    description: str | None = None
    nodes: list[Node] = Field(min_length=1)
    links: list[Link] = []
    slices: list[Slice] = []
    providers: list[Provider] = []
    internet: Internet = Internet()
    public: Public = Public()
    border: Border = Border()
    access: list[Access] = []

    _source: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _link_delays_resolve(self) -> "Topology":
        """`delay: geo` needs both ends' coordinates, jitter must not exceed the delay: each
        problem is reported at the link's own `delay` or `jitter` value."""
        found = linkdelay.problems(self.links, self.nodes)
        if found:
            raise ValidationError.from_exception_data("Topology", [
                InitErrorDetails(type=PydanticCustomError("link_delay", message), loc=path,
                                 input=getattr(self.links[path[1]], path[2]))
                for path, message in found])
        return self

    @property
    def source(self):  # -> SourceMap | None
        return self._source

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def slice(self, name: str) -> Slice:
        return next(s for s in self.slices if s.name == name)

    def provider(self, name: str) -> Provider:
        return next(p for p in self.providers if p.name == name)

    def slice_nodes(self, sl: Slice) -> list[str]:
        """The nodes a slice spans, in declaration order of the topology."""
        if sl.nodes == "all":
            return [n.name for n in self.nodes]
        wanted = set(sl.nodes)
        return [n.name for n in self.nodes if n.name in wanted]

    def link_delay(self, link: Link) -> linkdelay.DeclaredDelay:
        """The delay, jitter and loss `link` declares, as numbers (`delay: geo` resolved)."""
        return linkdelay.declared(link, linkdelay.places(self.nodes))

    def slice_links(self, sl: Slice) -> list[Link]:
        """The substrate links a slice uses, in declaration order of the topology."""
        nodes = set(self.slice_nodes(sl))
        if sl.links == "all":
            return [lk for lk in self.links if set(lk.between) <= nodes]
        wanted = {tuple(sorted(pair)) for pair in sl.links}
        return [lk for lk in self.links if lk.key in wanted]


Slice.model_rebuild()
