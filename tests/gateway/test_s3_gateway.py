"""The gateway with its documents in S3 (``[storage] blobs = "s3"``, SeaweedFS started by the suite): what a user
puts comes back byte for byte over SFTP and WebDAV (ranges too); a bad S3 configuration refuses the start naming
the key; an upload while S3 is down is refused cleanly, leaves nothing and is on the record."""
from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import CENTRE_A, PYTHON, ROOT, STAFF_PASSWORD, free_port, populate, start_gateway
from tests.davtools import dav_curl
from tests.pdfsamples import big_pdf, minimal_pdf
from tests.s3server import SeaweedS3


def serve(tmp_path: Path, env: dict) -> subprocess.CompletedProcess:
    """``instpages serve`` as an operator starts it, expected to refuse (it never gets to listen)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("INSTPAGES_")}
    full.update(PYTHONPATH=str(ROOT), INSTPAGES_DATA_DIR=str(tmp_path / "var"), INSTPAGES_SFTP_PORT=str(free_port()),
                INSTPAGES_WEBDAV_PORT=str(free_port()), **env)
    return subprocess.run([PYTHON, "-m", "gateway", "serve"], capture_output=True, text=True, env=full,
                          cwd=str(tmp_path), timeout=120)


def assert_refused(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert any(all(w in ln for w in words) for ln in lines), r.stderr


def test_unreachable_endpoint_refuses_to_start_naming_the_key(tmp_path, s3_server):
    dead = f"http://127.0.0.1:{free_port()}"
    r = serve(tmp_path, {**s3_server.env(), "INSTPAGES_STORAGE_S3_ENDPOINT": dead})
    assert_refused(r, "storage.s3_endpoint", f"cannot reach {dead}", "connection refused")


def test_wrong_keys_or_bucket_refuse_to_start_naming_the_key(tmp_path, s3_server):
    r = serve(tmp_path, {**s3_server.env(), "INSTPAGES_STORAGE_S3_SECRET_KEY": "wrong-secret"})
    assert_refused(r, "storage.s3_secret_key")
    assert "wrong-secret" not in r.stderr + r.stdout and s3_server.secret_key not in r.stderr + r.stdout
    r = serve(tmp_path, {**s3_server.env(), "INSTPAGES_STORAGE_S3_ACCESS_KEY": "nobody"})
    assert_refused(r, "storage.s3_access_key")
    r = serve(tmp_path, {**s3_server.env(), "INSTPAGES_STORAGE_S3_BUCKET": "no-such-bucket"})
    assert_refused(r, "storage.s3_bucket", "no-such-bucket")


@pytest.fixture
def s3_gateway(tmp_path, s3_server):
    gw = start_gateway(tmp_path / "var", env=s3_server.env(prefix=f"g{uuid.uuid4().hex[:10]}/"))
    populate(gw, tmp_path)
    yield gw
    gw.stop()
    gw.services.close()


def test_sftp_put_and_get_and_webdav_ranges_with_documents_in_s3(s3_gateway, tmp_path):
    gw = s3_gateway
    assert type(gw.services.blobs).__name__ == "S3BlobStore"
    data = big_pdf(12)  # several S3 parts
    local = tmp_path / "settlement.pdf"
    local.write_bytes(data)
    r = gw.sftp("podmi", f"put {local} /{CENTRE_A}/settlement.pdf\n")
    assert r.returncode == 0, r.stderr
    assert not (gw.data_dir / "blobs").exists() or not any((gw.data_dir / "blobs").rglob("*")), \
        "documents went to the local folder"
    (blob_id,) = list(gw.services.blobs.list_ids())
    out = tmp_path / "back.pdf"
    r = gw.sftp("arch-a", f"get /{CENTRE_A}/settlement.pdf {out}\n")
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    start = 5 * 1024 * 1024 - 1000  # across the first S3 part boundary
    a = dav_curl(gw, "GET", f"/{CENTRE_A}/settlement.pdf", tmp_path, user="staff-a", password=STAFF_PASSWORD,
                 headers={"Range": f"bytes={start}-{start + 99_999}"})
    assert a.status == 206, a
    assert a.body == data[start:start + 100_000]
    assert gw.services.blobs.exists(blob_id)
    assert list(gw.services.blobs.list_temporary()) == []


def test_upload_while_s3_is_down_is_refused_cleanly_and_recorded(tmp_path):
    with SeaweedS3() as s3:
        gw = start_gateway(tmp_path / "var", env=s3.env())
        try:
            populate(gw, tmp_path)
            doc = tmp_path / "while-down.pdf"
            doc.write_bytes(minimal_pdf("S3 is down"))
            s3.stop()
            r = gw.sftp("podmi", f"put {doc} /{CENTRE_A}/while-down.pdf\n", timeout=120)
            assert r.returncode != 0, "the upload must fail while S3 is down"
            with gw.repo.read() as c:
                rows = list(c.exec_driver_sql("SELECT state FROM documents WHERE name = 'while-down.pdf'"))
            assert [s for (s,) in rows if s != "aborted"] == [], rows
            events = [e for e in gw.audit("upload") if e.path.endswith("/while-down.pdf")]
            assert events and events[0].outcome in ("refused", "aborted"), events
            r = gw.sftp("arch-a", f"ls /{CENTRE_A}\n")
            assert "while-down.pdf" not in r.stdout
        finally:
            gw.stop()
            gw.services.close()
