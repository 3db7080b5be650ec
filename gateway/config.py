"""Configuration: one TOML file, every key overridable by an ``INSTPAGES_...`` environment variable.

The result is a tree of frozen dataclasses passed to whoever needs it; nothing reads configuration from globals.
Environment names are ``INSTPAGES_<KEY>`` for top-level keys (``INSTPAGES_DATA_DIR``) and
``INSTPAGES_<SECTION>_<KEY>`` for keys in a section (``INSTPAGES_SFTP_PORT``). Unknown keys, wrong types and
out-of-range values are refused at start with the key named.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from storage.errors import ConfigError
from gateway.core.filing import DEFAULT_RULES, compile_rule

ENV_PREFIX = "INSTPAGES_"


@dataclass(frozen=True)
class ServerConfig:
    #: identical worker processes serving the SFTP and HTTPS ports under one supervisor (1 = one process, no
    #: supervisor); default the number of cores
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: addresses/ranges of the TCP load balancers in front of the SFTP and HTTPS ports: a connection from one of
    #: them must begin with a PROXY header (v1 or v2) and its client address is the connection's source; a header
    #: from anyone else is not believed. Empty = no PROXY headers.
    proxy_protocol_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class SFTPConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 2222
    #: host key file; empty = ``<data_dir>/ssh_host_ed25519_key``, generated on first start
    host_key: str = ""
    #: files holding trusted OpenSSH user CA public keys (one key per line)
    user_ca_keys: tuple[str, ...] = ()
    #: files listing revoked public keys (OpenSSH one-line form; a certificate whose key is listed is refused too)
    revoked_keys: tuple[str, ...] = ()
    #: seconds a connection has to log in before it is dropped, on the record (OpenSSH's LoginGraceTime)
    login_timeout: int = 120
    #: refused authentication attempts one connection gets before it is dropped, on the record (OpenSSH's
    #: MaxAuthTries)
    max_auth_tries: int = 6
    #: seconds an idle session may stay open (0 = no limit)
    idle_timeout: int = 900
    #: accept password logins for local person accounts (LDAP and second factors come later)
    password_auth: bool = True
    #: out-of-order write window per upload handle, in bytes
    write_window: int = 16 * 1024 * 1024


@dataclass(frozen=True)
class WebDAVConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8443
    #: certificate chain and key (PEM); empty = a self-signed pair in <data_dir>/tls, generated on first start
    tls_cert: str = ""
    tls_key: str = ""
    #: serve plain HTTP: only behind a TLS-terminating proxy on the same host or network
    plain_http: bool = False
    #: worker threads of the HTTP server: one per request in progress, however long it waits (its download's
    #: record committing with others); 64 left 200 drive users queued for a thread
    threads: int = 256
    #: seconds a verified Basic login is remembered (in memory, under an HMAC of the credentials)
    auth_cache_seconds: int = 60
    #: bytes per read when streaming a document
    block_size: int = 1024 * 1024
    #: PEM bundle of the eID trust anchors: the root CAs and the intermediate (Citizen) CAs. A person's certificate
    #: is an eID only when its chain verifies against these; pinned machine certificates match exactly, apart
    client_ca_file: str = ""
    #: PEM CRL files of those CAs; a certificate they revoke logs nobody in
    client_crl_files: tuple[str, ...] = ()
    #: seconds a client has to complete its TLS handshake; handshakes never hold up other clients
    handshake_timeout_seconds: float = 10.0
    #: seconds until a client certificate pinned while the gateway runs (by any process) is accepted
    trust_refresh_seconds: float = 5.0
    #: seconds a console / REST API session lasts after the strong login
    session_seconds: int = 900
    #: longest a WebDAV lock lasts (a client's Timeout header, "Infinite" included, is capped to it)
    lock_max_seconds: int = 3600
    #: live WebDAV locks one account may hold at once
    locks_per_account: int = 50


@dataclass(frozen=True)
class AuthConfig:
    #: "required": people log in with a first and a second factor on every protocol (token card over SFTP;
    #: eID certificate + password, or a device password, over WebDAV). "off" accepts a password alone and is
    #: meant for test set-ups only (a warning is logged at start).
    second_factor: str = "required"
    token_codes: int = 24
    token_challenge_seconds: int = 300
    device_password_days: int = 90
    #: failed logins (passwords, token codes, device passwords, API tokens: never keys or certificates) inside
    #: this window count towards a delay or a ban
    failure_window_seconds: int = 900
    #: after its n-th failure an account name waits base * 2^(n-1) seconds (capped) before its next attempt is
    #: looked at; attempts inside that time are refused at once (HTTP 429 + Retry-After)
    failure_delay_base: float = 0.25
    failure_delay_max: float = 4.0
    #: this many failures of one account name inside the window ban that name's guessable logins for ban_seconds
    ban_after: int = 10
    #: how long a ban of an account name or a source address lasts (it is not extended by attempts during it)
    ban_seconds: int = 900
    #: a source address whose score reaches this inside the window is banned (keys and certificates still log in)
    source_ban_score: int = 30
    #: score of a failure for a name that is no account (or an unknown API token) ...
    source_score_unknown_name: int = 3
    #: ... and of the first failure of a known name from the address inside the window (repeats score nothing)
    source_score_known_name: int = 1
    #: addresses/ranges that never score nor get banned as a source (e.g. the Publilink/VERA gateways); the
    #: per-account counts still apply to logins from them
    source_exempt_networks: tuple[str, ...] = ()
    #: X-Forwarded-For is honoured only when the connection comes from one of these addresses/ranges
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class LDAPConfig:
    enabled: bool = False
    uris: tuple[str, ...] = ()
    start_tls: bool = True
    ca_file: str = ""
    bind_dn: str = ""
    #: the service account's password; prefer INSTPAGES_LDAP_BIND_PASSWORD to writing it in a file
    bind_password: str = ""
    user_dn_template: str = ""
    user_base: str = ""
    user_filter: str = "(&(objectClass=inetOrgPerson)(uid={username}))"
    disabled_filter: str = ""
    attr_username: str = "uid"
    attr_display_name: str = "cn"
    attr_email: str = "mail"
    attr_nrn: str = "serialNumber"
    group_base: str = ""
    group_filter: str = "(member={dn})"
    group_pattern: str = r"^cn=ocmw-(?P<institution>\d{10})-(?P<access>staff|remove|admin),"
    timeout: float = 5.0
    cache_seconds: int = 300
    pool_size: int = 4


@dataclass(frozen=True)
class StorageConfig:
    #: SQLAlchemy URL; empty = ``sqlite:///<data_dir>/instpages.db``
    database_url: str = ""
    #: folder for encrypted documents; empty = ``<data_dir>/blobs``
    blob_dir: str = ""
    #: folder for master keys; empty = ``<data_dir>/keys``
    key_dir: str = ""
    chunk_size: int = 256 * 1024
    #: worker threads for blocking work (database, disk, crypto)
    workers: int = 16
    #: where documents are kept: "local" (blob_dir, one node) or "s3" (an S3-compatible bucket, shared by nodes)
    blobs: str = "local"
    #: the S3 service, e.g. https://s3.example.org (empty = AWS, by region); bucket; key prefix ("instpages/")
    s3_endpoint: str = ""
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_region: str = "us-east-1"
    #: prefer INSTPAGES_STORAGE_S3_ACCESS_KEY / _SECRET_KEY to writing them in a file; both empty = the
    #: environment's own AWS credentials (instance role...)
    s3_access_key: str = field(default="", repr=False)
    s3_secret_key: str = field(default="", repr=False)
    #: hours after which an upload in progress of another node or worker is abandoned: its temporary blob is
    #: removed by the periodic sweep (a node removes its own at start-up)
    abandoned_hours: int = 24
    #: seconds between two reads of the cache epochs: a change made by any process (a revoked grant, a disabled
    #: account, a suspended centre, a pinned certificate, ``instpages reload``) reaches every process within this
    cache_sync_seconds: float = 1.0


@dataclass(frozen=True)
class DocumentsConfig:
    max_size: int = 512 * 1024 * 1024
    allow_active_content: bool = False
    #: names ending in one of these are staged uploads, committed by a rename (WinSCP, FileZilla)
    temporary_suffixes: tuple[str, ...] = (".filepart", ".part")
    #: whole names (shell-style patterns, case-sensitive) that are staged uploads too: rclone uploads to
    #: ``NAME.<8 random characters>.partial`` and renames
    temporary_patterns: tuple[str, ...] = ("*.????????.partial",)
    #: folder levels below a centre's mailbox
    max_depth: int = 4
    max_name_length: int = 200
    #: hours an unrenamed staged upload is kept before it is removed
    staged_ttl_hours: int = 24
    #: regular expressions over a document's path in its mailbox that give its kind, legislation and period
    #: (gateway/core/filing.py); the first that matches files it, none: "unclassified"
    filing_rules: tuple[str, ...] = DEFAULT_RULES


@dataclass(frozen=True)
class SMTPConfig:
    #: the mail relay; empty = no mail (nothing is queued, the console says so)
    host: str = ""
    port: int = 587
    #: "starttls" (upgrade a plain connection; refused if the server does not offer it), "tls" (implicit TLS,
    #: usually port 465) or "none" (a relay on the same host only)
    security: str = "starttls"
    username: str = ""
    #: prefer INSTPAGES_SMTP_PASSWORD to writing it in a file
    password: str = ""
    #: PEM bundle to verify the relay's certificate; empty = the system's
    ca_file: str = ""
    timeout: float = 15.0
    from_address: str = "institutional-pages@localhost"


@dataclass(frozen=True)
class NotificationsConfig:
    #: at most one new-document digest per centre per this many seconds
    digest_interval_seconds: int = 3600
    #: how often the outbox and the digests are looked at
    poll_seconds: float = 10.0
    #: a failed send is retried after base * 2^(attempts-1) seconds, at most max; it is never dropped
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    #: the address staff use, for links in mails; empty = https://<webdav.host>:<webdav.port>
    public_url: str = ""


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"


@dataclass(frozen=True)
class Config:
    data_dir: str = "./var"
    #: identifies this process among identical gateways sharing one database (crash recovery); empty = hostname
    node_id: str = ""
    server: ServerConfig = field(default_factory=ServerConfig)
    sftp: SFTPConfig = field(default_factory=SFTPConfig)
    webdav: WebDAVConfig = field(default_factory=WebDAVConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    ldap: LDAPConfig = field(default_factory=LDAPConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    documents: DocumentsConfig = field(default_factory=DocumentsConfig)
    smtp: SMTPConfig = field(default_factory=SMTPConfig)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    # -- derived paths -------------------------------------------------------------------------------------------
    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def database_url(self) -> str:
        return self.storage.database_url or f"sqlite:///{self.data_path / 'instpages.db'}"

    def _path(self, setting: str, *default: str) -> Path:
        """The path a setting names, or ``default`` below the data folder when it is empty."""
        return Path(setting).expanduser().resolve() if setting else self.data_path.joinpath(*default)

    @property
    def blob_path(self) -> Path:
        return self._path(self.storage.blob_dir, "blobs")

    @property
    def key_path(self) -> Path:
        return self._path(self.storage.key_dir, "keys")

    @property
    def host_key_path(self) -> Path:
        return self._path(self.sftp.host_key, "ssh_host_ed25519_key")

    @property
    def tls_cert_path(self) -> Path:
        return self._path(self.webdav.tls_cert, "tls", "server.pem")

    @property
    def tls_key_path(self) -> Path:
        return self._path(self.webdav.tls_key, "tls", "server.key")

    @property
    def public_url(self) -> str:
        if self.notifications.public_url:
            return self.notifications.public_url.rstrip("/")
        scheme = "http" if self.webdav.plain_http else "https"
        return f"{scheme}://{self.webdav.host}:{self.webdav.port}"

    @property
    def effective_node_id(self) -> str:
        return self.node_id or os.uname().nodename


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {name: hints[name] for name in hints if dataclasses.is_dataclass(hints[name])}


def _key_types(sections: dict[str, type]) -> dict[str, dict[str, Any]]:
    """The type of every key, by section; the top-level keys are the section ``""``."""
    top = {k: v for k, v in typing.get_type_hints(Config).items() if k not in sections}
    return {"": top, **{name: typing.get_type_hints(cls) for name, cls in sections.items()}}


def _put(found: dict[str, dict[str, Any]], types: dict[str, dict[str, Any]], section: str, key: str, value: Any,
         from_env: bool, origin: str = "") -> None:
    """``value`` converted into ``found[section][key]``; an unknown key is refused (``origin`` says where it came
    from)."""
    dotted = f"{section}.{key}" if section else key
    if key not in types[section]:
        raise ConfigError(f"unknown configuration key {dotted}{origin}")
    found[section][key] = _convert(dotted, value, types[section][key], from_env)


def _env_key(types: dict[str, dict[str, Any]], name: str) -> tuple[str, str]:
    """The section and key an ``INSTPAGES_...`` variable sets: ``DATA_DIR`` -> ("", "data_dir"),
    ``SFTP_PORT`` -> ("sftp", "port")."""
    rest = name[len(ENV_PREFIX):].lower()
    if rest in types[""]:
        return "", rest
    for section in types:
        if section and rest.startswith(section + "_"):
            return section, rest[len(section) + 1:]
    raise ConfigError(f"unknown configuration key in environment variable {name}")


def _convert(key: str, value: Any, typ: Any, from_env: bool) -> Any:
    """Convert ``value`` to ``typ``; ``key`` is the dotted name used in error messages."""
    origin = typing.get_origin(typ)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if from_env and isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"configuration key {key}: expected true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"configuration key {key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if from_env and isinstance(value, str):
            try:
                return int(value.strip().replace("_", ""))
            except ValueError:
                pass
        raise ConfigError(f"configuration key {key}: expected an integer, got {value!r}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_env and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"configuration key {key}: expected a number, got {value!r}")
    if typ is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"configuration key {key}: expected a string, got {value!r}")
    if origin is tuple:
        if from_env and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"configuration key {key}: expected a list of strings, got {value!r}")
    raise ConfigError(f"configuration key {key}: unsupported type")  # pragma: no cover


def _validate(cfg: Config) -> None:
    def need(cond: bool, key: str, why: str) -> None:
        if not cond:
            raise ConfigError(f"configuration key {key}: {why}")

    need(1 <= cfg.server.workers <= 256, "server.workers", "must be between 1 and 256")
    _validate_balancers(cfg, need)
    need(0 <= cfg.sftp.port <= 65535, "sftp.port", "must be between 0 and 65535")
    need(0 <= cfg.webdav.port <= 65535, "webdav.port", "must be between 0 and 65535")
    _validate_auth(cfg, need)
    _validate_ldap(cfg, need)
    _validate_webdav(cfg, need)
    _validate_sftp(cfg, need)
    _validate_storage(cfg, need)
    _validate_documents(cfg, need)
    _validate_mail(cfg, need)
    need(cfg.logging.level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"), "logging.level",
         "must be DEBUG, INFO, WARNING or ERROR")
    need(bool(cfg.data_dir), "data_dir", "must not be empty")


def _validate_balancers(cfg: Config, need) -> None:
    """``server.proxy_protocol_from``: addresses or ranges, and a TLS port to read the PROXY headers on."""
    for net in cfg.server.proxy_protocol_from:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            need(False, "server.proxy_protocol_from", f"{net!r} is not an address or CIDR range")
    need(not (cfg.server.proxy_protocol_from and cfg.webdav.enabled and cfg.webdav.plain_http),
         "server.proxy_protocol_from", "the plain-HTTP port reads no PROXY headers (it believes X-Forwarded-For "
         "from auth.trusted_proxies): put the balancer in front of the TLS port")


def _validate_auth(cfg: Config, need) -> None:
    """The keys of logins, throttling and bans."""
    need(cfg.auth.second_factor in ("required", "off"), "auth.second_factor", 'must be "required" or "off"')
    need(4 <= cfg.auth.token_codes <= 100, "auth.token_codes", "must be between 4 and 100")
    need(cfg.auth.token_challenge_seconds > 0, "auth.token_challenge_seconds", "must be positive")
    need(1 <= cfg.auth.device_password_days <= 3650, "auth.device_password_days", "must be between 1 and 3650")
    need(cfg.auth.ban_after >= 1, "auth.ban_after", "must be at least 1")
    need(cfg.auth.failure_delay_base >= 0 and cfg.auth.failure_delay_max >= 0, "auth.failure_delay_base",
         "delays must not be negative")
    need(cfg.auth.failure_window_seconds > 0, "auth.failure_window_seconds", "must be positive")
    need(cfg.auth.ban_seconds >= 0, "auth.ban_seconds", "must not be negative")
    need(cfg.auth.source_ban_score >= 1, "auth.source_ban_score", "must be at least 1")
    for key in ("source_score_unknown_name", "source_score_known_name"):
        need(0 <= getattr(cfg.auth, key) <= 1000, f"auth.{key}", "must be between 0 and 1000")
    for key in ("trusted_proxies", "source_exempt_networks"):
        for net in getattr(cfg.auth, key):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                need(False, f"auth.{key}", f"{net!r} is not an address or CIDR range")


def _validate_ldap(cfg: Config, need) -> None:
    """The keys of the organisation's directory."""
    need(not cfg.ldap.enabled or bool(cfg.ldap.uris), "ldap.uris", "give at least one URI when LDAP is enabled")
    need(not cfg.ldap.enabled or bool(cfg.ldap.user_dn_template or cfg.ldap.user_base), "ldap.user_base",
         "give user_base (search then bind) or user_dn_template (direct bind)")
    need(cfg.ldap.timeout > 0, "ldap.timeout", "must be positive")
    need(not cfg.ldap.enabled or bool(cfg.ldap.bind_dn), "ldap.bind_dn",
         "a service account is needed to re-read accounts, so that a disabled or deleted user loses access")


