"""Interrupted transfers over real SFTP clients on loopback: nothing half-stored, nothing visible, all on the record.

- OpenSSH ``sftp`` killed (SIGKILL of its process group) in the middle of a ``put``;
- an asyncssh client that drops its connection (``conn.abort()``) with an upload half written;
- the server itself SIGKILLed mid-upload, then restarted on the same data folder (crash recovery);
- a 100 MB round trip (put by the uploader, get by the archiver) byte-identical, and a killed ``get``;
- the stored blob never holds the plaintext.

Each test asserts on real bytes (SHA-256), real rows (sqlite3 on ``<data_dir>/instpages.db``), real files
(``<data_dir>/blobs``) and the audit record. Every wait is bounded.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import CENTRE_A, SFTP_OPTS, cli, keygen, populate, ssh_env, start_gateway
from tests.pdfsamples import big_pdf, minimal_pdf

# OpenSSH's -l is in Kbit/s: 40 000 Kbit/s = 5 MB/s, so a 30 MB put lasts ~6 s and is killed well inside it.
SLOW_KBIT = 40_000
MB = 1024 * 1024


# -- helpers --------------------------------------------------------------------------------------------------
def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(4 * MB), b""):
            h.update(block)
    return h.hexdigest()


def db_rows(data_dir: Path, sql: str, *params) -> list[tuple]:
    db = data_dir / "instpages.db"
    assert db.is_file(), f"no database at {db}"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def doc_states(data_dir: Path, inst: str, name: str) -> list[str]:
    return [r[0] for r in db_rows(data_dir, "SELECT state FROM documents WHERE institution_id=? AND folder='' "
                                            "AND name=? ORDER BY id", inst, name)]


def audit_events(data_dir: Path, action: str, outcome: str, path: str) -> list[tuple]:
    return db_rows(data_dir, "SELECT id, actor, bytes, detail, document_id FROM audit_events "
                             "WHERE action=? AND outcome=? AND path=? ORDER BY id", action, outcome, path)


def tmp_blobs(data_dir: Path) -> list[Path]:
    tmp = data_dir / "blobs" / "tmp"
    assert tmp.is_dir(), f"no temporary blob folder {tmp}"
    return sorted(p for p in tmp.rglob("*") if p.is_file())  # tmp/<node>/<worker>/<id>.tmp


def tmp_bytes(data_dir: Path) -> int:
    total = 0
    for p in tmp_blobs(data_dir):
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


def stored_blobs(data_dir: Path) -> list[Path]:
    root = data_dir / "blobs"
    return sorted(p for p in root.rglob("*") if p.is_file() and (root / "tmp") not in p.parents)


def sftp_cmd(port: int, user: str, key: Path, *, limit_kbit: int | None = None) -> list[str]:
    cmd = ["sftp", *SFTP_OPTS, "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
           "-i", str(key), "-P", str(port)]
    if limit_kbit:
        cmd += ["-l", str(limit_kbit)]
    return cmd + ["-b", "-", f"{user}@127.0.0.1"]


def sftp_run(port: int, user: str, key: Path, commands: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(sftp_cmd(port, user, key), input=commands, capture_output=True, text=True,
                          env=ssh_env(), timeout=timeout, start_new_session=True)


def sftp_background(port: int, user: str, key: Path, commands: str, limit_kbit: int) -> subprocess.Popen:
    """OpenSSH sftp in its own process group (sftp + its ssh child), commands fed on stdin."""
    proc = subprocess.Popen(sftp_cmd(port, user, key, limit_kbit=limit_kbit), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ssh_env(), start_new_session=True)
    proc.stdin.write(commands.encode())
    proc.stdin.close()
    return proc


def kill_group(proc: subprocess.Popen) -> None:
    assert proc.poll() is None, "the client finished before it could be killed: the test did not interrupt anything"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def reap(proc: subprocess.Popen, timeout: float = 30) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        raise AssertionError("sftp client did not exit") from None


def archiver_listing(port: int, key: Path, user: str, inst: str) -> str:
    r = sftp_run(port, user, key, f"ls -1 /{inst}\n")
    assert r.returncode == 0, f"archiver could not list its mailbox: {r.stderr}"
    return r.stdout


def aborted_upload_bytes(gw, name: str) -> int | None:
    """Once the server has aborted podmi's upload of ``name`` in centre A: it left nothing, and the record
    names podmi; the bytes the record says were received."""
    data_dir = gw.data_dir
    wait_until(lambda: doc_states(data_dir, CENTRE_A, name) == ["aborted"] and not tmp_blobs(data_dir),
               15, "the server to abort the upload")
    assert_interrupted_upload_left_nothing(data_dir, CENTRE_A, name,
                                           archiver_listing(gw.port, gw.keys["arch-a"], "arch-a", CENTRE_A),
                                           gw.control_name)
    (_id, actor, nbytes, _detail, _doc) = audit_events(data_dir, "upload", "aborted", f"/{CENTRE_A}/{name}")[0]
    assert actor == "podmi"
    return nbytes


def assert_interrupted_upload_left_nothing(data_dir: Path, inst: str, name: str, archiver_ls: str,
                                           control_name: str) -> None:
    path = f"/{inst}/{name}"
    # nothing visible to the centre's archive system (the control document proves the listing is real)
    assert control_name in archiver_ls
    assert name not in archiver_ls
    # the database: one row, and it is neither committed nor staged nor pending
    states = doc_states(data_dir, inst, name)
    assert states == ["aborted"], states
    # the record says so
    aborted = audit_events(data_dir, "upload", "aborted", path)
    assert len(aborted) == 1, aborted
    assert not audit_events(data_dir, "upload", "committed", path)
    # no temporary blob left, and no blob file for the aborted row
    assert tmp_blobs(data_dir) == []
    blob_id = db_rows(data_dir, "SELECT blob_id FROM documents WHERE institution_id=? AND name=?", inst, name)[0][0]
    assert not any(p.name == blob_id for p in stored_blobs(data_dir))
    # no orphans: every blob file on disk belongs to a live document, and every live document has its blob
    live = {b for (b,) in db_rows(data_dir, "SELECT blob_id FROM documents WHERE state != 'aborted'")}
    assert {p.name for p in stored_blobs(data_dir)} == live


# -- an isolated gateway for this module (in-process), with centres and one account per role ---------------------
@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    d = tmp_path_factory.mktemp("crash")
    g = start_gateway(d / "var")
    populate(g, d)
    control = minimal_pdf("control document for listings")
    (d / "control.pdf").write_bytes(control)
    r = g.sftp("podmi", f"put {d / 'control.pdf'} /{CENTRE_A}/control.pdf\n")
    assert r.returncode == 0, r.stderr
    g.control_name = "control.pdf"
    g.work = d
    yield g
    g.stop()
    g.services.close()


@pytest.fixture(scope="module")
def pdf30(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("pdf30") / "statement-30mb.pdf"
    p.write_bytes(big_pdf(30))
    return p


def test_openssh_client_killed_mid_put_leaves_nothing(gw, pdf30):
    data_dir = gw.data_dir
    name = f"killed-client-{uuid.uuid4().hex[:8]}.pdf"
    assert tmp_blobs(data_dir) == []
    proc = sftp_background(gw.port, "podmi", gw.keys["podmi"], f"put {pdf30} /{CENTRE_A}/{name}\n", SLOW_KBIT)
    try:
        # in flight: a pending row and a temporary blob holding several megabytes
        wait_until(lambda: doc_states(data_dir, CENTRE_A, name) == ["pending"] and tmp_bytes(data_dir) >= 3 * MB,
                   20, "the upload to be in flight")
        kill_group(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode != 0
    # the server notices the dropped connection
    nbytes = aborted_upload_bytes(gw, name)
    assert nbytes is not None and 3 * MB <= nbytes < pdf30.stat().st_size


def test_asyncssh_connection_aborted_mid_write_leaves_nothing(gw):

    data_dir = gw.data_dir
    name = f"aborted-conn-{uuid.uuid4().hex[:8]}.pdf"
    data = big_pdf(6)
    half = len(data) // 2

    async def scenario():
        conn = await gw.connect("podmi")
        try:
            sftp = await conn.start_sftp_client()
            f = await sftp.open(f"/{CENTRE_A}/{name}", "wb")
            await f.write(data[:half], 0)
            # the bytes reached the server: a pending row and a temporary blob of at least a megabyte
            deadline = time.monotonic() + 10
            while not (doc_states(data_dir, CENTRE_A, name) == ["pending"] and tmp_bytes(data_dir) >= MB):
                assert time.monotonic() < deadline, "the half upload never reached the server's disk"
                await asyncio.sleep(0.05)
        finally:
            conn.abort()
        await asyncio.wait_for(conn.wait_closed(), 10)

    asyncio.run(asyncio.wait_for(scenario(), 60))
    nbytes = aborted_upload_bytes(gw, name)
    assert nbytes is not None and nbytes <= half


def test_server_killed_mid_upload_recovers_on_restart(tmp_path, spawn_gateway, pdf30):
    data_dir = tmp_path / "var"
    up_key, arch_key = keygen(tmp_path / "podmi"), keygen(tmp_path / "archive")
    for args in (("init",),
                 ("institution", "add", CENTRE_A, "--name", "OCMW Crashtest", "--status", "active"),
                 ("account", "add", "podmi", "--role", "uploader", "--ssh-key", f"{up_key}.pub"),
                 ("account", "add", "arch", "--role", "archiver", "--institution", CENTRE_A,
                  "--ssh-key", f"{arch_key}.pub")):
        r = cli(*args, data_dir=data_dir)
        assert r.returncode == 0, (args, r.stderr)

    gp = spawn_gateway(data_dir)
    before = minimal_pdf("committed before the crash")
    (tmp_path / "before.pdf").write_bytes(before)
    r = sftp_run(gp.port, "podmi", up_key, f"put {tmp_path / 'before.pdf'} /{CENTRE_A}/before.pdf\n")
    assert r.returncode == 0, r.stderr
    assert doc_states(data_dir, CENTRE_A, "before.pdf") == ["committed"]

    name = "in-flight.pdf"
    proc = sftp_background(gp.port, "podmi", up_key, f"put {pdf30} /{CENTRE_A}/{name}\n", SLOW_KBIT)
    try:
        wait_until(lambda: doc_states(data_dir, CENTRE_A, name) == ["pending"] and tmp_bytes(data_dir) >= 3 * MB,
                   30, "the upload to be in flight")
        assert proc.poll() is None, "the upload finished before the server could be killed"
        gp.kill(signal.SIGKILL)
        assert gp.proc.returncode == -signal.SIGKILL
        assert reap(proc) != 0, "the client must see its upload fail"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    # the crash left debris behind: recovery, not luck, must clean it
    assert doc_states(data_dir, CENTRE_A, name) == ["pending"]
    assert tmp_blobs(data_dir), "the killed server left no temporary blob: nothing for recovery to do"

    gp2 = spawn_gateway(data_dir)
    states = doc_states(data_dir, CENTRE_A, name)
    assert "pending" not in states and "committed" not in states and "staged" not in states, states
    assert tmp_blobs(data_dir) == []
    committed = db_rows(data_dir, "SELECT blob_id FROM documents WHERE state='committed'")
    live = db_rows(data_dir, "SELECT blob_id FROM documents WHERE state != 'aborted'")
    on_disk = stored_blobs(data_dir)
    assert len(on_disk) == len(committed) == len(live) == 1
    assert {p.name for p in on_disk} == {b for (b,) in committed}
    recovered = audit_events(data_dir, "upload", "aborted", "")
    doc_id = db_rows(data_dir, "SELECT id FROM documents WHERE name=?", name)[0][0]
    assert [e for e in recovered if e[4] == doc_id], "no 'upload aborted' event for the interrupted upload"

    listing = archiver_listing(gp2.port, arch_key, "arch", CENTRE_A)
    assert "before.pdf" in listing and name not in listing
    out = tmp_path / "before-downloaded.pdf"
    r = sftp_run(gp2.port, "arch", arch_key, f"get /{CENTRE_A}/before.pdf {out}\n")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == before


# -- 100 MB ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_doc(gw, tmp_path_factory):
    """A 100 MB PDF put by the uploader with OpenSSH sftp; (remote path, local file, sha256, size)."""
    local = tmp_path_factory.mktemp("big") / "annual-settlement-100mb.pdf"
    local.write_bytes(big_pdf(100))
    size = local.stat().st_size
    assert size >= 100 * MB
    remote = f"/{CENTRE_A}/annual-settlement-100mb.pdf"
    r = gw.sftp("podmi", f"put {local} {remote}\n", timeout=120)
    assert r.returncode == 0, r.stderr
    return remote, local, file_sha256(local), size


def test_100mb_round_trip_is_byte_identical(gw, big_doc, tmp_path):
    remote, local, digest, size = big_doc
    rows = db_rows(gw.data_dir, "SELECT size, sha256 FROM documents WHERE institution_id=? AND name=? "
                                "AND state='committed'", CENTRE_A, Path(remote).name)
    assert rows == [(size, digest)]
    out = tmp_path / "fetched.pdf"
    r = gw.sftp("arch-a", f"get {remote} {out}\n", timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size == size
    assert file_sha256(out) == digest
    complete = audit_events(gw.data_dir, "download", "complete", remote)
    assert [(actor, nbytes) for (_i, actor, nbytes, _d, _doc) in complete] == [("arch-a", size)]
    committed = audit_events(gw.data_dir, "upload", "committed", remote)
    assert len(committed) == 1 and committed[0][1] == "podmi" and committed[0][2] == size
    assert f"sha256={digest}" in committed[0][3]


def test_killed_download_is_recorded_as_aborted(gw, big_doc, tmp_path):
    remote, _local, _digest, size = big_doc
    out = tmp_path / "partial.pdf"
    before = len(audit_events(gw.data_dir, "download", "aborted", remote))
    proc = sftp_background(gw.port, "arch-a", gw.keys["arch-a"], f"get {remote} {out}\n", SLOW_KBIT)
    try:
        wait_until(lambda: out.exists() and out.stat().st_size >= 2 * MB, 20, "the download to be in flight")
        kill_group(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert out.stat().st_size < size
    aborted = wait_until(lambda: audit_events(gw.data_dir, "download", "aborted", remote)[before:], 15,
                         "a 'download aborted' event")
    assert len(aborted) == 1
    (_id, actor, nbytes, detail, _doc) = aborted[0]
    assert actor == "arch-a"
    assert nbytes is not None and 0 < nbytes < size
    # the interrupted fetch is not a receipt
    fetched = db_rows(gw.data_dir, "SELECT first_fetched_by FROM documents WHERE institution_id=? AND name=? "
                                   "AND state='committed'", CENTRE_A, Path(remote).name)
    completed = audit_events(gw.data_dir, "download", "complete", remote)
    assert fetched == ([("arch-a",)] if completed else [(None,)])


def test_stored_blob_does_not_contain_plaintext(gw, tmp_path):
    marker = f"PLAINTEXT-MARKER-{uuid.uuid4().hex}"
    small = minimal_pdf(marker)
    assert marker.encode() in small  # the title is stored verbatim in the PDF
    big = big_pdf(2)
    probe = big[len(big) // 2: len(big) // 2 + 64]  # 64 bytes of the random image data
    for fname, data in (("marker.pdf", small), ("image.pdf", big)):
        (tmp_path / fname).write_bytes(data)
    r = gw.sftp("podmi", f"put {tmp_path / 'marker.pdf'} /{CENTRE_A}/plain-marker.pdf\n"
                         f"put {tmp_path / 'image.pdf'} /{CENTRE_A}/plain-image.pdf\n")
    assert r.returncode == 0, r.stderr
    blobs = {}
    for name, data in (("plain-marker.pdf", small), ("plain-image.pdf", big)):
        (blob_id, size) = db_rows(gw.data_dir, "SELECT blob_id, size FROM documents WHERE institution_id=? AND "
                                               "name=? AND state='committed'", CENTRE_A, name)[0]
        assert size == len(data)
        matches = [p for p in stored_blobs(gw.data_dir) if p.name == blob_id]
        assert len(matches) == 1, f"blob {blob_id} not found on disk"
        blobs[name] = matches[0]
        assert matches[0].stat().st_size >= len(data)
    for p in (gw.data_dir / "blobs").rglob("*"):
        if p.is_file():
            content = p.read_bytes()
            assert marker.encode() not in content, f"plaintext marker found in {p}"
            assert probe not in content, f"plaintext image bytes found in {p}"
    # and the documents still read back as they were sent
    out = tmp_path / "back.pdf"
    r = gw.sftp("arch-a", f"get /{CENTRE_A}/plain-marker.pdf {out}\n")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == small
