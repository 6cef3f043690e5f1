"""Credentials of the access points: made before `up` plans, read by every other command.

Each access type (compiler.access_types) says what it needs; they are kept by
access.credentials.StateCredentials under the topology's state directory (`pki/SLICE/`,
`keys/SLICE/`). `gather(topo, runtime, create)` returns the public material the pure
planner needs (WireGuard public keys and key paths); with `create=False` it only reads
(`plan`, `status`), with True it also makes what is missing (`up`).
"""
from __future__ import annotations

from access.credentials import StateCredentials
from compiler.access_types import ACCESS_TYPES
from compiler.addressing import access_points
from compiler.runtime import Runtime
from model.schema import Topology


def store(runtime: Runtime) -> StateCredentials:
    return StateCredentials(runtime.state_dir)


def gather(topo: Topology, runtime: Runtime, create: bool) -> dict:
    credentials: dict = {}
    kept = store(runtime)
    for sl in topo.slices:
        by_type: dict[str, list] = {}
        for _, entry, node in access_points(topo, sl.name):
            by_type.setdefault(entry.type, []).append((entry, node))
        for kind, points in by_type.items():
            access_type = ACCESS_TYPES[kind]
            if create:
                access_type.make_credentials(topo, sl.name, points, kept)
            credentials.update(access_type.public_credentials(topo, sl.name, points, kept, create))
    return credentials
