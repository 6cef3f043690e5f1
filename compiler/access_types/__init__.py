"""Access types, one module each (pure): OpenVPN, WireGuard, PPTP and the local socket.

`ACCESS_TYPES` is the registry every other part asks (validation, addressing, planning,
credentials, profiles, the CLI's choices). Adding a type is adding its module and a line here.
"""
from __future__ import annotations

from .base import AccessPoint, AccessType, CredentialStore, ServerContext
from .openvpn import OpenVpn
from .pptp import Pptp
from .socket import Socket
from .wireguard import WireGuard

ACCESS_TYPES: dict[str, AccessType] = {t.NAME: t for t in (OpenVpn(), WireGuard(), Pptp(), Socket())}

__all__ = ["ACCESS_TYPES", "AccessPoint", "AccessType", "CredentialStore", "ServerContext"]
