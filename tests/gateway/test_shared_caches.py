"""Two gateway nodes, one database (SQLite file, then PostgreSQL): a change made through one node's CLI reaches the
other node's caches within the stated bound, ``storage.cache_sync_seconds`` (issue 11, part 2).

Each node is a real ``python -m gateway serve`` with its own data folder and node id; both share the database,
the master key and the document folder. Pinned certificates are refreshed on their own only once an hour here
(``webdav.trust_refresh_seconds``), and revoked SSH keys every 30 s, so what is measured is the cache epochs:

- a grant revoked on A: the staff member's next listing on B (remembered WebDAV login, open SFTP session) lacks it;
- an account disabled on A: B's remembered WebDAV Basic login stops;
- a logout on A: the API session ends on B;
- a centre suspended on A: uploads through B are refused;
- a certificate pinned on A logs in on both; one that announced nothing (a row restored into the database) and
  a key added to the revoked-keys file take effect on both after ``instpages reload``.
"""
from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
from pathlib import Path

import paramiko
import pytest

from gateway.config import Config, load_config
from gateway.core.enterprise import with_check
from gateway.services import build
from storage.repo.base import CC
from storage.repository import utcnow
from tests.conftest import cli, fresh_database, keygen, spawn_process, wait_port
from tests.machinecert import make_cert
from tests.pdfsamples import minimal_pdf

BOUND = Config().storage.cache_sync_seconds  # the README's bound: a change reaches every node within this
SLACK = 2.0  # the poll's own query, a loaded machine
C1 = with_check("02111111")  # active, where staff are granted
C2 = with_check("02122222")  # active, suspended by a test
PASSWORD = "shared-cache-password-1"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request, tmp_path_factory):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('shared-db')}/instpages.db"
    else:
        with fresh_database(request.getfixturevalue("pg_server_url")) as url:
            yield url


class Pair:
    """Nodes A and B; ``admin``: this test process's own administration on the shared database (for set-up)."""

    def __init__(self, root: Path, database: str):
        self.root = root
        self.revoked = root / "revoked_keys"
        self.revoked.write_text("")
        self.env = {"INSTPAGES_STORAGE_DATABASE_URL": database, "INSTPAGES_STORAGE_KEY_DIR": str(root / "keys"),
                    "INSTPAGES_STORAGE_BLOB_DIR": str(root / "blobs"), "INSTPAGES_SFTP_REVOKED_KEYS": str(self.revoked),
                    "INSTPAGES_WEBDAV_TRUST_REFRESH_SECONDS": "3600", "INSTPAGES_AUTH_BAN_AFTER": "100000"}
        self.services = build(load_config(None, env=dict(self.env, INSTPAGES_AUTH_SECOND_FACTOR="off"),
                                          overrides={"data_dir": str(root / "admin")}))
        self.admin = self.services.administration(actor="test")
        self.admin.add_institution(C1, "OCMW Een", "active")
        self.admin.add_institution(C2, "OCMW Twee", "active")
        self.nodes = []
        for name in ("a", "b"):
            node = spawn_process(root / name / "var", dict(self.env, INSTPAGES_NODE_ID=f"node-{name}"),
                                 root / f"serve-{name}.log", self.nodes)
            wait_port(int(node.env["INSTPAGES_WEBDAV_PORT"]), node.proc)
        self.a, self.b = self.nodes

    def cli(self, *args: str) -> None:
        """``instpages ARGS`` run against node A's data folder, as its operator would; the change has committed
        when it returns."""
        p = cli(*args, data_dir=self.a.data_dir, env=self.env)
        assert p.returncode == 0, p.stderr

    def staff(self, name: str, centre: str = C1, **grant) -> Path:
        """A staff member with a password and an SSH key, granted ``centre``; returns the key."""
        key = keygen(self.root / name)
        self.admin.add_account(name, "staff", password=PASSWORD, ssh_keys=[key.with_suffix(".pub").read_text()],
                               allow_keys=True)
        self.admin.grant(name, centre, **grant)
        return key

    def close(self) -> None:
        for node in self.nodes:
            node.kill()
        self.services.close()


