"""Configuration (gateway/config.py): one TOML file, ``INSTPAGES_*`` environment overrides, defaults, and bad values
refused with the key named -- through ``load_config`` and through the CLI."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gateway.config import Config, load_config
from storage.errors import ConfigError
from tests.conftest import PYTHON, ROOT


def write(tmp_path: Path, text: str, name: str = "instpages.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


FILE = """
data_dir = "/srv/instpages"
node_id = "gw-1"

[sftp]
host = "0.0.0.0"
port = 2022
password_auth = false
user_ca_keys = ["/etc/instpages/ca1.pub", "/etc/instpages/ca2.pub"]

[storage]
workers = 4

[documents]
temporary_suffixes = [".filepart"]
max_size = 1048576

[logging]
level = "WARNING"
"""


# -- defaults -------------------------------------------------------------------------------------------------
def test_defaults_without_file_or_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, env={})
    assert cfg == Config()
    assert cfg.data_dir == "./var"
    assert cfg.data_path == (tmp_path / "var").resolve()
    assert (cfg.sftp.host, cfg.sftp.port) == ("127.0.0.1", 2222)
    assert cfg.database_url == f"sqlite:///{(tmp_path / 'var' / 'instpages.db').resolve()}"
    assert cfg.blob_path == (tmp_path / "var" / "blobs").resolve()
    assert cfg.key_path == (tmp_path / "var" / "keys").resolve()
    assert cfg.documents.temporary_suffixes == (".filepart", ".part")
    assert cfg.sftp.user_ca_keys == ()


def test_environment_variables_unrelated_to_instpages_are_ignored():
    cfg = load_config(None, env={"HOME": "/root", "INSTPAGESX": "1", "PATH": "/bin",
                                 "INSTPAGES_CONFIG": "/ignored/here.toml"})
    assert cfg == Config()


# -- file -----------------------------------------------------------------------------------------------------
def test_toml_file_values(tmp_path):
    cfg = load_config(write(tmp_path, FILE), env={})
    assert cfg.data_dir == "/srv/instpages"
    assert cfg.node_id == "gw-1" and cfg.effective_node_id == "gw-1"
    assert (cfg.sftp.host, cfg.sftp.port, cfg.sftp.password_auth) == ("0.0.0.0", 2022, False)
    assert cfg.sftp.user_ca_keys == ("/etc/instpages/ca1.pub", "/etc/instpages/ca2.pub")
    assert cfg.storage.workers == 4
    assert cfg.documents.temporary_suffixes == (".filepart",)
    assert cfg.documents.max_size == 1048576
    assert cfg.logging.level == "WARNING"
    # keys the file does not name keep their defaults
    assert cfg.sftp.login_timeout == 120 and cfg.sftp.max_auth_tries == 6 and cfg.storage.chunk_size == 256 * 1024
    assert cfg.documents.temporary_patterns == ("*.????????.partial",)


# -- environment overrides ------------------------------------------------------------------------------------
def test_environment_overrides_the_file(tmp_path):
    env = {
        "INSTPAGES_DATA_DIR": str(tmp_path / "data"),
        "INSTPAGES_SFTP_PORT": "2300",
        "INSTPAGES_SFTP_PASSWORD_AUTH": "yes",
        "INSTPAGES_SFTP_USER_CA_KEYS": "/a/ca.pub, /b/ca.pub ,",
        "INSTPAGES_DOCUMENTS_TEMPORARY_SUFFIXES": ".upload,.tmp",
        "INSTPAGES_STORAGE_CHUNK_SIZE": "65_536",
    }
    cfg = load_config(write(tmp_path, FILE), env=env)
    assert cfg.data_dir == str(tmp_path / "data")
    assert cfg.data_path == (tmp_path / "data").resolve()
    assert cfg.database_url == f"sqlite:///{(tmp_path / 'data' / 'instpages.db').resolve()}"
    assert cfg.sftp.port == 2300 and isinstance(cfg.sftp.port, int)
    assert cfg.sftp.password_auth is True
    assert cfg.sftp.user_ca_keys == ("/a/ca.pub", "/b/ca.pub")
    assert cfg.documents.temporary_suffixes == (".upload", ".tmp")
    assert cfg.storage.chunk_size == 65536
    # what the environment does not name still comes from the file
    assert cfg.sftp.host == "0.0.0.0" and cfg.storage.workers == 4 and cfg.node_id == "gw-1"


def test_explicit_overrides_beat_the_environment(tmp_path):
    cfg = load_config(None, env={"INSTPAGES_DATA_DIR": "/from/env", "INSTPAGES_SFTP_PORT": "2300"},
                      overrides={"data_dir": str(tmp_path), "sftp.port": 0})
    assert cfg.data_dir == str(tmp_path) and cfg.sftp.port == 0


def test_load_balancers_from_the_file_and_the_environment(tmp_path):
    assert load_config(None, env={}).server.proxy_protocol_from == ()
    cfg = load_config(write(tmp_path, '[server]\nproxy_protocol_from = ["10.0.0.5/32", "2001:db8::5"]\n'), env={})
    assert cfg.server.proxy_protocol_from == ("10.0.0.5/32", "2001:db8::5")
    env = {"INSTPAGES_SERVER_PROXY_PROTOCOL_FROM": "10.0.0.5/32, 10.0.0.6"}
    assert load_config(None, env=env).server.proxy_protocol_from == ("10.0.0.5/32", "10.0.0.6")


def test_empty_list_from_environment():
    assert load_config(None, env={"INSTPAGES_SFTP_USER_CA_KEYS": ""}).sftp.user_ca_keys == ()


# -- bad values: refused, with the key named ------------------------------------------------------------------
BAD_FILES = {
    "unknown top-level key": ("colour = 'blue'\n", "colour"),
    "unknown key in a section": ("[sftp]\nprot = 22\n", "sftp.prot"),
    "unknown section": ("[ftp]\nport = 21\n", "ftp"),
    "section is not a table": ("sftp = 22\n", "sftp"),
    "port as a string": ("[sftp]\nport = \"22\"\n", "sftp.port"),
    "port as a float": ("[sftp]\nport = 22.5\n", "sftp.port"),
    "bool as an integer": ("[sftp]\npassword_auth = 1\n", "sftp.password_auth"),
    "int as a bool": ("[storage]\nworkers = true\n", "storage.workers"),
    "list of non-strings": ("[documents]\ntemporary_suffixes = [1, 2]\n", "documents.temporary_suffixes"),
    "list as a string": ("[sftp]\nuser_ca_keys = \"/a.pub\"\n", "sftp.user_ca_keys"),
    "port above range": ("[sftp]\nport = 65536\n", "sftp.port"),
    "port below range": ("[sftp]\nport = -1\n", "sftp.port"),
    "bad logging level": ("[logging]\nlevel = \"LOUD\"\n", "logging.level"),
    "suffix without a dot": ("[documents]\ntemporary_suffixes = [\"part\"]\n", "documents.temporary_suffixes"),
    "empty data dir": ("data_dir = \"\"\n", "data_dir"),
    "no authentication tries": ("[sftp]\nmax_auth_tries = 0\n", "sftp.max_auth_tries"),
    "no time to log in": ("[sftp]\nlogin_timeout = 0\n", "sftp.login_timeout"),
    "pattern matching every name": ("[documents]\ntemporary_patterns = [\"*\"]\n", "documents.temporary_patterns"),
    "pattern with a folder": ("[documents]\ntemporary_patterns = [\"tmp/*\"]\n", "documents.temporary_patterns"),
    "source ban score zero": ("[auth]\nsource_ban_score = 0\n", "auth.source_ban_score"),
    "negative source score": ("[auth]\nsource_score_unknown_name = -1\n", "auth.source_score_unknown_name"),
    "exempt network not a range": ("[auth]\nsource_exempt_networks = [\"10.0.0.0/33\"]\n",
                                   "auth.source_exempt_networks"),
    "balancer not an address": ("[server]\nproxy_protocol_from = [\"haproxy.local\"]\n",
                                "server.proxy_protocol_from"),
    "PROXY headers on the plain-HTTP port": ('[server]\nproxy_protocol_from = ["10.0.0.5"]\n[webdav]\nplain_http = true\n',
                                             "server.proxy_protocol_from"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_values_are_refused_naming_the_key(tmp_path, case):
    text, key = BAD_FILES[case]
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert key in info.value.message, info.value.message


BAD_ENV = {
    "unknown top-level env key": ({"INSTPAGES_BOGUS": "1"}, ["INSTPAGES_BOGUS"]),
    "unknown env key in a section": ({"INSTPAGES_SFTP_PROT": "22"}, ["sftp.prot", "INSTPAGES_SFTP_PROT"]),
    "port not a number": ({"INSTPAGES_SFTP_PORT": "twenty-two"}, ["sftp.port", "twenty-two"]),
    "port out of range": ({"INSTPAGES_SFTP_PORT": "70000"}, ["sftp.port"]),
    "webdav port out of range": ({"INSTPAGES_WEBDAV_PORT": "65536"}, ["webdav.port"]),
    "bool not a bool": ({"INSTPAGES_SFTP_PASSWORD_AUTH": "maybe"}, ["sftp.password_auth"]),
    "list with a bad item": ({"INSTPAGES_DOCUMENTS_TEMPORARY_SUFFIXES": ".part,tmp"},
                             ["documents.temporary_suffixes"]),
}


@pytest.mark.parametrize("case", list(BAD_ENV))
def test_bad_environment_values_are_refused_naming_the_key(case):
    env, words = BAD_ENV[case]
    with pytest.raises(ConfigError) as info:
        load_config(None, env=env)
    for w in words:
        assert w in info.value.message, info.value.message


def test_missing_and_malformed_files_are_refused_naming_the_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml", env={})
    assert str(tmp_path / "nope.toml") in info.value.message
    bad = write(tmp_path, "[sftp\nport = 1\n", "broken.toml")
    with pytest.raises(ConfigError) as info:
        load_config(bad, env={})
    assert str(bad) in info.value.message


# -- through the CLI ------------------------------------------------------------------------------------------
def cli_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTPAGES_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def instpages(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "gateway", *args], capture_output=True, text=True, env=env, cwd=str(cwd),
                          timeout=60)


def test_cli_default_data_dir_and_env_data_dir(tmp_path):
    r = instpages("init", env=cli_env(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"initialised {(tmp_path / 'var').resolve()}"
    assert (tmp_path / "var" / "instpages.db").is_file()

    elsewhere = tmp_path / "elsewhere"
    r = instpages("init", env=cli_env(INSTPAGES_DATA_DIR=str(elsewhere)), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"initialised {elsewhere.resolve()}"
    assert (elsewhere / "instpages.db").is_file()


CLI_BAD = {
    "unknown key in file": ({}, "[sftp]\nprot = 22\n", "sftp.prot"),
    "unknown env key": ({"INSTPAGES_SFTP_PROT": "22"}, None, "INSTPAGES_SFTP_PROT"),
    "wrong type in file": ({}, "[storage]\nworkers = \"many\"\n", "storage.workers"),
    "port out of range from env": ({"INSTPAGES_SFTP_PORT": "70000"}, None, "sftp.port"),
}


@pytest.mark.parametrize("case", list(CLI_BAD))
def test_cli_refuses_bad_configuration_in_one_line_naming_the_key(tmp_path, case):
    extra_env, file_text, key = CLI_BAD[case]
    data_dir = tmp_path / "var"
    args = ["institution", "list", "--data-dir", str(data_dir)]
    if file_text is not None:
        args += ["--config", str(write(tmp_path, file_text))]
    r = instpages(*args, env=cli_env(**extra_env), cwd=tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("instpages: error: ") and key in lines[0], lines[0]
    assert not data_dir.exists(), "a refused configuration must not create anything"
