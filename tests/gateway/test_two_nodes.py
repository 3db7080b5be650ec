"""Two gateway nodes, one PostgreSQL database, one S3 bucket (issue 11, part 6): what an operator of the scaled-out
shape checks, with the real ``python -m gateway serve`` per node (tests/cluster.py), OpenSSH ``sftp``, asyncssh,
curl and the ``instpages`` CLI.

- a document uploaded through node A is listed and read back byte for byte through node B, archived through B,
  restored with the CLI and read again through A;
- a WebDAV lock taken on A holds on B (PUT, DELETE, MOVE refused 423 without its token, done with it) and an
  UNLOCK on B frees the name for A;
- node A killed (SIGKILL) in the middle of a 100 MB upload shows nothing on B, while B's upload at the same moment
  completes; B's restart leaves A's upload alone; A's restart (same node id) aborts it: no pending row and no
  temporary object left, B's document still there;
- /readyz on both nodes follows S3 (a private SeaweedFS stopped and started again), and an upload while S3 is
  down is refused, leaves nothing and is on the record;
- failed logins on A count on B: the ban is in the database.
"""
from __future__ import annotations

import asyncio
import hashlib
import time

import pytest

from gateway.core.enterprise import with_check
from tests.cluster import cluster
from tests.conftest import CENTRE_A, STAFF_PASSWORD
from tests.davtools import dav_curl, lock, lock_token
from tests.pdfsamples import big_pdf, minimal_pdf
from tests.s3server import SeaweedS3

SCRATCH = with_check("03550001")  # a mutable (scratch) centre: documents may be moved there
WRITER, WRITER2, PW = "tn-writer", "tn-writer2", "two-nodes-password-1"


@pytest.fixture
def nodes(tmp_path, pg_url, s3_server):
    with cluster(tmp_path, pg_url, s3_server) as c:
        yield c


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listing(node, user: str, folder: str) -> list[str]:
    r = node.sftp(user, f"ls -1 {folder}\n")
    assert r.returncode == 0, r.stderr
    return [ln.strip().rsplit("/", 1)[-1] for ln in r.stdout.splitlines() if ln.strip() and not ln.startswith("sftp>")]


def fetch(node, user: str, remote: str, local) -> bytes:
    r = node.sftp(user, f"get {remote} {local}\n")
    assert r.returncode == 0, f"get {remote} through node {node.name}: {r.stderr}"
    return local.read_bytes()


# -- 1 ----------------------------------------------------------------------------------------------------------
def test_a_document_uploaded_through_a_is_read_archived_and_restored_through_either_node(nodes, tmp_path):
    a, b = nodes["a"], nodes["b"]
    data = big_pdf(12)  # several S3 parts
    (tmp_path / "up.pdf").write_bytes(data)
    r = a.sftp("podmi", f"mkdir /{CENTRE_A}/two-nodes\nput {tmp_path / 'up.pdf'} /{CENTRE_A}/two-nodes/verslag.pdf\n")
    assert r.returncode == 0, r.stderr
    ((state, owner, blob_id),) = nodes.documents("verslag.pdf")
    assert state == "committed" and owner.startswith("node-a/")

    # through B at once: listed and read, over SFTP and WebDAV, byte for byte
    assert listing(b, "arch-a", f"/{CENTRE_A}/two-nodes") == ["verslag.pdf"]
    assert sha(fetch(b, "arch-a", f"/{CENTRE_A}/two-nodes/verslag.pdf", tmp_path / "via-b.pdf")) == sha(data)
    got = dav_curl(b, "GET", f"/{CENTRE_A}/two-nodes/verslag.pdf", tmp_path, user="staff-a", password=STAFF_PASSWORD)
    assert got.status == 200 and sha(got.body) == sha(data), got.status

    # archived through B: gone from both nodes' listings, its object kept
    gone = dav_curl(b, "DELETE", f"/{CENTRE_A}/two-nodes/verslag.pdf", tmp_path, user="staff-a-rm",
                    password=STAFF_PASSWORD)
    assert gone.status == 204, gone
    assert [s for s, _, _ in nodes.documents("verslag.pdf")] == ["archived"]
    assert listing(a, "arch-a", f"/{CENTRE_A}/two-nodes") == []
    assert dav_curl(a, "GET", f"/{CENTRE_A}/two-nodes/verslag.pdf", tmp_path, user="staff-a",
                    password=STAFF_PASSWORD).status == 404
    assert f"blobs/{blob_id}" in nodes.bucket()[0]

    # restored by the operator with the CLI on B's machine, read again through A
    r = b.cli("document", "restore", CENTRE_A, "two-nodes/verslag.pdf")
    assert r.returncode == 0 and "restored document" in r.stdout, r.stderr
    assert listing(a, "arch-a", f"/{CENTRE_A}/two-nodes") == ["verslag.pdf"]
    assert sha(fetch(a, "arch-a", f"/{CENTRE_A}/two-nodes/verslag.pdf", tmp_path / "via-a.pdf")) == sha(data)
    got = dav_curl(a, "GET", f"/{CENTRE_A}/two-nodes/verslag.pdf", tmp_path, user="staff-a", password=STAFF_PASSWORD)
    assert got.status == 200 and got.body == data, got.status