def _validate_webdav(cfg: Config, need) -> None:
    """The keys of the HTTPS port."""
    need(1 <= cfg.webdav.threads <= 1024, "webdav.threads", "must be between 1 and 1024")
    need(60 <= cfg.webdav.session_seconds <= 86400, "webdav.session_seconds", "must be between 60 and 86400")
    need(cfg.webdav.auth_cache_seconds >= 0, "webdav.auth_cache_seconds", "must not be negative")
    need(1 <= cfg.webdav.lock_max_seconds <= 7 * 86400, "webdav.lock_max_seconds", "must be between 1 and 604800")
    need(1 <= cfg.webdav.locks_per_account <= 10000, "webdav.locks_per_account", "must be between 1 and 10000")
    need(0 < cfg.webdav.handshake_timeout_seconds <= 300, "webdav.handshake_timeout_seconds",
         "must be more than 0 and at most 300")
    need(0 < cfg.webdav.trust_refresh_seconds <= 3600, "webdav.trust_refresh_seconds",
         "must be more than 0 and at most 3600")
    need(65536 <= cfg.webdav.block_size <= 16 * 1024 * 1024, "webdav.block_size", "must be between 65536 and 16777216")
    need(bool(cfg.webdav.tls_cert) == bool(cfg.webdav.tls_key), "webdav.tls_key",
         "tls_cert and tls_key are set together")


