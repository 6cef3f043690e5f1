"""OpenVPN rendering (access.openvpn): the server configuration has what the access point
needs (TLS with `dh none`, subnet topology, the pool, the pushed slice prefix, the CRL, a
tun device, the public address and port, status and a management socket, no daemon), and
the client profile is a standard .ovpn whose inline certificates chain to the slice's CA
and name the server's certificate. Pure (plus a PKI in a temporary directory)."""
from __future__ import annotations

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from access import openvpn, pki
from access.spec import DaemonSpec


def server(pki_dir: str, **overrides) -> openvpn.OpenVPNServer:
    values = dict(name="plb-newyork", pki_dir=pki_dir, dev=openvpn.device_name("abilene", "plb", "newyork"),
                  local="198.51.100.10", pool="10.1.3.0/26", routes=("10.1.0.0/16",), port=1194)
    values.update(overrides)
    return openvpn.OpenVPNServer(**values)


def directives(text: str) -> list[list[str]]:
    """Non-comment directive lines (inline blocks skipped), split on whitespace."""
    out, inline = [], None
    for line in text.splitlines():
        if inline:
            if line.strip() == f"</{inline}>":
                inline = None
            continue
        match = re.fullmatch(r"<(\w[\w-]*)>", line.strip())
        if match:
            inline = match.group(1)
            continue
        if line.strip() and not line.lstrip().startswith(("#", ";")):
            out.append(line.split())
    return out


def inline_blocks(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"(?ms)^<(\w+)>\n(.*?)\n</\1>$", text)}


def test_server_config_has_everything_the_access_point_needs(tmp_path):
    cfg = server(str(tmp_path / "pki"))
    files = openvpn.server_files(cfg)
    assert list(files) == ["plb-newyork.conf"]
    lines = directives(files["plb-newyork.conf"])
    d = {line[0]: line[1:] for line in lines}
    assert d["dev"] == [cfg.dev] and d["dev-type"] == ["tun"]
    assert d["dh"] == ["none"]
    assert d["topology"] == ["subnet"]
    assert d["server"] == ["10.1.3.0", "255.255.255.192"]
    assert ["push", '"route', "10.1.0.0", '255.255.0.0"'] in lines
    assert d["local"] == ["198.51.100.10"] and d["port"] == ["1194"] and d["proto"] == ["udp4"]
    assert d["crl-verify"] == [pki.crl_path(cfg.pki_dir)]
    assert d["ca"] == [pki.ca_paths(cfg.pki_dir)[0]]
    assert d["cert"] == [str(tmp_path / "pki" / "server-plb-newyork.crt")]
    assert d["key"] == [str(tmp_path / "pki" / "server-plb-newyork.key")]
    assert d["remote-cert-tls"] == ["client"]
    assert d["status"][0] == "plb-newyork.status"
    assert d["management"] == ["plb-newyork.mgmt", "unix"]
    assert d["management-client-user"] == ["root"]
    for forbidden in ("daemon", "secret", "cipher", "user", "client-to-client", "duplicate-cn"):
        assert forbidden not in d
    # no secrets in the run directory: the key is referenced, never inlined
    assert "PRIVATE KEY" not in files["plb-newyork.conf"]


def test_tcp_server_and_several_routes(tmp_path):
    cfg = server(str(tmp_path), proto="tcp", routes=("10.1.0.0/16", "10.9.0.0/24"))
    lines = directives(openvpn.server_config(cfg))
    assert ["proto", "tcp4-server"] in lines
    assert ["explicit-exit-notify", "1"] not in lines
    assert sum(1 for line in lines if line[0] == "push") == 2


def test_bad_configurations_are_refused(tmp_path):
    with pytest.raises(ValueError):
        server(str(tmp_path), dev="x" * 16)
    with pytest.raises(ValueError):
        server(str(tmp_path), pool="10.1.3.0/30")
    with pytest.raises(ValueError):
        server(str(tmp_path), proto="sctp")


