"""Credentials of the access points: made before `up` plans, read by every other command.

Per slice, under the topology's state directory: `pki/SLICE/` (the OpenVPN CA, a server
certificate per access point, a client certificate per user, the CRL — access.pki) and
`keys/SLICE/` (WireGuard keys: `server-NODE.key`, `client-USER.key`; a user whose
`credential:` is a public key brings their own). Revoked users stay revoked: `ensure`
never reissues a revoked certificate.

`gather(topo, state_dir, create)` returns what the pure planner needs (public keys and key
paths); with `create=False` it only reads (`plan`, `status`), with True it also makes
what is missing (`up`).
"""
from __future__ import annotations

import os

from compiler.access_plan import keys_dir, pki_dir
from compiler.addressing import access_points
from model.schema import Topology


def gather(topo: Topology, state_dir: str, create: bool) -> dict:
    credentials: dict = {}
    for sl in topo.slices:
        points = access_points(topo, sl.name)
        if any(entry.type == "openvpn" for _, entry, _ in points) and create:
            _openvpn(topo, sl.name, [(e, n) for _, e, n in points if e.type == "openvpn"], state_dir)
        wireguard = [(e, n) for _, e, n in points if e.type == "wireguard"]
        if wireguard:
            credentials.update(_wireguard(sl.name, wireguard, state_dir, create))
        pptp_users = {u.name: u.credential for _, e, _ in points if e.type == "pptp" for u in e.users}
        if pptp_users and create:
            _pptp(sl.name, pptp_users, state_dir)
    return credentials


def _pptp(slice_name: str, users: dict[str, str | None], state_dir: str) -> None:
    """The slice's PPTP passwords: `credential: file:PATH` reads one, else one is generated
    once and kept (0600) for `vispd access profile` to show."""
    import json
    import secrets

    from access.spec import atomic_write

    from compiler.access_plan import pptp_users_file

    path = pptp_users_file(state_dir, slice_name)
    try:
        with open(path) as handle:
            known = json.load(handle).get("users", {})
    except (OSError, ValueError):
        known = {}
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


def _openvpn(topo: Topology, slice_name: str, points, state_dir: str) -> None:
    from access import pki

    directory = pki_dir(state_dir, slice_name)
    pki.ensure_ca(directory, f"vispd {topo.name} {slice_name}")
    revoked = pki.revoked_users(directory)
    for entry, node in points:
        pki.ensure_server(directory, f"openvpn-{slice_name}-{node}")
        for user in entry.users:
            if user.name not in revoked:
                pki.ensure_client(directory, user.name)


def _wireguard(slice_name: str, points, state_dir: str, create: bool) -> dict:
    from access import wireguard

    directory = keys_dir(state_dir, slice_name)
    found: dict = {}

    def key(name: str):
        path = os.path.join(directory, f"{name}.key")
        if create:
            return wireguard.ensure_key(directory, name)
        if os.path.exists(path):
            return path, wireguard.public_key(wireguard.read_key(path))
        return None

    for entry, node in points:
        server = key(f"server-{node}")
        if server:
            found[("wireguard-server", slice_name, node)] = server
        for user in entry.users:
            if user.credential and wireguard.valid_key(user.credential):
                found[("wireguard-user", slice_name, user.name)] = user.credential
                continue
            client = key(f"client-{user.name}")
            if client:
                found[("wireguard-user", slice_name, user.name)] = client[1]
    return found
