"""Provider kinds, one module each (pure): how a provider's access device comes to exist,
what is at its far end, and what the lab emulates of it.

`PROVIDER_KINDS` is the registry; `provider_kind(provider)` picks a provider's kind.
Adding a kind is adding its module and a line here (and its YAML keys to model.schema's
`Provider`, if it brings any).
"""
from __future__ import annotations

from model.schema import Provider

from .base import ProviderKind
from .emulated import Emulated
from .external import External

PROVIDER_KINDS: dict[str, ProviderKind] = {k.NAME: k for k in (Emulated(), External())}


def provider_kind(provider: Provider) -> ProviderKind:
    return PROVIDER_KINDS[provider.kind]


__all__ = ["PROVIDER_KINDS", "ProviderKind", "provider_kind"]
