"""The lab world (pure): what stands in, on one machine, for everything outside the vISP —
each emulated provider's router and access link (through its provider kind), an
"Internet" router behind every provider holding a test host, and the public underlay with
a client host per remote access point. The engine adds it to the vISP's plan only where the
topology asks for emulated parts (`needs_world`); the vISP itself is planned without it.
"""
from __future__ import annotations

from ..context import PlanContext, PlanParts
from ..providers import provider_kind
from . import internet, public


def needs_world(ctx: PlanContext) -> bool:
    return any(provider_kind(p).EMULATED for p in ctx.topo.providers) or public.needs_underlay(ctx)


def plan_lab_world(ctx: PlanContext, parts: PlanParts) -> None:
    emulated = [(i, p) for i, p in enumerate(ctx.topo.providers) if provider_kind(p).EMULATED]
    if emulated:
        internet.plan_internet_namespace(ctx, parts)
        peers = [provider_kind(p).plan_world(p, i, ctx, parts) for i, p in emulated]
        internet.plan_internet_router(ctx, parts, peers)
    if public.needs_underlay(ctx):
        public.plan_underlay(ctx, parts)
