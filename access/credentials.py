"""A topology's credentials on disk, as the access types ask for them (the `CredentialStore`
port of compiler.access_types.base): per slice, under the topology's state directory,
`pki/SLICE/` (the OpenVPN CA, server and client certificates, the CRL — access.pki) and
`keys/SLICE/` (WireGuard keys `server-NODE.key`, `client-USER.key`, the users whose keys are
revoked `wireguard-revoked.json`; the PPTP password store `pptp-users.json`, mode 0600).
Revoked users stay revoked: nothing here reissues a revoked certificate or key.

I/O: files under the topology's state directory.
"""
from __future__ import annotations

import json
import os
import secrets

from compiler.access_types.base import keys_dir, pki_dir, pptp_users_file

from . import pki, wireguard
from .spec import atomic_write


class StateCredentials:
    def __init__(self, state_dir: str):
        self.state_dir = state_dir

    # OpenVPN PKI
    def ensure_ca(self, slice_name: str, label: str) -> None:
        pki.ensure_ca(pki_dir(self.state_dir, slice_name), label)

    def ensure_server_certificate(self, slice_name: str, name: str) -> None:
        pki.ensure_server(pki_dir(self.state_dir, slice_name), name)

    def ensure_client_certificate(self, slice_name: str, user: str) -> None:
        pki.ensure_client(pki_dir(self.state_dir, slice_name), user)

    def revoked_users(self, slice_name: str) -> set[str]:
        return set(pki.revoked_users(pki_dir(self.state_dir, slice_name)))

    def client_material(self, slice_name: str, user: str) -> tuple[str, str, str]:
        """(CA, certificate, key) as PEM; FileNotFoundError when the user has none."""
        try:
            return pki.read_client_material(pki_dir(self.state_dir, slice_name), user)
        except pki.PKIError as exc:
            raise FileNotFoundError(str(exc)) from None

    def revoke_client(self, slice_name: str, user: str) -> int:
        return pki.revoke(pki_dir(self.state_dir, slice_name), user)

    # WireGuard keys
    def key_pair(self, slice_name: str, name: str, create: bool) -> tuple[str, str] | None:
        directory = keys_dir(self.state_dir, slice_name)
        if create:
            return wireguard.ensure_key(directory, name)
        path = os.path.join(directory, f"{name}.key")
        if os.path.exists(path):
            return path, wireguard.public_key(wireguard.read_key(path))
        return None

    def revoked_keys(self, slice_name: str) -> set[str]:
        """Users whose WireGuard key is revoked in the slice (they get no peer)."""
        try:
            with open(self._revoked_path(slice_name)) as handle:
                return set(json.load(handle).get("users", []))
        except (OSError, ValueError):
            return set()

    def revoke_key(self, slice_name: str, user: str) -> None:
        users = self.revoked_keys(slice_name) | {user}
        path = self._revoked_path(slice_name)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        atomic_write(path, json.dumps({"users": sorted(users)}, indent=1) + "\n", 0o600)

    def _revoked_path(self, slice_name: str) -> str:
        return os.path.join(keys_dir(self.state_dir, slice_name), "wireguard-revoked.json")

    def private_key(self, slice_name: str, name: str) -> str | None:
        path = os.path.join(keys_dir(self.state_dir, slice_name), f"{name}.key")
        return wireguard.read_key(path) if os.path.exists(path) else None

    # PPTP passwords
    def ensure_passwords(self, slice_name: str, users: dict[str, str | None]) -> None:
        """`credential: file:PATH` reads a user's password; others get one generated once
        and kept (0600) for `vispd access profile` to show."""
        path = pptp_users_file(self.state_dir, slice_name)
        known = self._passwords(path)
        store = {}
        for user, reference in sorted(users.items()):
            if reference and reference.startswith("file:"):
                with open(reference[5:]) as handle:
                    store[user] = handle.read().strip()
            else:
                store[user] = known.get(user) or secrets.token_urlsafe(12)
        if store != known:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            atomic_write(path, json.dumps({"users": store}, indent=1, sort_keys=True) + "\n", 0o600)

    def password(self, slice_name: str, user: str) -> str | None:
        return self._passwords(pptp_users_file(self.state_dir, slice_name)).get(user)

    @staticmethod
    def _passwords(path: str) -> dict[str, str]:
        try:
            with open(path) as handle:
                return json.load(handle).get("users", {})
        except (OSError, ValueError):
            return {}
