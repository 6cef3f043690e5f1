"""Where a slice's OpenVPN PKI keeps its files, and the names in its certificates (pure).

Shared by the server configuration (which points OpenVPN at them) and access.pki (which
makes them): one layout, written down once.

    ca.key ca.crt                    the slice's CA (key 0600)
    server-NAME.key server-NAME.crt  one per OpenVPN access point
    client-USER.key client-USER.crt  one per user
    revoked.json                     revoked serials (what the CRL is rebuilt from)
    crl.pem                          the CRL OpenVPN's `crl-verify` reads
"""
from __future__ import annotations

import os
import re

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def ca_paths(directory: str) -> tuple[str, str]:
    return os.path.join(directory, "ca.crt"), os.path.join(directory, "ca.key")


def crl_path(directory: str) -> str:
    return os.path.join(directory, "crl.pem")


def server_common_name(name: str) -> str:
    """The CN of access point `name`'s certificate (clients check it: `verify-x509-name`)."""
    return f"server-{name}"


def leaf_paths(directory: str, kind: str, name: str) -> tuple[str, str]:
    return os.path.join(directory, f"{kind}-{name}.crt"), os.path.join(directory, f"{kind}-{name}.key")
