"""Building the service graph from a Config: keyring, blob store, repository, the second-factor services and
the directory, the authenticator, the mailbox, the administration's collaborators.

The one factory: the CLI and the server both call :func:`build`, and everything the pieces share (the token card,
device password and API token services, the directory) is built here once and passed in, never reached through
another object; tests construct the pieces directly. :meth:`Services.administration` is how wiring code gets an
:class:`~gateway.admin.service.Administration`. Trust material read from files (SSH user CAs, eID trust anchors
and CRLs) and cached directory entries are read again by :meth:`Services.reload_trust`, which the server runs on
SIGHUP and when the ``trust`` cache epoch moves (``instpages reload`` on any node).
The blob store is the local folder or an S3 bucket (``[storage] blobs``); its temporaries are owned by
``<node_id>/<worker>``, the worker given by the caller (the process model numbers its workers).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import asyncssh
import sqlalchemy as sa

from auth.authenticator import GatewayAuthenticator
from auth.clientcert import ClientCertificates
from auth.secondfactor import ApiTokens, DevicePasswords, TokenCards
from gateway.admin.base import Collaborators
from gateway.config import Config
from gateway.core.mailbox import Mailbox
from storage.blobs.local import LocalBlobStore
from storage.blobs.store import BlobStore, owner_tag
from storage.db import create_engine
from storage.errors import ConfigError, ServiceUnavailable
from storage.keyring import Keyring
from storage.repository import Repository

log = logging.getLogger("instpages.services")

#: seconds a readiness verdict is reused
READY_MEMO_SECONDS = 1.0


@dataclass
class Services:
    config: Config
    repo: Repository
    blobs: BlobStore
    keyring: Keyring
    mailbox: Mailbox
    user_cas: dict[str, asyncssh.SSHKey]
    #: what the administration uses besides the mailbox
    collaborators: Collaborators
    #: the eID trust anchors and CRLs the authenticator judges TLS client certificates by
    client_certs: ClientCertificates | None = None
    _readiness: tuple[float, bool] = field(default=(float("-inf"), False), init=False, repr=False)

    def administration(self, **kw):
        """An :class:`~gateway.admin.service.Administration` (``actor``, ``protocol``, ``source``, ``principal``
        as keywords) with this graph's mailbox and collaborators."""
        from gateway.admin.service import Administration

        return Administration(self.mailbox, collaborators=self.collaborators, **kw)

    def close(self) -> None:
        self.mailbox.epochs.stop()
        self.blobs.close()
        self.repo.close()  # the record writes still queued are committed first
        self.repo.engine.dispose()

    def ready(self, now: float | None = None) -> bool:
        """Whether requests can be served: the database answers ``SELECT 1`` and the blob store its ping. The
        verdict is kept for READY_MEMO_SECONDS, so that unauthenticated probes cannot hammer the database."""
        now = time.monotonic() if now is None else now
        at, verdict = self._readiness
        if now - at < READY_MEMO_SECONDS:
            return verdict
        try:
            with self.repo.engine.connect() as c:
                c.execute(sa.text("SELECT 1"))
            self.blobs.ping()
            verdict = True
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the reason goes to the log only
            log.warning("not ready: %s", type(exc).__name__)
            verdict = False
        self._readiness = (now, verdict)
        return verdict

    def reload_trust(self) -> None:
        """Read the trust material of the core and auth/ again: the SSH user CAs (in place: the SFTP front-end
        and the authenticator hold this dict), the eID trust anchors and CRLs, and forget cached directory entries.
        A CA file that cannot be read keeps the current CAs (logged). The server adds what its front-ends hold
        (pinned certificates in the TLS context, revoked SSH keys)."""
        try:
            cas = load_user_cas(self.config)
        except ConfigError as exc:
            log.error("reloading the SSH user CAs failed, keeping the current ones: %s", exc.message)
        else:
            self.user_cas.update(cas)  # added before the old ones go: never an empty moment
            for fp in set(self.user_cas) - set(cas):
                del self.user_cas[fp]
        if self.client_certs is not None:
            self.client_certs.reload()
        if self.collaborators.directory is not None:
            self.collaborators.directory.invalidate()
        log.info("trust material reloaded: %d SSH user CAs", len(self.user_cas))


def load_user_cas(config: Config) -> dict[str, asyncssh.SSHKey]:
    cas: dict[str, asyncssh.SSHKey] = {}
    for f in config.sftp.user_ca_keys:
        try:
            for key in asyncssh.read_public_key_list(f):
                cas[key.get_fingerprint("sha256")] = key
        except (OSError, asyncssh.KeyImportError) as exc:
            raise ConfigError(f"configuration key sftp.user_ca_keys: cannot read {f}: {exc}") from None
    return cas


def load_client_certificates(config: Config) -> ClientCertificates:
    """The eID trust anchors and CRLs TLS client certificates are judged by (auth.clientcert)."""
    w = config.webdav
    try:
        return ClientCertificates(w.client_ca_file, w.client_crl_files)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"configuration key webdav.client_ca_file / client_crl_files: {exc}") from None