@pytest.fixture(scope="module")
def pair(database, tmp_path_factory):
    p = Pair(tmp_path_factory.mktemp("pair"), database)
    yield p
    p.close()


# -- clients ---------------------------------------------------------------------------------------------------
def https(node, method: str, path: str, *, user: str | None = None, body: bytes | None = None,
          headers: dict | None = None, cert: tuple[Path, Path] | None = None) -> tuple[int, bytes]:
    """One request on a fresh TLS connection; (status, body), status 0 when the handshake was refused."""
    context = ssl._create_unverified_context()
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    conn = http.client.HTTPSConnection("127.0.0.1", int(node.env["INSTPAGES_WEBDAV_PORT"]), context=context,
                                       timeout=30)
    hdrs = dict(headers or {})
    if user is not None:
        hdrs["Authorization"] = "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return r.status, r.read()
    except (ssl.SSLError, ConnectionError):
        return 0, b""
    finally:
        conn.close()


def centres_seen(node, **who) -> set[str] | None:
    """The centres a WebDAV listing of /dav/ shows (None: refused)."""
    status, body = https(node, "PROPFIND", "/dav/", headers={"Depth": "1"}, **who)
    if status != 207:
        return None
    return {c for c in (C1, C2) if f"/dav/{c}/".encode() in body}


def sftp_session(node, user: str, key: Path) -> paramiko.SFTPClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", node.port, username=user, key_filename=str(key), look_for_keys=False,
                   allow_agent=False, timeout=15, auth_timeout=15)
    return client.open_sftp()


def sftp_login_works(node, user: str, key: Path) -> bool:
    try:
        sftp_session(node, user, key).get_channel().get_transport().close()
        return True
    except paramiko.AuthenticationException:
        return False


def within_bound(what: str, done) -> float:
    """Seconds until ``done()`` is true, measured from now (the change has committed); fails past the bound."""
    start = time.monotonic()
    while not done():
        waited = time.monotonic() - start
        assert waited <= BOUND + SLACK, f"{what}: not after {waited:.1f} s (bound {BOUND} s + {SLACK} s)"
        time.sleep(0.1)
    return time.monotonic() - start


# -- the changes -----------------------------------------------------------------------------------------------
def test_a_grant_revoked_on_a_refuses_the_next_listing_on_b(pair):
    key = pair.staff("rev-staff")
    for node in pair.nodes:  # the WebDAV logins are remembered (webdav.auth_cache_seconds) from here on
        assert centres_seen(node, user="rev-staff") == {C1}
    open_session = sftp_session(pair.b, "rev-staff", key)
    assert open_session.listdir("/") == [C1]

    pair.cli("grant", "revoke", "rev-staff", C1)
    within_bound("the remembered WebDAV login on B", lambda: centres_seen(pair.b, user="rev-staff") == set())
    within_bound("the open SFTP session on B", lambda: open_session.listdir("/") == [])
    assert centres_seen(pair.a, user="rev-staff") == set()
    status, _ = https(pair.b, "PROPFIND", f"/dav/{C1}/", headers={"Depth": "1"}, user="rev-staff")
    assert status in (403, 404), status
    open_session.get_channel().get_transport().close()


def test_an_account_disabled_on_a_stops_its_remembered_basic_login_on_b(pair):
    pair.staff("dis-staff")
    assert centres_seen(pair.b, user="dis-staff") == {C1}

    pair.cli("account", "disable", "dis-staff")
    within_bound("the remembered Basic login on B", lambda: https(pair.b, "PROPFIND", "/dav/", user="dis-staff",
                                                                  headers={"Depth": "0"})[0] == 401)
    assert https(pair.a, "PROPFIND", "/dav/", user="dis-staff", headers={"Depth": "0"})[0] == 401


