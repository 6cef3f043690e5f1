"""WireGuard rendering (access.wireguard): interface names unique and within 15
characters, keys as `wg` makes them, stable address assignment, the server's `wg set`/`ip`
steps, and a standard wg-quick client file. Pure."""
from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess

import pytest

from access import wireguard as wg
from access.spec import DaemonSpec


def server(peers=(), **overrides) -> wg.WireGuardServer:
    server_key = wg.generate_private_key()
    values = dict(name="wg-plb-seattle", ifname=wg.interface_name("abilene", "plb", "seattle"),
                  address="10.1.4.1/26", endpoint="198.51.100.20", port=51820, routes=("10.1.0.0/16",),
                  private_key_file="/var/lib/vispd/keys/server.key", public_key=wg.public_key(server_key),
                  peers=tuple(peers))
    values.update(overrides)
    return wg.WireGuardServer(**values)


def test_interface_names_are_unique_and_fit():
    names = [wg.interface_name(t, s, n, i) for t, s, n, i in itertools.product(
        ("abilene", "abilene2", "t1a2b3c"), ("plb", "research", "x" * 40), ("seattle", "new-york"), ("", "2"))]
    assert len(set(names)) == len(names)
    assert all(len(n) == 15 and n.startswith("vw") and n.isalnum() for n in names)
    assert wg.interface_name("abilene", "plb", "seattle") == wg.interface_name("abilene", "plb", "seattle")
    # the parts are separated: ("ab", "c") and ("a", "bc") differ
    assert wg.interface_name("ab", "c", "n") != wg.interface_name("a", "bc", "n")


def test_keys_are_32_bytes_and_public_key_is_derived():
    private = wg.generate_private_key()
    assert len(base64.b64decode(private)) == 32
    assert wg.public_key(private) == wg.public_key(private + "\n")
    assert wg.valid_key(wg.public_key(private)) and not wg.valid_key("abc")


@pytest.mark.skipif(shutil.which("wg") is None, reason="wireguard-tools not installed")
def test_public_key_matches_wg_pubkey():
    private = wg.generate_private_key()
    out = subprocess.run(["wg", "pubkey"], input=private + "\n", capture_output=True, text=True, check=True)
    assert out.stdout.strip() == wg.public_key(private)


def test_addresses_are_stable_when_users_are_added():
    first = wg.assign_addresses("10.1.4.0/26", ["alice", "bob"])
    more = wg.assign_addresses("10.1.4.0/26", ["alice", "bob", "carol", "dave"])
    assert more["alice"] == first["alice"] and more["bob"] == first["bob"]
    assert len(set(more.values())) == 4
    assert "10.1.4.1" not in more.values()  # the server's
    with pytest.raises(ValueError):
        wg.assign_addresses("10.1.4.0/30", ["a", "b"])


def test_server_steps():
    alice = wg.WgPeer("alice", wg.public_key(wg.generate_private_key()), "10.1.4.2")
    bob = wg.WgPeer("bob", wg.public_key(wg.generate_private_key()), "10.1.4.3")
    cfg = server([bob, alice])
    steps = wg.server_steps(cfg)
    assert steps[0] == ["wg", "set", cfg.ifname, "private-key", "/var/lib/vispd/keys/server.key", "listen-port",
                        "51820", "peer", alice.public_key, "allowed-ips", "10.1.4.2/32",
                        "peer", bob.public_key, "allowed-ips", "10.1.4.3/32"]
    assert ["ip", "address", "replace", "10.1.4.1/26", "dev", cfg.ifname] in steps
    assert steps[-1][:5] == ["ip", "link", "set", "dev", cfg.ifname] and steps[-1][-1] == "up"


def test_peer_outside_the_pool_or_bad_key_is_refused():
    with pytest.raises(ValueError):
        server([wg.WgPeer("alice", wg.public_key(wg.generate_private_key()), "10.1.5.2")])
    with pytest.raises(ValueError):
        server([wg.WgPeer("alice", "not-a-key", "10.1.4.2")])
    with pytest.raises(ValueError):
        server(ifname="x" * 16)


def test_client_config_is_a_standard_wg_quick_file(tmp_path):
    key = wg.generate_private_key()
    cfg = server([wg.WgPeer("alice", wg.public_key(key), "10.1.4.2")])
    text = wg.client_config(cfg, "alice", key)
    parsed = wg.parse_wg_quick(text)
    assert parsed["interface"] == {"PrivateKey": key, "Address": "10.1.4.2/32", "MTU": "1420"}
    assert parsed["peers"] == [{"PublicKey": cfg.public_key, "Endpoint": "198.51.100.20:51820",
                                "AllowedIPs": "10.1.0.0/16", "PersistentKeepalive": "25"}]
    with pytest.raises(ValueError):
        wg.client_config(cfg, "alice", wg.generate_private_key())  # not alice's key
    with pytest.raises(KeyError):
        wg.client_config(cfg, "bob", key)
    if shutil.which("wg-quick") and os.geteuid() == 0:  # as non-root, wg-quick re-execs through sudo
        path = tmp_path / "vwtest0.conf"
        path.write_text(text)
        stripped = subprocess.run(["wg-quick", "strip", str(path)], capture_output=True, text=True)
        assert stripped.returncode == 0, stripped.stderr
        assert "Address" not in stripped.stdout and f"PublicKey = {cfg.public_key}" in stripped.stdout


def test_client_steps_do_what_wg_quick_would():
    key = wg.generate_private_key()
    cfg = server([wg.WgPeer("alice", wg.public_key(key), "10.1.4.2")])
    steps = wg.client_steps(wg.parse_wg_quick(wg.client_config(cfg, "alice", key)), "vwclient", "/k")
    assert steps[0] == ["wg", "set", "vwclient", "private-key", "/k", "peer", cfg.public_key, "endpoint",
                        "198.51.100.20:51820", "allowed-ips", "10.1.0.0/16", "persistent-keepalive", "25"]
    assert ["ip", "address", "add", "10.1.4.2/32", "dev", "vwclient"] in steps
    assert steps[-1] == ["ip", "route", "replace", "10.1.0.0/16", "dev", "vwclient"]


def test_daemon_spec_holds_no_secret():
    key = wg.generate_private_key()
    cfg = server([wg.WgPeer("alice", wg.public_key(key), "10.1.4.2")])
    spec = wg.daemon(cfg, "/run/x", interpreter="/usr/bin/python3")
    assert isinstance(spec, DaemonSpec)
    assert spec.argv == ("/usr/bin/python3", "-m", "access.wireguard", "--config", "/run/x/wg-plb-seattle.json")
    config = json.loads(spec.files["wg-plb-seattle.json"])
    assert config["ifname"] == cfg.ifname and config["steps"] == wg.server_steps(cfg)
    assert key not in spec.files["wg-plb-seattle.json"]
    assert "PYTHONPATH" in spec.env


def test_server_setup_and_profile_from_the_key_directory(tmp_path):
    key_file, public = wg.ensure_client_key(str(tmp_path), "alice")
    assert wg.ensure_client_key(str(tmp_path), "alice") == (key_file, public)  # generated once
    assert oct(os.stat(key_file).st_mode & 0o777) == "0o600"
    cfg = server([wg.WgPeer("alice", public, "10.1.4.2")])
    start, steps = wg.server_setup(cfg)
    assert start == ["wireguard-go", "-f", cfg.ifname] and steps == wg.server_steps(cfg)
    profile = wg.parse_wg_quick(wg.client_profile(str(tmp_path), cfg, "alice"))
    assert wg.public_key(profile["interface"]["PrivateKey"]) == public