#: database connections a process keeps for its HTTPS threads at most. There are more threads (webdav.threads,
#: 256): most of them, under load, wait for their download's record to commit with its group, holding no
#: connection; with 64 threads, 200 drive users queued for a thread (WebDAV benchmark, 2 workers: 398 against
#: 590 requests/s with 192 threads)
HTTPS_DB_CONNECTIONS = 64


def pool_size(config: Config) -> int:
    """Database connections one process keeps: every SFTP worker thread and every HTTPS thread, up to
    :data:`HTTPS_DB_CONNECTIONS`, may hold one at once (a pool smaller than the threads using the database made
    request threads queue for connections: WebDAV benchmark, 200 clients)."""
    https = min(config.webdav.threads, HTTPS_DB_CONNECTIONS) if config.webdav.enabled else 0
    return config.storage.workers + https + 4


def blob_connections(config: Config) -> int:
    """Connections to the S3 service one process keeps: one for each thread that may read or write a blob."""
    return config.storage.workers + (config.webdav.threads if config.webdav.enabled else 0) + 4


def check_connection_budget(services: Services, workers: int) -> None:
    """``--workers N`` on PostgreSQL: warn when N pools may need more connections than the server allows (its
    refusals would reach users as 500s under load)."""
    engine = services.repo.engine
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as c:
        allowed = int(c.execute(sa.text("SHOW max_connections")).scalar_one())
    need = workers * pool_size(services.config)
    if need > allowed:
        log.warning("%d workers may open %d database connections (storage.workers + webdav.threads up to %d + 4 "
                    "each); the server allows %d (max_connections): lower server.workers, storage.workers or "
                    "webdav.threads, or raise max_connections", workers, need, HTTPS_DB_CONNECTIONS, allowed)


def build_blob_store(config: Config, keyring: Keyring, worker: str = "0", *, connections: int = 64) -> BlobStore:
    """The configured blob store, its temporaries owned by this node's ``worker``.  An S3 store is checked at once:
    an unreachable endpoint, wrong keys or a missing bucket refuse the start with the key named."""
    s = config.storage
    owner = owner_tag(config.effective_node_id, worker)
    if s.blobs != "s3":
        return LocalBlobStore(config.blob_path, keyring, chunk_size=s.chunk_size, owner=owner)
    from storage.blobs.s3 import S3BlobStore, S3Settings

    settings = S3Settings(endpoint=s.s3_endpoint, bucket=s.s3_bucket, prefix=s.s3_prefix, region=s.s3_region,
                          access_key=s.s3_access_key, secret_key=s.s3_secret_key, max_connections=connections)
    store = S3BlobStore(settings, keyring, s.chunk_size, owner=owner)
    try:
        store.ping()
    except ServiceUnavailable as exc:
        store.close()
        raise ConfigError(f"configuration key storage.s3_{getattr(exc, 'setting', 'endpoint')}: "
                          f"{getattr(exc, 'detail', exc.message)}") from None
    return store


def build(config: Config, *, initialize: bool = True, worker: str = "0") -> Services:
    """The services of one process; ``worker`` names it among the node's workers (it owns its uploads)."""
    data = config.data_path
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)
    keyring = Keyring.load_or_create(config.key_path)
    blobs = build_blob_store(config, keyring, worker, connections=blob_connections(config))
    repo = Repository(create_engine(config.database_url, pool_size=pool_size(config)))
    if initialize:
        repo.initialize()
    cas = load_user_cas(config)
    a = config.auth
    if a.second_factor == "off":
        log.warning("auth.second_factor = off: people log in with a password alone. For test set-ups only.")
    tokens = TokenCards(repo, codes=a.token_codes, challenge_seconds=a.token_challenge_seconds)
    devices = DevicePasswords(repo, days=a.device_password_days)
    api_tokens = ApiTokens(repo, days=365)
    directory = build_directory(config)
    client_certs = load_client_certificates(config)
    authenticator = GatewayAuthenticator(
        repo, cas.keys(), tokens=tokens, devices=devices, api_tokens=api_tokens, directory=directory,
        second_factor_required=a.second_factor == "required", client_certs=client_certs)
    mailbox = Mailbox(config, repo, blobs, authenticator, worker=worker)
    from gateway.admin.notify import Notifier

    mailbox.notifier = Notifier(config, repo)
    collaborators = Collaborators(tokens=tokens, devices=devices, api_tokens=api_tokens, provisioner=authenticator,
                                  directory=directory)
    return Services(config, repo, blobs, keyring, mailbox, cas, collaborators, client_certs)


def build_directory(config: Config):
    """The organisation's LDAP directory, when configured."""
    c = config.ldap
    if not c.enabled:
        return None
    from auth.ldap.directory import Directory
    from auth.ldap.settings import LDAPSettings

    return Directory(LDAPSettings(
        uris=c.uris, start_tls=c.start_tls, ca_file=c.ca_file, bind_dn=c.bind_dn, bind_password=c.bind_password,
        user_dn_template=c.user_dn_template, user_base=c.user_base, user_filter=c.user_filter,
        disabled_filter=c.disabled_filter, attr_username=c.attr_username, attr_display_name=c.attr_display_name,
        attr_email=c.attr_email, attr_nrn=c.attr_nrn, group_base=c.group_base, group_filter=c.group_filter,
        group_pattern=c.group_pattern, timeout=c.timeout, cache_seconds=c.cache_seconds, pool_size=c.pool_size))