def _validate_sftp(cfg: Config, need) -> None:
    """The keys of the SFTP port."""
    try:
        ipaddress.ip_address(cfg.sftp.host)
    except ValueError:
        need(cfg.sftp.host == "localhost" or (cfg.sftp.host.replace(".", "").replace("-", "").isalnum()),
             "sftp.host", "must be an IP address or host name")
    need(0 < cfg.sftp.login_timeout <= 3600, "sftp.login_timeout", "must be between 1 and 3600")
    need(1 <= cfg.sftp.max_auth_tries <= 100, "sftp.max_auth_tries", "must be between 1 and 100")
    need(cfg.sftp.idle_timeout >= 0, "sftp.idle_timeout", "must not be negative")
    need(cfg.sftp.write_window >= 65536, "sftp.write_window", "must be at least 65536")


def _validate_storage(cfg: Config, need) -> None:
    """The keys of the database and the blob store."""
    need(4096 <= cfg.storage.chunk_size <= 16 * 1024 * 1024, "storage.chunk_size", "must be between 4096 and 16777216")
    need(1 <= cfg.storage.workers <= 256, "storage.workers", "must be between 1 and 256")
    _validate_blobs(cfg, need)
    need(0.05 <= cfg.storage.cache_sync_seconds <= 60, "storage.cache_sync_seconds", "must be between 0.05 and 60")


