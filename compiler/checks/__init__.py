"""Semantic checks of a topology that passed the schema (pure), one module per concern:
the substrate, slices, `routing: own` slices, egress, access, the machine's interfaces — each kind and access type adding its own rules.
`check_kinds` runs first: the other checks ask the kinds a topology names, so an unknown
one stops there, with its own located error. Every problem of a stage is reported
together, at its FILE:LINE:COL."""
from __future__ import annotations

from model.errors import Problem
from model.schema import Topology
from model.yamlsrc import SourceMap

from .access import check_access
from .addresses import check_lab_prefixes, check_special_ranges
from .common import Known, Reporter
from .egress import check_announcements, check_providers
from .interfaces import check_interface_uses, check_public_interface
from .kinds import check_kinds
from .own import check_own_slices
from .slices import check_slices
from .substrate import check_links, check_nodes

__all__ = ["check_kinds_known", "check_semantics"]


def check_kinds_known(topo: Topology, smap: SourceMap) -> list[Problem]:
    say = Reporter(smap)
    check_kinds(topo, say)
    return say.problems


def check_semantics(topo: Topology, smap: SourceMap) -> list[Problem]:
    say = Reporter(smap)
    node_names = check_nodes(topo, smap, say)
    link_keys = check_links(topo, smap, say, node_names)
    provider_names = Known(p.name for p in topo.providers)
    slice_names = check_slices(topo, say, node_names, link_keys, provider_names)
    check_providers(topo, say, node_names)
    check_announcements(topo, say)
    check_access(topo, say, slice_names)
    check_own_slices(topo, say)
    check_interface_uses(topo, say)
    check_public_interface(topo, say, slice_names)
    check_special_ranges(topo, say)
    check_lab_prefixes(topo, say)
    return say.problems