def test_command_and_daemon_spec(tmp_path):
    cfg = server(str(tmp_path / "pki"))
    assert openvpn.server_command("/run/x", "a.conf") == ["openvpn", "--cd", "/run/x", "--config", "a.conf"]
    spec = openvpn.daemon(cfg, "/run/x")
    assert isinstance(spec, DaemonSpec)
    assert spec.argv == ("openvpn", "--cd", "/run/x", "--config", "plb-newyork.conf")
    assert spec.files == openvpn.server_files(cfg)
    assert cfg.server_address == "10.1.3.1"


def test_device_names_fit_and_differ():
    names = {openvpn.device_name("abilene", s, n) for s in ("plb", "research") for n in ("seattle", "newyork")}
    assert len(names) == 4 and all(len(n) <= 15 for n in names)


def test_client_profile_is_standard_and_chains_to_the_ca(tmp_path):
    d = str(tmp_path / "pki")
    cfg = server(d, remote="203.0.113.7")
    openvpn.ensure_pki(cfg, ("alice",), label="plb")
    profile = openvpn.client_profile(d, cfg, "alice")
    lines = directives(profile)
    assert ["client"] in lines and ["nobind"] in lines and ["dev", "tun"] in lines
    assert ["remote", "203.0.113.7", "1194"] in lines
    assert ["proto", "udp"] in lines
    assert ["remote-cert-tls", "server"] in lines
    assert ["verify-x509-name", "server-plb-newyork", "name"] in lines
    blocks = inline_blocks(profile)
    assert set(blocks) == {"ca", "cert", "key"}
    ca = x509.load_pem_x509_certificate(blocks["ca"].encode())
    cert = x509.load_pem_x509_certificate(blocks["cert"].encode())
    key = serialization.load_pem_private_key(blocks["key"].encode(), None)
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    server_cert = x509.load_pem_x509_certificate(open(pki.leaf_paths(d, "server", cfg.name)[0], "rb").read())
    assert server_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "server-plb-newyork"


def test_profile_without_remote_dials_the_local_address(tmp_path):
    d = str(tmp_path / "pki")
    cfg = server(d)
    openvpn.ensure_pki(cfg, ("alice",))
    assert ["remote", "198.51.100.10", "1194"] in directives(openvpn.client_profile(d, cfg, "alice"))


def test_ensure_pki_keeps_revoked_users_revoked(tmp_path):
    d = str(tmp_path / "pki")
    cfg = server(d)
    openvpn.ensure_pki(cfg, ("alice", "bob"))
    pki.revoke(d, "bob")
    openvpn.ensure_pki(cfg, ("alice", "bob"))  # no error, no reissue
    assert pki.revoked_users(d).keys() == {"bob"}


def test_management_replies_and_commands():
    status = ("TITLE,OpenVPN 2.6.14\nTIME,x,1\nHEADER,CLIENT_LIST,Common Name,Real Address,Virtual Address,"
              "Virtual IPv6 Address,Bytes Received,Bytes Sent,Connected Since,Connected Since (time_t),Username,"
              "Client ID,Peer ID,Data Channel Cipher\n"
              "CLIENT_LIST,alice,198.18.0.2:1,10.1.3.2,,1,2,x,1,UNDEF,0,0,AES-256-GCM\n"
              "CLIENT_LIST,bob,198.18.0.6:1,10.1.3.3,,1,2,x,1,UNDEF,4,1,AES-256-GCM\nEND")
    clients = openvpn.parse_status(status)
    assert [c["Virtual Address"] for c in clients] == ["10.1.3.2", "10.1.3.3"]
    assert openvpn.sessions_of(clients, "bob") == ["4"]
    assert openvpn.sessions_of(clients, "carol") == []
    assert openvpn.client_kill_command("4") == "client-kill 4 HALT\n"
    with pytest.raises(ValueError):
        openvpn.client_kill_command("4; signal SIGTERM")


def test_client_command():
    assert openvpn.client_command("/p.ovpn", dev="tun7", extra=("--verb", "1")) == [
        "openvpn", "--config", "/p.ovpn", "--dev", "tun7", "--verb", "1"]
