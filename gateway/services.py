"""Building the service graph from a Config: keyring, blob store, repository, authenticator, mailbox.

The CLI and the server both call :func:`build`; tests construct the pieces directly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import asyncssh

from auth.authenticator import LocalAuthenticator
from gateway.config import Config
from gateway.errors import ConfigError
from gateway.mailbox import Mailbox
from storage.blobstore import LocalBlobStore
from storage.db import create_engine
from storage.keyring import Keyring
from storage.repository import Repository


@dataclass
class Services:
    config: Config
    repo: Repository
    blobs: LocalBlobStore
    keyring: Keyring
    mailbox: Mailbox
    user_cas: dict[str, asyncssh.SSHKey]

    def close(self) -> None:
        self.repo.engine.dispose()


def load_user_cas(config: Config) -> dict[str, asyncssh.SSHKey]:
    cas: dict[str, asyncssh.SSHKey] = {}
    for f in config.sftp.user_ca_keys:
        try:
            for key in asyncssh.read_public_key_list(f):
                cas[key.get_fingerprint("sha256")] = key
        except (OSError, asyncssh.KeyImportError) as exc:
            raise ConfigError(f"configuration key sftp.user_ca_keys: cannot read {f}: {exc}") from None
    return cas


def build(config: Config, *, initialize: bool = True) -> Services:
    data = config.data_path
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)
    keyring = Keyring.load_or_create(config.key_path)
    blobs = LocalBlobStore(config.blob_path, keyring, chunk_size=config.storage.chunk_size)
    repo = Repository(create_engine(config.database_url, pool_size=config.storage.workers + 4))
    if initialize:
        repo.initialize()
    cas = load_user_cas(config)
    mailbox = Mailbox(config, repo, blobs, LocalAuthenticator(repo, frozenset(cas)))
    return Services(config, repo, blobs, keyring, mailbox, cas)