def test_a_logout_on_a_ends_the_session_on_b(pair):
    pair.staff("out-staff")
    card = dict(pair.admin.issue_token_card("out-staff"))
    status, body = https(pair.a, "GET", "/api/session/challenge?username=out-staff")
    number = json.loads(body)["number"]
    status, body = https(pair.a, "POST", "/api/session", headers={"Content-Type": "application/json"},
                         body=json.dumps({"username": "out-staff", "password": PASSWORD, "number": number,
                                          "code": card[number]}).encode())
    assert status == 201, body
    bearer = {"Authorization": f"Bearer {json.loads(body)['token']}"}
    assert https(pair.b, "GET", "/api/me", headers=bearer)[0] == 200

    assert https(pair.a, "DELETE", "/api/session", headers=bearer)[0] == 204
    within_bound("the API session on B", lambda: https(pair.b, "GET", "/api/me", headers=bearer)[0] == 401)
    assert https(pair.a, "GET", "/api/me", headers=bearer)[0] == 401


def test_a_centre_suspended_on_a_refuses_uploads_on_b(pair):
    pair.staff("put-staff", C2, can_write=True)
    pdf = minimal_pdf("shared caches")
    names = (f"/dav/{C2}/letter-{i}.pdf" for i in range(1000))
    assert https(pair.b, "PUT", next(names), user="put-staff", body=pdf,
                 headers={"Content-Type": "application/pdf"})[0] in (201, 204)

    pair.cli("institution", "suspend", C2, "--reference", "shared caches test")
    within_bound("an upload through B", lambda: https(pair.b, "PUT", next(names), user="put-staff", body=pdf,
                                                      headers={"Content-Type": "application/pdf"})[0] == 403)
    with pair.services.repo.read() as c:
        assert pair.services.repo.institution(c, C2).status == "suspended"


def test_a_certificate_pinned_on_a_logs_in_on_both_nodes(pair):
    cert = make_cert(pair.root, "pinned-live")
    assert centres_seen(pair.b, cert=cert) is None

    pair.cli("account", "add", "pinned-live", "--role", "archiver", "--institution", C1,
             "--client-cert", str(cert[0]))
    for node, name in ((pair.b, "B"), (pair.a, "A")):
        within_bound(f"the pinned certificate on {name}", lambda node=node: centres_seen(node, cert=cert) == {C1})


def test_instpages_reload_rereads_trust_material_on_every_node(pair):
    # a pinned certificate that announced nothing (a row restored into the database) ...
    cert = make_cert(pair.root, "restored-pin")
    pair.admin.add_account("restored-pin", "archiver", C1)
    repo = pair.services.repo
    with repo.write() as c:
        acc = repo.account_by_name(c, "restored-pin")
        c.execute(CC.insert().values(account_id=acc.id, fingerprint=_fingerprint(cert[0]), subject="restored",
                                     pem=cert[0].read_text(), created_at=utcnow()))
    # ... and an SSH key revoked in the revoked-keys file
    key = pair.staff("revoked-staff")
    assert all(sftp_login_works(node, "revoked-staff", key) for node in pair.nodes)
    pair.revoked.write_text(key.with_suffix(".pub").read_text())
    time.sleep(BOUND + 0.5)
    assert centres_seen(pair.b, cert=cert) is None, "the restored pin was trusted without a reload"

    pair.cli("reload")
    for node, name in ((pair.b, "B"), (pair.a, "A")):
        within_bound(f"the restored pin on {name}", lambda node=node: centres_seen(node, cert=cert) == {C1})
        within_bound(f"the revoked key on {name}",
                     lambda node=node: not sftp_login_works(node, "revoked-staff", key))
    with repo.read() as c:
        events = repo.audit_events(c, action="trust-reload", limit=5)
    assert [e.outcome for e in events] == ["ok"] and events[0].protocol == "cli"


def _fingerprint(pem: Path) -> str:
    from auth import clientcert

    return clientcert.fingerprint(clientcert.load(pem.read_bytes()))
