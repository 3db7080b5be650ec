"""Shared helpers of the tests that drive the core service in-process (no protocol): services built on the
fixture's database (SQLite, or PostgreSQL when the fixture is parametrized so), and a session as a named
account."""
from __future__ import annotations

from pathlib import Path

from gateway.config import load_config
from gateway.core.session import MailboxSession
from gateway.services import Services, build


def core_services(request, data_dir: Path, env: dict[str, str]) -> Services:
    """The gateway's services for ``data_dir``; on PostgreSQL when ``request.param`` says so (a fresh database)."""
    if getattr(request, "param", "sqlite") == "postgresql":
        env = dict(env, INSTPAGES_STORAGE_DATABASE_URL=request.getfixturevalue("pg_url"))
    return build(load_config(None, env=env, overrides={"data_dir": str(data_dir)}))


def session(services: Services, name: str) -> MailboxSession:
    """A session of the account ``name``, as a front-end opens one after its login."""
    mb = services.mailbox
    with mb.repo.read() as c:
        acc = mb.repo.account_by_name(c, name)
    return MailboxSession(mb, mb.load_principal(acc.id, "test"), "test", "127.0.0.1")


def deliver(sess: MailboxSession, path: str, data: bytes):
    """``data`` uploaded at ``path`` through the core, as a front-end would; the entry it became."""
    up = sess.open_upload(path)
    up.append(data)
    return up.commit()
