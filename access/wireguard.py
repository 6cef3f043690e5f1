"""WireGuard access points in user space (wireguard-go; this kernel has no WireGuard module).

An access point is one `wireguard-go -f IFNAME` process in the sliver's namespace. Its
control socket /var/run/wireguard/IFNAME.sock lives in the machine-wide /var/run, not per
namespace, so interface names must be unique across the machine: `interface_name` derives
them from a hash of (topology, slice, node, instance), 15 characters. After the interface
appears, `wg set` gives it the server's private key (a 0600 file in the caller's key
directory, never in the run directory), the listen port and one peer per user with
allowed-ips = the user's /32 from the pool; `ip` gives it the server's address (with the
pool's length, hence the route to the pool) and brings it up. A client whose key is not a
configured peer gets no handshake, hence no access.

`python -m access.wireguard --config FILE` is the process vispd runs: it starts
wireguard-go as its child (killed with it: PR_SET_PDEATHSIG), applies `server_steps`, and
waits; SIGHUP re-reads FILE and applies it again, first removing the peers it no longer
lists (a revoked user); SIGTERM stops wireguard-go, which removes the interface and its
socket. `daemon` gives its argv and files; `remove_peer` takes one peer away at once.

The configuration (names, addresses, steps, profiles) is compiler.access_types.wireguard's;
this module is the runtime side: key files (`ensure_key`, `ensure_client_key`,
`client_profile`) and the supervisor.

I/O: key files and the supervisor's processes.
"""
from __future__ import annotations

import argparse
import base64
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from compiler.access_types.wireguard import (  # the configuration format is the compiler's
    DEFAULT_MTU,
    WG,
    WIREGUARD_GO,
    WgPeer,
    WireGuardServer,
    assign_addresses,
    client_config,
    client_steps,
    interface_name,
    parse_wg_quick,
    public_key,
    server_setup,
    server_steps,
    supervisor_config,
    valid_key,
)

from .spec import DaemonSpec, atomic_write, module_env, python

__all__ = [  # the component's API: its runtime, and the configuration format it runs on
    "DEFAULT_MTU",
    "PR_SET_PDEATHSIG",
    "SOCKET_DIR",
    "WG",
    "WIREGUARD_GO",
    "WgPeer",
    "WireGuardServer",
    "assign_addresses",
    "client_config",
    "client_profile",
    "client_steps",
    "daemon",
    "ensure_client_key",
    "ensure_key",
    "generate_private_key",
    "interface_name",
    "main",
    "parse_wg_quick",
    "public_key",
    "read_key",
    "remove_peer",
    "run_steps",
    "server_setup",
    "server_steps",
    "socket_path",
    "start_wireguard_go",
    "supervise",
    "supervisor_config",
    "valid_key",
    "wait_for_socket",
]

SOCKET_DIR = "/var/run/wireguard"


def generate_private_key() -> str:
    raw = X25519PrivateKey.generate().private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                    serialization.NoEncryption())
    return base64.b64encode(raw).decode()




def daemon(cfg: WireGuardServer, run_dir: str, interpreter: str | None = None) -> DaemonSpec:
    """The supervisor (wireguard-go + configuration) as a process to run in the sliver's
    namespace with cwd = run_dir."""
    conf = f"{cfg.name}.json"
    return DaemonSpec(name=cfg.name,
                      argv=(interpreter or python(), "-m", "access.wireguard", "--config", os.path.join(run_dir, conf)),
                      files={conf: json.dumps(supervisor_config(cfg), indent=1, sort_keys=True) + "\n"},
                      env=module_env())


# --------------------------------------------------------------------------- I/O

def ensure_key(directory: str, name: str) -> tuple[str, str]:
    """(private key file, public key) of `name` in `directory`, generated once (0600)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, f"{name}.key")
    try:
        with open(path) as handle:
            private = handle.read().strip()
    except FileNotFoundError:
        private = generate_private_key()
        atomic_write(path, private + "\n", 0o600)
    return path, public_key(private)


def ensure_client_key(key_dir: str, user: str) -> tuple[str, str]:
    """(private key file, public key) of `user` in the slice's key directory."""
    return ensure_key(key_dir, f"client-{user}")


