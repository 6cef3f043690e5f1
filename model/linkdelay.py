"""What a substrate link declares about delay, jitter and loss, resolved to numbers (pure).

A link may declare `delay` (a duration, or `geo`: computed by `model.geo` from its two
nodes' `latitude` and `longitude`), `jitter` and `loss` (model.linkprops parses them).
`declared(link, places)` turns that into a `DeclaredDelay` (one-way microseconds, jitter
microseconds, loss fraction); `problems(links, nodes)` says, as (path, message) pairs, what
cannot be resolved: `delay: geo` where an end has no coordinates, and jitter larger than the
one-way delay (a packet cannot leave before it came, and the delay line keeps FIFO order).

The schema (model.schema.Topology) reports those problems at the link's `delay` or `jitter`
value. Links and nodes are duck-typed (`between`, `delay`, `jitter`, `loss`; `name`,
`latitude`, `longitude`) so this module imports nothing of the schema.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from . import geo
from .linkprops import format_duration_us

GEO = "geo"

Place = tuple[float, float]  # (latitude, longitude) in degrees


@dataclass(frozen=True)
class DeclaredDelay:
    """A link's delay, jitter and loss as numbers, the same in both directions."""

    delay_us: int = 0  # one way
    jitter_us: int = 0
    loss: float = 0.0  # fraction of packets dropped, each direction
    geo: bool = False  # the delay was computed from the nodes' coordinates

    @property
    def any(self) -> bool:
        """Whether there is anything to realise (a delay, jitter or loss above zero)."""
        return bool(self.delay_us or self.jitter_us or self.loss)

    def describe(self) -> str:
        """'8.123ms (geo), jitter 0.5ms, loss 0.1%' — what plan and status print."""
        text = format_duration_us(self.delay_us) + (" (geo)" if self.geo else "")
        if self.jitter_us:
            text += f", jitter {format_duration_us(self.jitter_us)}"
        if self.loss:
            text += f", loss {self.loss * 100:.10g}%"
        return text


def places(nodes: Iterable) -> dict[str, Place]:
    """name -> (latitude, longitude) of the nodes that give both."""
    return {n.name: (n.latitude, n.longitude) for n in nodes
            if n.latitude is not None and n.longitude is not None}


def _missing_coordinates(link, nodes_by_name: dict) -> list[str]:
    """What each declared end of a `delay: geo` link lacks, e.g. "'a' has no longitude"."""
    lacks = []
    for name in dict.fromkeys(link.between):
        node = nodes_by_name.get(name)
        if node is None:
            continue  # not a declared node: the semantic checks say so
        absent = [what for what in ("latitude", "longitude") if getattr(node, what) is None]
        if absent:
            lacks.append(f"'{name}' has no {' and no '.join(absent)}")
    return lacks


def declared(link, where: dict[str, Place]) -> DeclaredDelay:
    """The link's delay, jitter and loss (`where`: the nodes' places, from `places`).
    KeyError for `delay: geo` between nodes without a place (see `problems`)."""
    if link.delay == GEO:
        a, b = link.between
        delay_us, is_geo = geo.link_delay_us(where[a], where[b]), True
    else:
        delay_us, is_geo = link.delay or 0, False
    return DeclaredDelay(delay_us, link.jitter or 0, link.loss or 0.0, is_geo)


def problems(links: list, nodes: list) -> list[tuple[tuple, str]]:
    """(path, message) for every link whose delay cannot be resolved as declared."""
    found: list[tuple[tuple, str]] = []
    by_name = {n.name: n for n in nodes}
    where = places(nodes)
    for i, link in enumerate(links):
        if link.delay == GEO:
            lacks = _missing_coordinates(link, by_name)
            if lacks:
                found.append((("links", i, "delay"), "geo needs the latitude and longitude of both ends: "
                              + ", ".join(lacks) + " (add them to the node, or write a duration such as '12ms')"))
                continue
            if any(name not in where for name in link.between):
                continue  # an undeclared end: reported by the semantic checks
        value = declared(link, where)
        if value.jitter_us > value.delay_us:
            one_way = f"{'geographic ' if value.geo else ''}one-way delay {format_duration_us(value.delay_us)}"
            found.append((("links", i, "jitter"), f"{format_duration_us(value.jitter_us)} exceeds the link's "
                          f"{one_way}: a packet cannot leave before it arrived (jitter must not exceed delay)"))
    return found