# -- 2 ----------------------------------------------------------------------------------------------------------
def test_a_webdav_lock_taken_on_a_is_honoured_on_b(nodes, tmp_path):
    a, b = nodes["a"], nodes["b"]
    nodes.admin.add_institution(SCRATCH, "OCMW Kladblok", "active", mutable=True)
    for name in (WRITER, WRITER2):
        nodes.admin.add_account(name, "staff", password=PW)
        nodes.admin.grant(name, SCRATCH, can_write=True, can_remove=True)
    w1, w2 = {"user": WRITER, "password": PW}, {"user": WRITER2, "password": PW}
    base = f"/{SCRATCH}/map"
    assert dav_curl(a, "MKCOL", f"{base}/", tmp_path, **w1).status == 201
    for name in ("weg.pdf", "verhuis.pdf"):
        assert dav_curl(a, "PUT", f"{base}/{name}", tmp_path, body=minimal_pdf(name), **w1).status == 201

    held = lock(a, f"{base}/", tmp_path, depth="infinity", **w1)
    assert held.status == 200, held
    token = lock_token(held)
    with_token = {"If": f"(<{token}>)"}
    found = dav_curl(b, "PROPFIND", f"{base}/", tmp_path, headers={"Depth": "0"}, **w2)
    assert found.status == 207 and token in found.text, "B does not show A's lock"

    # on B, without the token: refused, nothing changed
    refused = {
        "PUT": dav_curl(b, "PUT", f"{base}/nieuw.pdf", tmp_path, body=minimal_pdf("nieuw"), **w2),
        "DELETE": dav_curl(b, "DELETE", f"{base}/weg.pdf", tmp_path, **w2),
        "MOVE": dav_curl(b, "MOVE", f"{base}/verhuis.pdf", tmp_path, **w2,
                         headers={"Destination": f"{b.dav_url}{base}/verhuisd.pdf"}),
    }
    assert {m: r.status for m, r in refused.items()} == {"PUT": 423, "DELETE": 423, "MOVE": 423}, refused
    names = dav_curl(a, "PROPFIND", f"{base}/", tmp_path, headers={"Depth": "1"}, **w2).text
    assert "weg.pdf" in names and "verhuis.pdf" in names and "nieuw.pdf" not in names and "verhuisd.pdf" not in names

    # on B, with the token: done
    assert dav_curl(b, "PUT", f"{base}/nieuw.pdf", tmp_path, body=minimal_pdf("nieuw"), headers=with_token,
                    **w1).status == 201
    assert dav_curl(b, "DELETE", f"{base}/weg.pdf", tmp_path, headers=with_token, **w1).status == 204
    moved = dav_curl(b, "MOVE", f"{base}/verhuis.pdf", tmp_path, **w1,
                     headers={**with_token, "Destination": f"{b.dav_url}{base}/verhuisd.pdf"})
    assert moved.status in (201, 204), moved
    # ... and still held on A for anyone else
    assert dav_curl(a, "PUT", f"{base}/ander.pdf", tmp_path, body=minimal_pdf("ander"), **w2).status == 423

    # UNLOCK on B frees it for A
    un = dav_curl(b, "UNLOCK", f"{base}/", tmp_path, headers={"Lock-Token": f"<{token}>"}, **w1)
    assert un.status == 204, un
    assert dav_curl(a, "PUT", f"{base}/ander.pdf", tmp_path, body=minimal_pdf("ander"), **w2).status == 201
    listed = dav_curl(a, "PROPFIND", f"{base}/", tmp_path, headers={"Depth": "1"}, **w2)
    assert token not in listed.text
    assert all(n in listed.text for n in ("nieuw.pdf", "verhuisd.pdf", "ander.pdf")) and "weg.pdf" not in listed.text
    assert dav_curl(a, "GET", f"{base}/verhuisd.pdf", tmp_path, **w2).body == minimal_pdf("verhuis.pdf")


