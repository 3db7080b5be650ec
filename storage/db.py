"""Engine creation and the two kinds of transaction the repository uses.

SQLite (the embedded default) runs in WAL mode; writers take the write lock up front (``BEGIN IMMEDIATE``) so
that two writers never deadlock on a lock upgrade, and wait for it up to ``busy_timeout`` seconds (30: several
processes writing at once wait milliseconds, see bench/audit_bench.py). A writer that still finds the database
locked gets :class:`~storage.errors.ServiceUnavailable` ("try again": a 503, an SFTP failure with that text),
never SQLite's "database is locked" as an internal error. Within one process, writers take their turn on a
lock first (:func:`write_turn`): SQLite's busy handler sleeps in growing steps (up to 100 ms) between tries, so
threads of one process that met at ``BEGIN IMMEDIATE`` slept while the lock was free (WebDAV benchmark, 200
clients: most request time was spent there); queued on a lock, the next writer starts the moment the previous
one commits. Processes sharing the database file (``serve --workers N``) take their turn the same way on an
advisory lock of a file beside it (``<database>-writer.lock``, ``flock``), tried every 0.2 ms: without it two
workers met in the busy handler and slept while the lock was free (2 workers used 1.55 of 2 cores in the
200-client benchmark). PostgreSQL (the scaled-out shape) needs nothing special.
Schema changes always go through Alembic: :func:`migrate` brings any database to the newest revision.
"""
from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from storage.errors import ServiceUnavailable

MIGRATIONS = Path(__file__).with_name("migrations")
_GATE = "instpages_write_gate"


class WriteGate:
    """One write transaction at a time among the threads of this process (SQLite), and, with ``lock_path``,
    among the processes sharing the database file. Re-entrant, so that a thread that opens a second write
    transaction inside its first fails in SQLite's busy handler as it always did, rather than waiting on itself."""

    #: seconds between two tries of another process's lock
    POLL = 0.0002

    def __init__(self, timeout: float, lock_path: Path | None = None):
        self.timeout = timeout
        self.lock_path = lock_path
        self._lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid = 0  # the process that opened _fd: a forked child opens its own

    @contextmanager
    def turn(self) -> Iterator[None]:
        deadline = time.monotonic() + self.timeout
        if not self._lock.acquire(timeout=self.timeout):
            raise self._busy()
        try:
            self._depth += 1
            if self._depth == 1 and self.lock_path is not None:
                self._take_file_lock(deadline)
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def _take_file_lock(self, deadline: float) -> None:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self._depth -= 1
                    raise self._busy() from None
                time.sleep(self.POLL)

    def _busy(self) -> ServiceUnavailable:
        return ServiceUnavailable(f"the database stayed busy for {self.timeout:g} s; try again")


def create_engine(url: str, *, pool_size: int = 20, busy_timeout: float = 30.0) -> Engine:
    if url.startswith("sqlite"):
        # "timeout" is sqlite3's busy handler: how long BEGIN IMMEDIATE waits for another process's writer
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout},
                                  pool_size=pool_size, max_overflow=pool_size)
        database = engine.url.database
        lock_path = Path(database + "-writer.lock") if database and database != ":memory:" else None
        setattr(engine, _GATE, WriteGate(busy_timeout, lock_path))  # one per engine: no state at module level

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every test
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection):
            if not conn.get_execution_options().get("immediate"):
                conn.exec_driver_sql("BEGIN")
                return
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except sa.exc.OperationalError as exc:
                if "locked" not in str(exc.orig) and "busy" not in str(exc.orig):
                    raise
                raise ServiceUnavailable(f"the database stayed busy for {busy_timeout:g} s; try again") from None

        return engine
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def write_connection(engine: Engine) -> Connection:
    """A connection whose transactions (``conn.begin()``) are read-write ones; close it (``with``) after use."""
    return engine.connect().execution_options(immediate=True)


def write_turn(engine: Engine):
    """Held around a write transaction (``with write_turn(engine), conn.begin():``) until it committed or rolled
    back: this process's writers queue here instead of sleeping in SQLite's busy handler. A no-op on PostgreSQL
    (and on an engine made elsewhere)."""
    gate = getattr(engine, _GATE, None)
    return gate.turn() if gate is not None else nullcontext()


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A read-write transaction (committed on success, rolled back on error)."""
    with write_connection(engine) as conn, write_turn(engine), conn.begin():
        yield conn


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        with conn.begin():
            yield conn


def alembic_config(engine: Engine):
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


#: the newest revision in ``migrations/versions`` (tests/storage/test_repository.py checks it against Alembic's)
HEAD_REVISION = "0009"
_Q_VERSION = sa.text("SELECT version_num FROM alembic_version")


def at_head(engine: Engine) -> bool:
    """Whether the database is already at :data:`HEAD_REVISION` (read without loading Alembic)."""
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(_Q_VERSION)] == [HEAD_REVISION]
    except sa.exc.DBAPIError:  # no alembic_version table yet: a new database
        return False


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest Alembic revision (idempotent). A database already there is left alone
    without importing Alembic, whose modules (with Mako's and Pygments') took 13 MB in every worker process,
    forked from the process that ran this."""
    if at_head(engine):
        return
    from alembic import command

    cfg = alembic_config(engine)
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # SQLite rebuilds a table to alter it; with foreign keys enforced, dropping the old copy fails.
            # The pragma only works outside a transaction, so it goes to the driver connection directly.
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")
