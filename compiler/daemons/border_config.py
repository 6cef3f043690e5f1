"""The border router's JSON configuration (pure): the vISP's one BGP speaker per egress node,
in the node's namespace, holding one eBGP session per provider at that node (from the
topology's AS) and one iBGP session per egressing slice (over the slice's link to the
node). vispd writes it; bgp.helper (role "border") reads it with `parse_border_config`.

Per provider: its session, ADD-PATH path id, local preference and max-prefix. Per slice:
its session, the prefixes it may announce (its allocation), which provider routes it gets
(`full` tables or a `default` per provider) and, per provider, the next hop on its link that
sends its packets to that provider. The flap guard holds a slice prefix that changes more
than `flap_changes` times in `flap_window` seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .speaker_config import (
    ConfigError,
    Neighbor,
    _ipv4,
    _neighbor,
    _optional_int,
    _require,
    _required_int,
    parse_config,
    read_raw,
)

PROVIDER_ROUTES = ("full", "default")


@dataclass(frozen=True)
class ProviderSession:
    neighbor: Neighbor
    path_id: str  # dotted, the ADD-PATH id its routes carry toward the slices


@dataclass(frozen=True)
class SliceSession:
    neighbor: Neighbor
    slice: str
    allowed_prefixes: tuple[str, ...]
    provider_routes: str  # "full" | "default"
    next_hops: dict = field(default_factory=dict, compare=False)  # provider name -> next hop


@dataclass(frozen=True)
class BorderConfig:
    node: str
    local_as: int
    router_id: str
    providers: tuple[ProviderSession, ...]
    slices: tuple[SliceSession, ...]
    hold_time: int | None = None
    flap_changes: int = 10
    flap_window: float = 60.0
    status_file: str | None = None
    event_socket: str | None = None
    log_file: str | None = None
    config_file: str | None = None
    role: str = "border"

    @property
    def neighbors(self) -> tuple[Neighbor, ...]:
        """Every session, for ExaBGP's configuration."""
        return tuple(p.neighbor for p in self.providers) + tuple(s.neighbor for s in self.slices)

    @property
    def slice(self) -> str:
        return "border"  # how logs and status name the speaker


def _provider(raw, index: int) -> ProviderSession:
    where = f"providers[{index}]"
    return ProviderSession(_neighbor(raw, index), _ipv4(_require(raw, "path_id", str, where), "path_id", where))


def _slice(raw, index: int, providers: set[str]) -> SliceSession:
    where = f"slices[{index}]"
    routes = raw.get("provider_routes", "full")
    if routes not in PROVIDER_ROUTES:
        raise ConfigError(f"{where}: 'provider_routes' must be full or default, got {routes!r}")
    hops = _require(raw, "next_hops", dict, where)
    unknown = set(hops) - providers
    if unknown:
        raise ConfigError(f"{where}: next hops for unknown providers {sorted(unknown)}")
    allowed = _require(raw, "allowed_prefixes", list, where)
    return SliceSession(_neighbor(raw, index), _require(raw, "slice", str, where), tuple(allowed), routes,
                        {name: _ipv4(hop, "next_hops", where) for name, hop in hops.items()})


def parse_border_config(raw: dict) -> BorderConfig:
    if not isinstance(raw, dict) or raw.get("role") != "border":
        raise ConfigError("config: must be a JSON object with role 'border'")
    where = "config"
    providers = tuple(_provider(p, i) for i, p in enumerate(_require(raw, "providers", list, where)))
    names = {p.neighbor.name for p in providers}
    slices = tuple(_slice(s, i, names) for i, s in enumerate(_require(raw, "slices", list, where)))
    addresses = [n.address for n in (*[p.neighbor for p in providers], *[s.neighbor for s in slices])]
    if len(set(addresses)) != len(addresses):
        raise ConfigError(f"{where}: two sessions share an address")
    return BorderConfig(
        node=_require(raw, "node", str, where), local_as=_required_int(raw, "local_as", where, 1),
        router_id=_ipv4(_require(raw, "router_id", str, where), "router_id", where),
        providers=providers, slices=slices,
        hold_time=_optional_int(raw, "hold_time", None, where, 0, 65535),
        flap_changes=_optional_int(raw, "flap_changes", 10, where, 1),
        flap_window=float(raw.get("flap_window", 60.0)),
        status_file=raw.get("status_file"), event_socket=raw.get("event_socket"),
        log_file=raw.get("log_file"), config_file=raw.get("config_file"))


def load_any_config(path: str):
    """The configuration at `path`: a border router's (role "border") or a speaker's."""
    raw = read_raw(path)
    return parse_border_config(raw) if raw.get("role") == "border" else parse_config(raw)
