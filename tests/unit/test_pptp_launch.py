"""The start/stop contract the planner uses (pure): pptpd's files and command line, the
client command, the engine's configuration checks, the pool and the TUN names."""
from __future__ import annotations

import json
import os

import pytest

from access.pptp import config, launch, server_command, server_files, client_command

SERVER = {"slice": "plb", "listen": "100.64.0.5", "pool": "198.18.2.0/26",
          "users_file": "/run/vispd/plb/pptp-users.json", "tun_prefix": "pptp-plb",
          "log_file": "/run/vispd/plb/pptp.log"}


def test_server_files_render_pptpd_conf_options_and_engine_json():
    files = server_files(SERVER)
    assert set(files) == {"pptpd.conf", "options.pptp", "engine.json"}
    conf = files["pptpd.conf"].splitlines()
    assert "listen 100.64.0.5" in conf
    assert "localip 198.18.2.1" in conf
    assert "remoteip 198.18.2.2-62" in conf
    assert "connections 61" in conf
    assert not any(line.startswith(("delegate", "logwtmp", "bcrelay")) for line in conf)
    assert any(line.startswith("python /") for line in files["options.pptp"].splitlines())
    engine = json.loads(files["engine.json"])
    assert engine["local_address"] == "198.18.2.1" and engine["users_file"] == SERVER["users_file"]
    assert engine["auth"] == ["mschapv2", "chap-md5"] and engine["mtu"] == 1400
    assert server_files(SERVER) == files  # pure and deterministic


def test_server_command_runs_pptpd_in_the_foreground_from_the_run_dir():
    argv = server_command("/run/vispd/plb/pptp")
    assert argv[:2] == ["pptpd", "--fg"]
    pairs = dict(zip(argv[2::2], argv[3::2]))
    assert pairs["-c"] == "/run/vispd/plb/pptp/pptpd.conf"
    assert pairs["-o"] == "/run/vispd/plb/pptp/options.pptp"
    assert pairs["-p"] == "/run/vispd/plb/pptp/pptpd.pid"
    assert pairs["-e"] == launch.SHIM and os.access(launch.SHIM, os.X_OK)


def test_client_command_runs_the_engine_module():
    argv = client_command("100.64.0.5", "/tmp/c.json")
    assert argv[1:] == ["-m", "access.pptp.engine", "--role", "client", "--config", "/tmp/c.json",
                        "--server", "100.64.0.5"]


def test_remoteip_spans_several_slash24s_and_skips_the_server():
    spec = config.remoteip_spec({"pool": "198.18.0.0/23", "local_address": "198.18.1.0"})
    assert spec == "198.18.0.1-255,198.18.1.1-254"
    assert config.remoteip_spec({"pool": "198.18.2.0/30"}) == "198.18.2.2"


def test_tun_names_are_unique_per_client_and_fit_ifnamsiz():
    merged = config.validate_server(SERVER)
    assert config.tun_name(merged, "198.18.2.2") == "pptp-plb0"
    assert config.tun_name(merged, "198.18.2.62") == "pptp-plb60"
    with pytest.raises(config.ConfigError):
        config.tun_name(merged, "198.18.3.1")
    with pytest.raises(config.ConfigError, match="15"):
        config.validate_server({**SERVER, "tun_prefix": "a-very-long-pfx"})


@pytest.mark.parametrize("change, message", [
    ({"pool": None}, "pool"),
    ({"users_file": ""}, "users_file"),
    ({"pool": "198.18.2.0/32"}, "no address"),
    ({"pool": "198.18.2.1/26"}, "pool"),
    ({"auth": ["pap"]}, "auth"),
    ({"mtu": 9000}, "mtu"),
])
def test_bad_server_configs_name_the_key(change, message):
    with pytest.raises(config.ConfigError, match=message):
        config.validate_server({**SERVER, **change})


def test_client_config_defaults_and_checks(tmp_path):
    merged = config.validate_client({"server": "100.64.0.5", "user": "bob", "password": "pw",
                                     "routes": ["198.18.0.1/22"]})
    assert merged["tun"] == "pptp0" and merged["routes"] == ["198.18.0.0/22"]
    assert merged["private_callmgr"] is True
    with pytest.raises(config.ConfigError, match="password"):
        config.validate_client({"server": "100.64.0.5", "user": "bob"})
    with pytest.raises(config.ConfigError, match="tun"):
        config.validate_client({"server": "100.64.0.5", "user": "bob", "password": "x",
                                "tun": "much-too-long-name"})
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert config.read_password({"password_file": str(secret)}) == "s3cret"
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": {"bob": "s3cret"}}))
    assert config.read_users(str(users)) == {"bob": "s3cret"}