# -- 3 ----------------------------------------------------------------------------------------------------------
MB = 1024 * 1024


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not reached within {timeout} s: {what}"
        time.sleep(0.1)


def test_node_a_killed_mid_upload_leaves_nothing_while_b_delivers(nodes, tmp_path):
    import asyncssh

    a, b = nodes["a"], nodes["b"]
    folder = f"/{CENTRE_A}/crash"
    assert a.sftp("podmi", f"mkdir {folder}\n").returncode == 0
    big, small = big_pdf(100), big_pdf(16)
    lost, kept = "honderd.pdf", "zestien.pdf"

    def a_in_flight() -> bool:
        rows = nodes.documents(lost)
        return len(rows) == 1 and rows[0][0] == "pending" and any(
            k.startswith("tmp/node-a/") for k in nodes.bucket("tmp/")[1])

    async def scenario() -> None:
        async with b.connect("podmi2") as conn_b, conn_b.start_sftp_client() as sftp_b:
            conn_a = await a.connect("podmi")
            sftp_a = await conn_a.start_sftp_client()
            f_a = await sftp_a.open(f"{folder}/{lost}", "wb")
            f_b = await sftp_b.open(f"{folder}/{kept}", "wb")
            await f_b.write(small[:len(small) // 2], 0)  # B's upload is under way ...
            for offset in range(0, len(big) // 2, MB):  # ... when A has about half of its 100 MB
                await f_a.write(big[offset:offset + MB], offset)
            wait_until(a_in_flight, 30, "A's upload in flight: a pending row, a multipart upload of node-a")
            a.kill()
            with pytest.raises((asyncssh.Error, OSError)):
                for offset in range(len(big) // 2, len(big), MB):
                    await f_a.write(big[offset:offset + MB], offset)
                await f_a.close()
            conn_a.abort()
            await f_b.write(small[len(small) // 2:], len(small) // 2)
            await f_b.close()

    asyncio.run(asyncio.wait_for(scenario(), 300))

    # B: its upload is there and reads back; A's is not listed
    assert listing(b, "arch-a", folder) == [kept]
    assert sha(fetch(b, "arch-a", f"{folder}/{kept}", tmp_path / "kept.pdf")) == sha(small)
    ((state, _, kept_blob),) = nodes.documents(kept)
    assert state == "committed" and f"blobs/{kept_blob}" in nodes.bucket("blobs/")[0]

    # B restarted meanwhile: its start-up recovery leaves A's upload alone (A may only be slow)
    b.stop()
    b.start()
    assert [s for s, _, _ in nodes.documents(lost)] == ["pending"]
    assert any(k.startswith("tmp/node-a/") for k in nodes.bucket("tmp/")[1]), "B removed A's upload in progress"

    # A back (same node id): its recovery aborts its own upload; no row pending, no temporary left anywhere
    a.start()
    ((state, owner, lost_blob),) = nodes.documents(lost)
    assert state == "aborted" and owner.startswith("node-a/")
    assert nodes.bucket("tmp/") == ([], []), "a temporary object or multipart upload was left in the bucket"
    assert list(nodes.services.blobs.list_temporary()) == []
    objects = nodes.bucket("blobs/")[0]
    assert f"blobs/{kept_blob}" in objects and f"blobs/{lost_blob}" not in objects
    with nodes.repo.read() as c:
        aborted = [e for e in nodes.repo.audit_events(c, action="upload") if e.outcome == "aborted"]
    assert any("interrupted by a server stop" in e.detail for e in aborted), aborted
    # and A serves B's document
    assert sha(fetch(a, "arch-a", f"{folder}/{kept}", tmp_path / "kept-a.pdf")) == sha(small)
    assert listing(a, "arch-a", folder) == [kept]


# -- 4 ----------------------------------------------------------------------------------------------------------
def test_readyz_follows_s3_and_an_upload_while_it_is_down_is_refused_on_the_record(tmp_path, pg_url):
    s3 = SeaweedS3(str(tmp_path / "seaweed")).start()  # this test's own: it is stopped and started again
    try:
        with cluster(tmp_path / "nodes", pg_url, s3) as c:
            a, b = c["a"], c["b"]
            c.admin.add_account(WRITER, "staff", password=PW)
            c.admin.grant(WRITER, CENTRE_A, can_write=True)
            assert (a.probe("/readyz"), b.probe("/readyz")) == (200, 200)

            s3.stop()
            wait_until(lambda: (a.probe("/readyz"), b.probe("/readyz")) == (503, 503), 30, "/readyz 503 on both")
            assert (a.probe("/healthz"), b.probe("/healthz")) == (200, 200)  # up, only not ready
            (tmp_path / "down.pdf").write_bytes(minimal_pdf("while S3 is down"))
            r = a.sftp("podmi", f"put {tmp_path / 'down.pdf'} /{CENTRE_A}/sftp-down.pdf\n")
            assert r.returncode != 0, "the SFTP upload must fail while S3 is down"
            put = dav_curl(b, "PUT", f"/{CENTRE_A}/dav-down.pdf", tmp_path, body=minimal_pdf("down"), user=WRITER,
                           password=PW)
            assert put.status == 503, put
            for name, node in (("sftp-down.pdf", "node-a/"), ("dav-down.pdf", "node-b/")):
                assert {s for s, _, _ in c.documents(name)} <= {"aborted"}, c.documents(name)
                with c.repo.read() as conn:
                    events = [e for e in c.repo.audit_events(conn, action="upload") if e.path.endswith(name)]
                assert events and events[0].outcome in ("refused", "aborted"), (name, events)
            assert "sftp-down.pdf" not in "".join(listing(b, "arch-a", f"/{CENTRE_A}"))

            s3.start()
            wait_until(lambda: (a.probe("/readyz"), b.probe("/readyz")) == (200, 200), 30, "/readyz 200 again")
            put = dav_curl(b, "PUT", f"/{CENTRE_A}/dav-down.pdf", tmp_path, body=minimal_pdf("down"), user=WRITER,
                           password=PW)
            assert put.status == 201, put
            assert dav_curl(a, "GET", f"/{CENTRE_A}/dav-down.pdf", tmp_path, user=WRITER,
                            password=PW).body == minimal_pdf("down")
            assert c.bucket("tmp/") == ([], [])
    finally:
        s3.stop()


# -- 5 ----------------------------------------------------------------------------------------------------------
def test_failed_logins_on_a_count_on_b_and_the_ban_holds_on_both(tmp_path, pg_url, s3_server):
    from tests.gateway.test_login_limits import dav_get

    def retry_after(answer) -> int:
        return int(answer.headers.get("retry-after") or 0)

    with cluster(tmp_path, pg_url, s3_server, env={"INSTPAGES_AUTH_BAN_AFTER": "4"}) as c:
        a, b = c["a"], c["b"]
        c.admin.add_account("tn-jan", "staff", password=PW)
        c.admin.grant("tn-jan", CENTRE_A)
        # four wrong passwords, two through each node: the fourth bans the name
        answers = [dav_get(node, "tn-jan", f"wrong-{i}-password") for i, node in enumerate((a, b, a, b))]
        assert [x.status for x in answers] == [401] * 4, answers
        for node in (a, b):  # the right password, through either node: refused for the length of the ban
            refused = dav_get(node, "tn-jan", PW)
            assert refused.status == 401 and retry_after(refused) > 60, (node.name, refused)
        listed = b.cli("ban", "list")
        assert listed.returncode == 0 and any(ln.split()[:3] == ["account", "tn-jan", "4"]
                                              for ln in listed.stdout.splitlines()), listed.stdout
        lifted = a.cli("ban", "lift", "tn-jan")
        assert lifted.returncode == 0 and "ban lifted" in lifted.stdout, lifted.stderr
        assert dav_get(b, "tn-jan", PW).status == 200
        assert dav_get(a, "tn-jan", PW).status == 200
