"""``instpages`` as an operator scripts it: real subprocesses, real exit codes, real rows in the database.

The contract (gateway/cli.py): every command takes ``--data-dir`` and ``--config`` before or after the command;
success prints what was done and exits 0; an error prints exactly one line ``instpages: error: ...`` on stderr
and exits non-zero, never a traceback.
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from gateway.core.enterprise import with_check
from tests.conftest import PYTHON, ROOT, SFTP_OPTS, free_port, keygen, ssh_env
from tests.pdfsamples import minimal_pdf

A = with_check("02123456")        # 0212345668
B = with_check("02071234")        # 0207123407
B_PRINTED = f"BE {B[:4]}.{B[4:7]}.{B[7:]}"
STAFF_PW = "correct horse battery staple"


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTPAGES_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def run(*args: str, input: str | None = None, env: dict | None = None, cwd: Path | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m gateway ARGS`` exactly as given (the caller places --data-dir / --config)."""
    return subprocess.run([PYTHON, "-m", "gateway", *args], capture_output=True, text=True, input=input,
                          env=env or clean_env(), cwd=str(cwd or ROOT), timeout=timeout)


def after(data_dir: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    """--data-dir after the command."""
    return run(*args, "--data-dir", str(data_dir), **kw)


def before(data_dir: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    """--data-dir before the command."""
    return run("--data-dir", str(data_dir), *args, **kw)


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert "Traceback" not in r.stderr
    return r.stdout


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0, f"expected a failure, got exit 0: {r.stdout}"
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}:\n{r.stderr}"
    assert lines[0].startswith("instpages: error: "), lines[0]
    return lines[0]


def query(data_dir: Path, sql: str, *params) -> list[tuple]:
    con = sqlite3.connect(f"file:{data_dir / 'instpages.db'}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def table(stdout: str) -> list[list[str]]:
    """Rows of a printed table (header dropped), columns split on runs of 2+ spaces."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    return [re.split(r"\s{2,}", ln.strip()) for ln in lines[1:]]


class Site:
    """A data folder set up by the operator script of the fixture; ``results`` keeps each step's outcome."""

    def __init__(self, root: Path):
        self.root = root
        self.data_dir = root / "var"
        self.results: dict[str, subprocess.CompletedProcess] = {}
        self.keys: dict[str, Path] = {}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    s = Site(tmp_path_factory.mktemp("cli"))
    d = s.data_dir
    for name in ("up-1", "up-2", "arch"):
        s.keys[name] = keygen(s.root / name)
    s.results["init"] = before(d, "init")
    s.results["add-a"] = before(d, "institution", "add", A, "--name", "OCMW Aalst", "--status", "active")
    s.results["add-b"] = after(d, "institution", "add", B_PRINTED, "--name", "CPAS de Bstad")
    s.results["uploader"] = after(d, "account", "add", "podmi-batch", "--role", "uploader",
                                  "--ssh-key", f"{s.keys['up-1']}.pub", "--ssh-key", f"{s.keys['up-2']}.pub")
    s.results["archiver"] = before(d, "account", "add", "archive-a", "--role", "archiver", "--institution", A,
                                   "--ssh-key", f"{s.keys['arch']}.pub")
    s.results["staff"] = after(d, "account", "add", "jan.peeters", "--role", "staff", "--password-stdin",
                               input=STAFF_PW + "\n")
    return s


# -- init -----------------------------------------------------------------------------------------------------
def test_init_creates_database_keys_and_blob_folder_and_is_idempotent(site):
    d = site.data_dir
    assert ok(site.results["init"]).strip() == f"initialised {d.resolve()}"
    assert (d / "instpages.db").is_file()
    tables = {r[0] for r in query(d, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"institutions", "accounts", "documents", "audit_events", "grants"} <= tables
    key_files = sorted(p for p in (d / "keys").rglob("*") if p.is_file())
    assert key_files, "init generated no master key"
    assert (d / "blobs").is_dir()
    before_bytes = {p: p.read_bytes() for p in key_files}
    ok(after(d, "init"))  # a second init changes nothing: the master key must never be regenerated
    assert {p: p.read_bytes() for p in sorted(p for p in (d / "keys").rglob("*") if p.is_file())} == before_bytes


# -- centres --------------------------------------------------------------------------------------------------
def test_institution_add_set_status_and_list(site):
    d = site.data_dir
    assert ok(site.results["add-a"]).strip() == f"added centre {A} (active)"
    assert ok(site.results["add-b"]).strip() == f"added centre {B} (paper)"  # printed form normalised
    assert query(d, "SELECT id, status, name FROM institutions ORDER BY id") == [
        (B, "paper", "CPAS de Bstad"), (A, "active", "OCMW Aalst")]

    assert ok(before(d, "institution", "set-status", B, "active")).strip() == f"centre {B}: paper -> active"
    assert query(d, "SELECT status FROM institutions WHERE id=?", B) == [("active",)]
    assert query(d, "SELECT detail FROM audit_events WHERE action='institution-status' AND institution_id=?", B) \
        == [("paper -> active; override; reference='operator override (set-status)'",)]

    rows = table(ok(after(d, "institution", "list")))
    assert rows == [[B, "active", "CPAS de Bstad"], [A, "active", "OCMW Aalst"]]


# -- accounts -------------------------------------------------------------------------------------------------
def test_account_add_with_keys_institution_and_password(site):
    d = site.data_dir
    assert ok(site.results["uploader"]).strip() == "added account podmi-batch (uploader)"
    assert ok(site.results["archiver"]).strip() == "added account archive-a (archiver)"
    assert ok(site.results["staff"]).strip() == "added account jan.peeters (staff)"
    accounts = {r[0]: r[1:] for r in query(d, "SELECT name, role, institution_id, password_hash IS NOT NULL "
                                              "FROM accounts")}
    assert accounts == {"podmi-batch": ("uploader", None, 0), "archive-a": ("archiver", A, 0),
                        "jan.peeters": ("staff", None, 1)}

    def keys_of(name):
        return sorted(r[0].split()[1] for r in query(
            d, "SELECT k.public_key FROM ssh_keys k JOIN accounts a ON a.id=k.account_id WHERE a.name=?", name))

    assert keys_of("podmi-batch") == sorted(Path(f"{site.keys[k]}.pub").read_text().split()[1]
                                            for k in ("up-1", "up-2"))
    assert keys_of("archive-a") == [Path(f"{site.keys['arch']}.pub").read_text().split()[1]]

    # the password read from stdin is the one stored (hashed, never in clear)
    from argon2 import PasswordHasher

    (stored,) = query(d, "SELECT password_hash FROM accounts WHERE name='jan.peeters'")[0]
    assert STAFF_PW not in stored
    assert PasswordHasher().verify(stored, STAFF_PW)

    listed = table(ok(before(d, "account", "list")))
    assert ["archive-a", "archiver", A, "yes"] in listed
    assert ["podmi-batch", "uploader", "-", "yes"] in listed


# -- grants ---------------------------------------------------------------------------------------------------
def test_grant_add_with_remove_and_revoke(site):
    d = site.data_dir

    def grants():
        return query(d, "SELECT g.institution_id, g.can_remove FROM grants g JOIN accounts a ON a.id=g.account_id "
                        "WHERE a.name='jan.peeters' ORDER BY g.institution_id")

    assert ok(after(d, "grant", "add", "jan.peeters", A, "--remove")).strip() \
        == f"granted jan.peeters access to {A} (with remove)"
    assert ok(before(d, "grant", "add", "jan.peeters", B)).strip() == f"granted jan.peeters access to {B}"
    assert grants() == [(B, 0), (A, 1)]
    assert ok(after(d, "grant", "revoke", "jan.peeters", B)).strip() == f"revoked jan.peeters's access to {B}"
    assert grants() == [(A, 1)]
    # revoking what is not granted is an error, and changes nothing
    line = one_error_line(after(d, "grant", "revoke", "jan.peeters", B))
    assert "jan.peeters" in line and B in line
    assert grants() == [(A, 1)]
    events = query(d, "SELECT action, institution_id, detail FROM audit_events WHERE action IN ('grant', 'revoke') "
                      "ORDER BY id")
    assert [(a, i) for (a, i, _d) in events[-3:]] == [("grant", A), ("grant", B), ("revoke", B)]
    assert all("account=jan.peeters" in d.split() for (_a, _i, d) in events[-3:])
    assert "remove=yes" in events[-3][2].split() and "remove=no" in events[-2][2].split()


# -- errors: one line, non-zero, nothing changed --------------------------------------------------------------
ERROR_CASES = {
    "bad enterprise number": (["institution", "add", "0212345678", "--name", "X"], None,
                              ["0212345678", "check digits"]),
    "unknown account": (["grant", "add", "nobody", A], None, ["nobody"]),
    "unknown role": (["account", "add", "someone", "--role", "boss"], None, ["boss"]),
    "duplicate centre": (["institution", "add", A, "--name", "Again"], None, [A, "already exists"]),
    "grant to a machine account": (["grant", "add", "podmi-batch", A], None, ["podmi-batch", "uploader"]),
    "missing key file": (["account", "add", "keyless", "--role", "uploader", "--ssh-key", "/nonexistent/k.pub"], None,
                         ["/nonexistent/k.pub"]),
    "password for a machine account": (["account", "add", "pw-machine", "--role", "uploader", "--password-stdin"],
                                       "a-long-enough-password\n", ["machine"]),
    "unknown centre for set-status": (["institution", "set-status", with_check("02000001"), "active"], None,
                                      [with_check("02000001")]),
    "limit not a number": (["audit", "list", "--limit", "ten"], None, ["--limit", "ten"]),
    "key file that is not text": (["account", "add", "binkey", "--role", "uploader", "--ssh-key", "{binary_key}"],
                                  None, ["{binary_key}"]),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_print_one_line_and_exit_non_zero(site, case):
    d = site.data_dir
    args, stdin, words = ERROR_CASES[case]
    binary_key = site.root / "binary.pub"
    binary_key.write_bytes(bytes(range(256)) * 4)  # an operator's mistake: a DER file, not an OpenSSH key
    args = [a.replace("{binary_key}", str(binary_key)) for a in args]
    words = [w.replace("{binary_key}", str(binary_key)) for w in words]
    def snapshot():
        return [query(d, "SELECT count(*) FROM institutions"), query(d, "SELECT count(*) FROM accounts"),
                query(d, "SELECT count(*) FROM grants"), query(d, "SELECT count(*) FROM ssh_keys"),
                query(d, "SELECT name, status FROM institutions WHERE id=?", A)]

    before_error = snapshot()
    line = one_error_line(after(d, *args, input=stdin))
    for w in words:
        assert w in line, f"{w!r} not in {line!r}"
    assert snapshot() == before_error, "a refused command changed the database"


# -- documents ------------------------------------------------------------------------------------------------
def test_document_restore_brings_back_an_archived_document(site):
    """Deliver and archive through the core (as SFTP would), then restore with the CLI."""
    from gateway.config import load_config
    from gateway.core.session import MailboxSession
    from gateway.services import build

    d = site.data_dir
    pdf = minimal_pdf("Maandstaat restore test")
    services = build(load_config(None, env={}, overrides={"data_dir": str(d)}))
    try:
        mb = services.mailbox
        with mb.repo.read() as c:
            up = mb.repo.account_by_name(c, "podmi-batch")
            arch = mb.repo.account_by_name(c, "archive-a")
        upload = MailboxSession(mb, mb.load_principal(up.id, "test"), "test", "local").open_upload(
            f"/{A}/2026-11/maandstaat.pdf")
        upload.append(pdf)
        doc_id = upload.commit().document_id
        MailboxSession(mb, mb.load_principal(arch.id, "test"), "test", "local").archive(f"/{A}/2026-11/maandstaat.pdf")
    finally:
        services.close()
    assert query(d, "SELECT state FROM documents WHERE id=?", doc_id) == [("archived",)]

    out = ok(after(d, "document", "restore", A, "2026-11/maandstaat.pdf"))
    assert out.strip() == f"restored document {doc_id} at 2026-11/maandstaat.pdf"
    assert query(d, "SELECT state, archived_at FROM documents WHERE id=?", doc_id) == [("committed", None)]
    assert query(d, "SELECT count(*) FROM audit_events WHERE action='restore' AND document_id=?", doc_id) == [(1,)]
    # the restored document reads back byte for byte
    services = build(load_config(None, env={}, overrides={"data_dir": str(d)}))
    try:
        mb = services.mailbox
        with mb.repo.read() as c:
            arch = mb.repo.account_by_name(c, "archive-a")
        dl = MailboxSession(mb, mb.load_principal(arch.id, "test"), "test", "local").open_download(
            f"/{A}/2026-11/maandstaat.pdf")
        try:
            assert dl.read(0, len(pdf) + 10) == pdf
        finally:
            dl.close()
    finally:
        services.close()
    # nothing left to restore: an error, one line
    line = one_error_line(before(d, "document", "restore", A, "2026-11/maandstaat.pdf"))
    assert "maandstaat.pdf" in line


# -- the record -----------------------------------------------------------------------------------------------
def test_audit_list_by_institution_and_limit(site):
    d = site.data_dir
    ids_a = [str(r[0]) for r in query(d, "SELECT id FROM audit_events WHERE institution_id=? ORDER BY id DESC", A)]
    total = query(d, "SELECT count(*) FROM audit_events")[0][0]
    assert 2 <= len(ids_a) < total  # the fixture: centre A added, its archiver added; other events elsewhere
    limit = len(ids_a) - 1
    rows = table(ok(after(d, "audit", "list", "--institution", A, "--limit", str(limit))))
    assert [r[0] for r in rows] == ids_a[:limit]
    rows = table(ok(after(d, "audit", "list", "--institution", A)))
    assert [r[0] for r in rows] == ids_a  # default limit 50 > events of A: all of them, newest first
    rows = table(ok(before(d, "audit", "list", "--limit", "1")))
    (last_id, last_action) = query(d, "SELECT id, action FROM audit_events ORDER BY id DESC LIMIT 1")[0]
    assert len(rows) == 1 and rows[0][0] == str(last_id) and last_action in rows[0]
    line = one_error_line(after(d, "audit", "list", "--limit", "0"))
    assert "--limit" in line


def test_audit_verify_detects_an_edited_row(site, tmp_path):
    d = site.data_dir
    (n,) = query(d, "SELECT count(*) FROM audit_events")[0]
    assert n >= 5  # at least what the fixture did: two centres, three accounts
    assert ok(after(d, "audit", "verify")).strip() == f"audit record intact: {n} events"

    copy = tmp_path / "var"
    shutil.copytree(d, copy)
    victim = query(copy, "SELECT id FROM audit_events WHERE action='account-add' ORDER BY id LIMIT 1")[0][0]
    subprocess.run(["sqlite3", str(copy / "instpages.db"),
                    f"UPDATE audit_events SET detail='account=mallory role=uploader keys=1' WHERE id={victim};"],
                   check=True, timeout=30)
    line = one_error_line(before(copy, "audit", "verify"))
    assert re.search(rf"\bevent {victim}\b", line), line
    # deleting the newest event is tampering too
    copy2 = tmp_path / "var2"
    shutil.copytree(d, copy2)
    subprocess.run(["sqlite3", str(copy2 / "instpages.db"),
                    "DELETE FROM audit_events WHERE id=(SELECT max(id) FROM audit_events);"], check=True, timeout=30)
    line = one_error_line(after(copy2, "audit", "verify"))
    assert "broken" in line, line
    assert "event -1" not in line, f"the message names an event that does not exist: {line}"
    # the original is untouched and still verifies
    assert ok(before(d, "audit", "verify")).strip() == f"audit record intact: {n} events"


def test_audit_verify_reports_events_never_sealed_into_the_chain(site, tmp_path):
    """An event on the record that no sealer put into the chain: named when it is old, counted when it is new."""
    d = site.data_dir
    (n,) = query(d, "SELECT count(*) FROM audit_events")[0]
    copy = tmp_path / "var"
    shutil.copytree(d, copy)
    insert = ("INSERT INTO audit_events (ts, actor, protocol, source, action, outcome, path, detail) "
              "VALUES ({ts}, 'ghost', 'sftp', '192.0.2.9', 'upload', 'committed', '', '');")
    subprocess.run(["sqlite3", str(copy / "instpages.db"), insert.format(ts="datetime('now', '-1 hour')")],
                   check=True, timeout=30)
    (ghost,) = query(copy, "SELECT max(id) FROM audit_events")[0]
    line = one_error_line(after(copy, "audit", "verify"))
    assert "never sealed" in line and re.search(rf"\bevent {ghost}\b", line) and f"{n} sealed" in line, line
    assert any(r[0] == str(ghost) and "ghost" in r for r in table(ok(after(copy, "audit", "list", "--limit", "1"))))
    # one written just now is not a fault yet
    copy2 = tmp_path / "var2"
    shutil.copytree(d, copy2)
    subprocess.run(["sqlite3", str(copy2 / "instpages.db"), insert.format(ts="strftime('%Y-%m-%d %H:%M:%f', 'now')")],
                   check=True, timeout=30)
    assert ok(after(copy2, "audit", "verify")).strip() == f"audit record intact: {n} events, 1 newer not sealed yet"


# -- --config -------------------------------------------------------------------------------------------------
def test_config_file_gives_the_data_dir(site, tmp_path):
    cfg = tmp_path / "instpages.toml"
    cfg.write_text(f'data_dir = "{site.data_dir}"\n[logging]\nlevel = "WARNING"\n')
    rows = table(ok(run("--config", str(cfg), "institution", "list", cwd=tmp_path)))
    assert [r[0] for r in rows] == [B, A]
    rows = table(ok(run("account", "list", "--config", str(cfg), cwd=tmp_path)))
    assert {r[0] for r in rows} == {"archive-a", "jan.peeters", "podmi-batch"}
    # INSTPAGES_CONFIG names the file too; --data-dir beats the file
    other = tmp_path / "other"
    out = ok(run("init", "--data-dir", str(other), env=clean_env(INSTPAGES_CONFIG=str(cfg)), cwd=tmp_path))
    assert out.strip() == f"initialised {other.resolve()}"
    assert (other / "instpages.db").is_file()
    assert not (tmp_path / "var").exists()


# -- serve --demo ---------------------------------------------------------------------------------------------
class _Lines:
    def __init__(self, stream):
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._t.start()

    def _pump(self, stream):
        for line in iter(stream.readline, ""):
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)


def test_serve_demo_prints_login_instructions_and_they_work(tmp_path):
    import asyncssh

    d = tmp_path / "var"
    port, https_port = free_port(), free_port()
    proc = subprocess.Popen([PYTHON, "-m", "gateway", "serve", "--demo", "--data-dir", str(d)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=clean_env(INSTPAGES_SFTP_PORT=str(port), INSTPAGES_WEBDAV_PORT=str(https_port)),
                            cwd=str(ROOT), start_new_session=True)
    try:
        out = _Lines(proc.stdout)
        deadline = time.monotonic() + 60
        while "openapi.json" not in out.text:
            assert proc.poll() is None, f"serve --demo exited with {proc.returncode}:\n{out.text}"
            assert time.monotonic() < deadline, f"no login instructions after 60 s:\n{out.text}"
            time.sleep(0.05)
        text = out.text
        assert f"SFTP on 127.0.0.1:{port}" in text
        first = A  # the first demo centre
        demo = d / "demo"
        up_key = demo / "demo-podmi.key"
        assert f"sftp -P {port} -i {up_key} demo-podmi@127.0.0.1" in text
        password = (demo / "demo-staff.password").read_text().strip()
        assert re.search(rf"demo-staff@127\.0\.0\.1\s+password: {re.escape(password)}$", text, re.M), text

        # the uploader key from <data_dir>/demo/ delivers a PDF with OpenSSH sftp
        pdf = minimal_pdf("Demo upload over OpenSSH")
        (tmp_path / "report.pdf").write_bytes(pdf)
        r = subprocess.run(["sftp", *SFTP_OPTS, "-o", "BatchMode=yes", "-i", str(up_key), "-P", str(port), "-b", "-",
                            "demo-podmi@127.0.0.1"],
                           input=f"put {tmp_path / 'report.pdf'} /{first}/2026-11/report.pdf\n",
                           capture_output=True, text=True, env=ssh_env(), timeout=60, start_new_session=True)
        assert r.returncode == 0, r.stderr

        # the staff password plus the code of the demo token card logs in (asyncssh, keyboard-interactive) and
        # sees the upload and the demo document
        card = dict(line.split(": ") for line in (demo / "demo-staff.token-card").read_text().split("\n") if line)
        assert str(demo / "demo-staff.token-card") in text

        class Kbd(asyncssh.SSHClient):
            tried = False

            def kbdint_auth_requested(self):
                if Kbd.tried:
                    return None
                Kbd.tried = True
                return ""

            def kbdint_challenge_received(self, name, instructions, lang, prompts):
                return [password if p.startswith("Password") else card[p.split("Code number ")[1].split()[0]]
                        for p, _ in prompts]

        async def staff_session():
            async with asyncssh.connect("127.0.0.1", port, username="demo-staff", known_hosts=None,
                                        agent_path=None, client_keys=None, preferred_auth="keyboard-interactive",
                                        client_factory=Kbd) as conn:
                async with conn.start_sftp_client() as sftp:
                    names = sorted(await sftp.listdir(f"/{first}/2026-11"))
                    async with sftp.open(f"/{first}/2026-11/report.pdf", "rb") as f:
                        data = await f.read()
                    return names, data

        names, data = asyncio.run(asyncio.wait_for(staff_session(), 30))
        assert "report.pdf" in names and "maandstaat-demo.pdf" in names
        assert data == pdf

        # the demo security cell logs in to the REST API (password + token code) and sees the three centres
        assert f"https://127.0.0.1:{https_port}/console/" in text
        import http.client
        import json
        import ssl

        def api(method, path, body=None, token=None):
            conn = http.client.HTTPSConnection("127.0.0.1", https_port, timeout=30,
                                               context=ssl._create_unverified_context())
            headers = {"Content-Type": "application/json"} if body is not None else {}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            conn.request(method, "/api" + path, json.dumps(body) if body is not None else None, headers)
            r = conn.getresponse()
            answer = (r.status, json.loads(r.read() or b"null"))
            conn.close()
            return answer

        cell_card = dict(ln.split(": ") for ln in (demo / "demo-cell.token-card").read_text().split("\n") if ln)
        _, challenge = api("GET", "/session/challenge?username=demo-cell")
        status, session = api("POST", "/session", {
            "username": "demo-cell", "password": (demo / "demo-cell.password").read_text().strip(),
            "number": challenge["number"], "code": cell_card[str(challenge["number"])]})
        assert status == 201, session
        status, centres = api("GET", "/institutions", token=session["token"])
        assert status == 200 and {c["status"] for c in centres} == {"active", "paper"} and len(centres) == 3

        # SIGTERM: a clean stop, exit 0, within a few seconds
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            raise AssertionError("serve did not stop within 10 s of SIGTERM") from None
        assert rc == 0, out.text
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_serve_on_a_busy_port_fails_with_one_clear_error(tmp_path):
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        r = run("serve", "--data-dir", str(tmp_path / "var"),
                env=clean_env(INSTPAGES_SFTP_PORT=str(port), INSTPAGES_WEBDAV_PORT="0"), timeout=60)
    finally:
        busy.close()
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("instpages: error: ")]
    assert len(errors) == 1 and str(port) in errors[0], r.stderr[-2000:]


def test_attacker_chosen_names_cannot_drive_the_operators_terminal(make_gateway):
    """Names tried in failed WebDAV logins (curl) land on the record; ``audit list`` shows them with control and
    format characters escaped, so they can neither rewrite the operator's screen, reorder it (bidi overrides) nor
    forge a line of the table. (C0 controls in a Basic user name are refused as malformed before any lookup.)"""
    gw = make_gateway()
    evil = "x\u202eevil\u2028ID  forged-row\u200b\x85"
    for name in (evil, "y\x1b[2J\x1b]0;pwned\x07"):
        r = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-u", f"{name}:nope",
                            f"{gw.dav_url}/"], capture_output=True, text=True, timeout=60)
        assert r.stdout == "401", r
    assert any(e.actor == evil for e in gw.audit("login")), "the failed login is on the record, raw"
    r = after(gw.data_dir, "audit", "list", "--limit", "200")
    shown = ok(r)
    for ch in "\x1b\x07\u202e\u2028\u200b\x85":
        assert ch not in shown + r.stderr, repr(ch)
    line = next(ln for ln in shown.splitlines() if "evil" in ln)
    assert "x\\u202eevil\\u2028ID  forged-row\\u200b\\x85" in line
    assert not any(ln.startswith("ID  forged-row") for ln in shown.splitlines())
