"""What a provider kind is (pure): how a provider's access device on its egress node comes
to exist, what sits at its far end, and what of the provider the lab must emulate."""
from __future__ import annotations

from typing import ClassVar

from model.schema import Provider


class ProviderKind:
    NAME: ClassVar[str] = ""
    EMULATED: ClassVar[bool] = False  # the lab world stands in for it

    def check(self, provider: Provider, path: tuple, say) -> None:
        """Rules of this kind beyond the schema; `say(path, message)` reports a problem."""

    def plan_access_device(self, provider: Provider, ctx, parts) -> None:
        """Add what makes the access device `x-PROVIDER` exist in the egress node's namespace
        (nothing when the lab world makes it)."""

    def far_end_mac(self, provider: Provider, ctx) -> str:
        """The MAC of the provider's router on the access link (static neighbours, guard)."""
        raise NotImplementedError

    def plan_world(self, provider: Provider, index: int, ctx, parts, sessions: list) -> tuple | None:
        """The lab's stand-in for the provider (EMULATED kinds); returns what the lab's
        Internet router peers with: (provider, Internet side address, provider side address)."""
        return None