def _validate_documents(cfg: Config, need) -> None:
    """The keys of what an upload may be."""
    need(cfg.documents.max_size > 0, "documents.max_size", "must be positive")
    need(1 <= cfg.documents.max_depth <= 16, "documents.max_depth", "must be between 1 and 16")
    need(16 <= cfg.documents.max_name_length <= 255, "documents.max_name_length", "must be between 16 and 255")
    need(all(s.startswith(".") and len(s) > 1 for s in cfg.documents.temporary_suffixes),
         "documents.temporary_suffixes", "each suffix must start with a dot")
    need(all(p and "/" not in p and not fnmatch.fnmatchcase("document.pdf", p)
             for p in cfg.documents.temporary_patterns),
         "documents.temporary_patterns", "a pattern may not contain / nor match an ordinary name (document.pdf)")
    need(cfg.documents.staged_ttl_hours > 0, "documents.staged_ttl_hours", "must be positive")
    for rule in cfg.documents.filing_rules:
        try:
            compile_rule(rule)
        except ValueError as exc:
            need(False, "documents.filing_rules", f"{rule!r}: {exc}")


def _validate_mail(cfg: Config, need) -> None:
    """The keys of mail and notifications."""
    need(cfg.smtp.security in ("starttls", "tls", "none"), "smtp.security", 'must be "starttls", "tls" or "none"')
    need(0 < cfg.smtp.port <= 65535, "smtp.port", "must be between 1 and 65535")
    need(cfg.smtp.timeout > 0, "smtp.timeout", "must be positive")
    need("@" in cfg.smtp.from_address and not any(ch in cfg.smtp.from_address for ch in "\r\n<>, "),
         "smtp.from_address", "must be one plain address")
    need(not cfg.smtp.password or bool(cfg.smtp.username), "smtp.username", "a password needs a user name")
    need(cfg.notifications.digest_interval_seconds >= 0, "notifications.digest_interval_seconds",
         "must not be negative")
    need(cfg.notifications.poll_seconds > 0, "notifications.poll_seconds", "must be positive")
    need(0 < cfg.notifications.retry_base_seconds <= cfg.notifications.retry_max_seconds,
         "notifications.retry_base_seconds", "must be positive and at most retry_max_seconds")
    need(not cfg.notifications.public_url or cfg.notifications.public_url.startswith(("https://", "http://")),
         "notifications.public_url", "must start with https://")


