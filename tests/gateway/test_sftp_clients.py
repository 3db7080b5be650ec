"""The SFTP clients POD MI and the centres script with, each doing what its role allows, against the shared gateway:

- the uploader puts a document: the bytes arrive unchanged (SHA-256, read back by the centre's archiver), the
  uploader's own listing shows the name, the centre sees the final name and nothing else (no temporary
  ``.partial``/``.filepart`` left behind), and reading or removing it is refused with an error;
- the archiver lists (the name is shown), gets (same SHA-256), removes (gone from its listing and from the
  mailbox), and putting is refused with an error and stores nothing.

Clients: OpenSSH sftp, paramiko, asyncssh (high-level put/get), curl sftp:// (libssh2), lftp, Debian's rclone 1.60
and the current rclone (see tests/sftpclients.py).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging

import asyncssh
import pytest

from gateway.sftp.handler import GatewaySFTPServer
from tests.conftest import CENTRE_A
from tests.pdfsamples import minimal_pdf
from tests.sftpclients import CLIENTS, sha256

A = CENTRE_A


def folder_for(request) -> str:
    return "cl-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]


def document(label: str) -> bytes:
    """A valid PDF of ~130 KB, unique to ``label``: several SFTP write packets, as real deliveries have."""
    return minimal_pdf(f"delivered by {label}", pages=400)


async def _session(world, user: str):
    return await asyncssh.connect("127.0.0.1", world.port, username=user, client_keys=[str(world.keys[user])],
                                  known_hosts=None, agent_path=None)


def reference(world, user: str, op: str, *args):
    """One operation with asyncssh's low-level file calls (open/read/write), which every gateway version
    answered: the independent view the client's results are checked against."""
    async def go():
        async with await _session(world, user) as conn, conn.start_sftp_client() as s:
            if op == "read":
                async with s.open(args[0], "rb") as f:
                    return await f.read()
            if op == "write":
                async with s.open(args[0], "wb") as f:
                    await f.write(args[1])
                return None
            if op == "mkdir":
                return await s.mkdir(args[0])
            if op == "names":
                return set(await s.listdir(args[0])) - {".", ".."}
            if op == "exists":
                return await s.exists(args[0])
            raise AssertionError(op)

    return asyncio.run(go())


@pytest.mark.parametrize("name", list(CLIENTS))
def test_uploader_puts_and_may_not_read_or_remove(world, request, tmp_path, name):
    folder = f"/{A}/{folder_for(request)}"
    reference(world, "podmi", "mkdir", folder)
    data = document(name)
    local = tmp_path / "report.pdf"
    local.write_bytes(data)
    client = CLIENTS[name](world.port, "podmi", world.keys["podmi"], tmp_path / "client")

    put = client.put(local, f"{folder}/report.pdf")
    assert put.ok, f"{name} put: {put}"
    listing = client.ls(folder)
    assert listing.ok and listing.value == {"report.pdf"}, f"{name} ls as uploader: {listing} {listing.value}"
    # the centre sees exactly the delivered document, byte for byte
    assert reference(world, "arch-a", "names", folder) == {"report.pdf"}
    assert sha256(reference(world, "arch-a", "read", f"{folder}/report.pdf")) == sha256(data)

    got = client.get(f"{folder}/report.pdf", tmp_path / "back.pdf")
    assert not got.ok, f"{name}: the uploader could read a document back"
    assert not (tmp_path / "back.pdf").exists() or (tmp_path / "back.pdf").read_bytes() != data
    removed = client.rm(f"{folder}/report.pdf")
    assert not removed.ok, f"{name}: the uploader could remove a delivered document"
    assert reference(world, "arch-a", "names", folder) == {"report.pdf"}


@pytest.mark.parametrize("name", list(CLIENTS))
def test_archiver_lists_gets_removes_and_may_not_put(world, request, tmp_path, name):
    folder = f"/{A}/{folder_for(request)}"
    reference(world, "podmi", "mkdir", folder)
    data = document(f"{name} for the archiver")
    reference(world, "podmi", "write", f"{folder}/incoming.pdf", data)
    client = CLIENTS[name](world.port, "arch-a", world.keys["arch-a"], tmp_path / "client")

    listing = client.ls(folder)
    assert listing.ok and listing.value == {"incoming.pdf"}, f"{name} ls: {listing} {listing.value}"
    got = client.get(f"{folder}/incoming.pdf", tmp_path / "incoming.pdf")
    assert got.ok, f"{name} get: {got}"
    assert sha256((tmp_path / "incoming.pdf").read_bytes()) == sha256(data)

    removed = client.rm(f"{folder}/incoming.pdf")
    assert removed.ok, f"{name} rm: {removed}"
    after = client.ls(folder)
    assert after.ok and after.value == set(), f"{name} ls after rm: {after} {after.value}"
    assert not reference(world, "arch-a", "exists", f"{folder}/incoming.pdf")

    local = tmp_path / "mine.pdf"
    local.write_bytes(document(f"{name} archiver put"))
    put = client.put(local, f"{folder}/mine.pdf")
    assert not put.ok, f"{name}: the archiver could put a document"
    assert reference(world, "arch-a", "names", folder) == set()


def test_unexpected_errors_are_logged_and_answered_generically(world, request, monkeypatch, caplog):
    """A handler that fails in a way nobody planned for: the client gets a plain failure without the
    exception's text, and the gateway's log has the traceback."""
    async def broken(self, path):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(GatewaySFTPServer, "stat", broken)
    caplog.set_level(logging.ERROR, logger="instpages.sftp")

    async def go():
        async with await _session(world, "arch-a") as conn, conn.start_sftp_client() as s:
            try:
                await s.stat(f"/{A}")
            except asyncssh.SFTPError as exc:
                return exc

    exc = asyncio.run(go())
    assert isinstance(exc, asyncssh.SFTPFailure), exc
    assert "secret internals" not in exc.reason and "log" in exc.reason
    logged = [r for r in caplog.records if r.name == "instpages.sftp" and r.exc_info]
    assert logged and "secret internals" in str(logged[-1].exc_info[1]), caplog.records
