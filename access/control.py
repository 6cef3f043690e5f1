"""What revocation acts through on running access servers (the `control` an access type's
`revoke` is handed): closing an OpenVPN user's live sessions through the server's
management socket, taking a WireGuard peer off its interface.

I/O: the servers' management sockets and `wg`.
"""
from __future__ import annotations

from .openvpn import disconnect
from .wireguard import remove_peer

__all__ = ["disconnect", "remove_peer"]