def client_profile(key_dir: str, cfg: WireGuardServer, user: str) -> str:
    """`user`'s wg-quick file, its private key read from the key directory."""
    return client_config(cfg, user, read_key(os.path.join(key_dir, f"client-{user}.key")))


def read_key(path: str) -> str:
    with open(path) as handle:
        return handle.read().strip()


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def socket_path(ifname: str) -> str:
    return os.path.join(SOCKET_DIR, f"{ifname}.sock")


def start_wireguard_go(ifname: str, stdout=None) -> subprocess.Popen:
    """`wireguard-go -f IFNAME` in the calling thread's namespace, dying with its parent."""
    env = {**os.environ, "WG_PROCESS_FOREGROUND": "1"}
    return subprocess.Popen([WIREGUARD_GO, "-f", ifname], stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=subprocess.STDOUT if stdout is not None else None, env=env,
                            preexec_fn=_die_with_parent)


def _has_interface(ifname: str) -> bool:
    """Whether `ifname` exists in this thread's namespace (/sys may show another's: a
    process that entered a namespace with setns keeps its old sysfs mount)."""
    try:
        socket.if_nametoindex(ifname)
        return True
    except OSError:
        return False


def wait_for_socket(ifname: str, child: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"wireguard-go exited with {child.returncode} before {ifname} came up")
        if os.path.exists(socket_path(ifname)) and _has_interface(ifname):
            return
        time.sleep(0.01)
    raise RuntimeError(f"{ifname}: no control socket after {timeout} s")


def run_steps(steps: list[list[str]]) -> None:
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(step)}: {result.stderr.strip() or result.returncode}")


def remove_peer(ns: str, ifname: str, key: str) -> None:
    """Take peer `key` off interface `ifname` in namespace `ns` now (OSError if it cannot)."""
    result = subprocess.run(["ip", "netns", "exec", ns, WG, "set", ifname, "peer", key, "remove"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise OSError(result.stderr.strip() or f"wg exited {result.returncode}")


def unlisted_peers(ifname: str, config: dict) -> list[str]:
    """Peers the interface has that `config` no longer lists."""
    listed = {peer["public_key"] for peer in config["server"]["peers"]}
    shown = subprocess.run([WG, "show", ifname, "peers"], capture_output=True, text=True).stdout.split()
    return [key for key in shown if key not in listed]


def supervise(config: dict, path: str | None = None) -> int:
    ifname = config["ifname"]
    stopping, reloading = False, False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    def reload(signum, frame):
        nonlocal reloading
        reloading = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    child = start_wireguard_go(ifname, stdout=sys.stdout)
    try:
        wait_for_socket(ifname, child)
        run_steps(config["steps"])
        print(f"vispd-wireguard: {ifname} up", flush=True)
        while not stopping and child.poll() is None:
            if reloading and path:
                reloading = False
                with open(path) as handle:
                    config = json.load(handle)
                run_steps([[WG, "set", ifname, "peer", key, "remove"] for key in unlisted_peers(ifname, config)]
                          + config["steps"])
                print(f"vispd-wireguard: {ifname} reloaded", flush=True)
            time.sleep(0.2)
        return 0 if stopping else 1
    except RuntimeError as error:
        print(f"vispd-wireguard: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(3)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m access.wireguard",
                                     description="Run one WireGuard access point (wireguard-go + wg set) in this namespace.")
    parser.add_argument("--config", required=True, help="JSON file (or inline JSON) from access.wireguard.daemon")
    args = parser.parse_args(argv)
    inline = args.config.lstrip().startswith("{")
    text = args.config if inline else open(args.config).read()
    return supervise(json.loads(text), None if inline else args.config)


if __name__ == "__main__":
    sys.exit(main())