def _validate_blobs(cfg: Config, need) -> None:
    st = cfg.storage
    need("/" not in cfg.node_id, "node_id", "must not contain /")
    need(st.blobs in ("local", "s3"), "storage.blobs", 'must be "local" or "s3"')
    need(1 <= st.abandoned_hours <= 24 * 30, "storage.abandoned_hours", "must be between 1 and 720")
    if st.blobs != "s3":
        return
    need(bool(st.s3_bucket), "storage.s3_bucket", 'give the bucket when storage.blobs = "s3"')
    need(not st.s3_endpoint or st.s3_endpoint.startswith(("https://", "http://")), "storage.s3_endpoint",
         "must start with https:// (or http://)")
    need(not st.s3_prefix.startswith("/"), "storage.s3_prefix", "must not start with /")
    need(bool(st.s3_access_key) == bool(st.s3_secret_key), "storage.s3_secret_key",
         "s3_access_key and s3_secret_key are set together")
    # a commit is one server-side copy, which S3 allows up to 5 GiB
    need(cfg.documents.max_size <= 5 * 1024 ** 3 - 64 * 1024 ** 2, "documents.max_size",
         'must be below 5 GiB when storage.blobs = "s3"')


def load_config(path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> Config:
    """Read ``path`` (TOML, optional), then environment overrides, then explicit ``overrides``
    (dotted keys such as ``"sftp.port"``, used by the CLI's ``--data-dir``)."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path}: {exc}") from None

    sections = _section_types()
    types = _key_types(sections)
    found: dict[str, dict[str, Any]] = {name: {} for name in types}

    for key, value in raw.items():
        if key in sections:
            if not isinstance(value, dict):
                raise ConfigError(f"configuration key {key}: expected a table")
            for sub, subval in value.items():
                _put(found, types, key, sub, subval, False)
        else:
            _put(found, types, "", key, value, False)

    # environment: INSTPAGES_DATA_DIR, INSTPAGES_SFTP_PORT, ...
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in ("INSTPAGES_CONFIG",):
            continue
        section, key = _env_key(types, name)
        _put(found, types, section, key, value, True, f" (from environment variable {name})")

    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1) if "." in dotted else ("", dotted)
        _put(found, types, section, key, value, False)

    cfg = Config(**found[""], **{name: cls(**found[name]) for name, cls in sections.items()})
    _validate(cfg)
    return cfg
