"""What a provider kind is (pure): how a provider's access device on its egress node comes
to exist, the addresses of the one BGP session between the vISP's border router (in that
node's namespace) and the provider, and what of the provider the lab must emulate.

The access device is named `x-PROVIDER` in the egress node's namespace whatever the kind
(model.naming.access_ifname): everything the vISP plans on it — the border's address,
the policy table toward the provider, per-slice shaping — is the same for every kind.
"""
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

    def session_addresses(self, provider: Provider, index: int, ctx) -> tuple[str, str]:
        """(the border's address on the access link, with its length; the provider's address)."""
        raise NotImplementedError

    def plan_world(self, provider: Provider, index: int, ctx, parts, border) -> tuple | None:
        """The lab's stand-in for the provider (EMULATED kinds); returns what the lab's
        Internet router peers with: (provider, Internet side address, provider side address)."""
        return None
