"""A re-send of a document the centre already archived tells the sender so -- "already delivered on ... and archived
on ... (Brussels time); nothing stored" -- with real clients: asyncssh (SFTPv3: FX_FAILURE and the message),
OpenSSH ``sftp`` (FX_FAILURE; it never prints a server's status message), a staged upload renamed onto the name
(WinSCP's ``.filepart``), curl's PUT over WebDAV (409 and the message in the body). On the record each time,
nothing stored; a re-send of a document still in the mailbox stays a harmless no-op."""
from __future__ import annotations

import asyncio
import hashlib
import subprocess

import asyncssh
import pytest

from tests.conftest import CENTRE_A, SFTP_OPTS, ssh_env
from tests.davtools import dav_curl
from tests.pdfsamples import minimal_pdf
from tests.sftpclients import attempt, put

A = CENTRE_A
WRITER, WRITER_PW = "rs-writer", "rs-writer-password-1"


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def folder(world, request) -> str:
    name = "rs-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:10]
    p = world.sftp("podmi", f'mkdir "/{A}/{name}"\n')
    assert p.returncode == 0, p.stderr
    return name


async def _put(world, user: str, path: str, data: bytes):
    async with world.connect(user) as conn, conn.start_sftp_client() as s:
        return await attempt(put(s, path, data))


async def _staged(world, user: str, path: str, data: bytes):
    """WinSCP's way: the bytes to ``<name>.filepart``, then a rename onto the name."""
    async with world.connect(user) as conn, conn.start_sftp_client() as s:
        r = await attempt(put(s, path + ".filepart", data))
        assert r.ok, r
        return await attempt(s.rename(path + ".filepart", path))


def _deliver_and_archive(world, path: str, data: bytes) -> None:
    assert run(_put(world, "podmi", path, data)).ok
    again = run(_put(world, "podmi", path, data))  # still in the mailbox: harmless, silent
    assert again.ok, again
    p = world.sftp("arch-a", f'get "{path}" /dev/null\nrm "{path}"\n')  # the archive system picks it up
    assert p.returncode == 0, p.stdout + p.stderr


def _refusals(world, path: str) -> list:
    return [e for e in world.audit(action="upload", limit=200) if e.path == path and e.outcome == "refused"]


def _stored(world, folder: str) -> list[str]:
    with world.repo.read() as c:
        return [d.name for d in world.repo.documents_in(c, A, folder)]


def test_sftp_resend_of_an_archived_document_is_told_when(world, folder, tmp_path):
    path = f"/{A}/{folder}/maandstaat.pdf"
    data = minimal_pdf(f"{folder} statement")
    _deliver_and_archive(world, path, data)

    res = run(_put(world, "podmi", path, data))  # asyncssh: an SFTPv3 client
    assert not res.ok and res.code == asyncssh.FX_FAILURE, res
    assert "already delivered on" in res.reason and "archived on" in res.reason and "nothing stored" in res.reason

    staged = run(_staged(world, "podmi", path, data))
    assert not staged.ok and staged.code == asyncssh.FX_FAILURE and "already delivered on" in staged.reason, staged

    local = tmp_path / "maandstaat.pdf"
    local.write_bytes(data)
    p = subprocess.run(["sftp", *SFTP_OPTS, "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
                        "-i", str(world.keys["podmi"]), "-P", str(world.port), "-b", "-", "podmi@127.0.0.1"],
                       input=f'put "{local}" "{path}"\n', capture_output=True, text=True, env=ssh_env(), timeout=120,
                       start_new_session=True)
    # OpenSSH's sftp fails the put (and its batch) with FX_FAILURE; it prints the status code's own text and never
    # the server's message (OpenSSH 9.2: "close remote: Failure"): the reason reaches it only through the record
    assert p.returncode != 0, p.stdout + p.stderr
    assert "close remote: Failure" in p.stderr, p.stderr

    assert _stored(world, folder) == []  # nothing stored, nothing visible
    refused = _refusals(world, path)
    assert len(refused) == 3 and all("already delivered on" in e.detail for e in refused), refused
    assert {e.protocol for e in refused} == {"sftp"}


def test_webdav_put_of_an_archived_document_answers_409_with_the_dates(world, folder, tmp_path):
    path = f"/{A}/{folder}/afrekening.pdf"
    data = minimal_pdf(f"{folder} settlement")
    _deliver_and_archive(world, path, data)
    if not any(a.name == WRITER for a in world.admin.accounts()):
        world.admin.add_account(WRITER, "staff", password=WRITER_PW)
        world.admin.grant(WRITER, A, can_write=True)
    r = dav_curl(world, "PUT", path, tmp_path, user=WRITER, password=WRITER_PW, body=data,
                 headers={"Content-Type": "application/pdf"})
    assert r.status == 409, r
    assert "already delivered on" in r.text and "archived on" in r.text and "(Brussels time)" in r.text, r
    assert r.headers["content-type"].startswith("text/plain")
    assert _stored(world, folder) == []
    refused = _refusals(world, path)
    assert [e.protocol for e in refused] == ["webdav"] and refused[0].actor == WRITER
    # other content under the archived name is a new delivery (a correction), as before
    other = minimal_pdf(f"{folder} correction")
    r = dav_curl(world, "PUT", path, tmp_path, user=WRITER, password=WRITER_PW, body=other,
                 headers={"Content-Type": "application/pdf"})
    assert r.status == 201, r
    assert _stored(world, folder) == ["afrekening.pdf"]
