"""Per-request CPU of the WebDAV front-end, in process: the WSGI app called directly (no TLS, no cheroot), so that
what the gateway's own code costs per GET and per PROPFIND is measured without the network and the other
processes of a shared machine in the figure. A companion of bench/dav_bench.py (which measures the whole thing
against nginx), for profiling and for before/after comparisons of the WSGI/WebDAV path.

    .venv/bin/python bench/dav_micro.py [--docs 10000] [--gets 2000] [--propfinds 20] [--profile out.pstats]

The data set is made once in --data-dir (default /tmp/dav-micro): one active centre, one staff reader with a
grant, ``--docs`` document rows in one folder (rows only: PROPFIND never opens a blob) and a folder of 2,000
documents as in dav_bench's wrk scenario, of which the GETs rotate over the first 50 (real 200 KB documents
uploaded through the core; the others are rows only).
"""
from __future__ import annotations

import argparse
import base64
import cProfile
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway.config import load_config
from gateway.core.enterprise import with_check
from gateway.dav.app import create_app
from gateway.services import build

CENTRE = with_check("02000999")
USER, PW = "micro-staff", "micro-password-1"
PROPFIND = (b'<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/>'
            b"<D:getcontentlength/><D:getlastmodified/><D:getetag/><D:getcontenttype/><D:displayname/>"
            b"</D:prop></D:propfind>\n")


def environ(method: str, path: str, body: bytes = b"", **headers) -> dict:
    env = {"REQUEST_METHOD": method, "SCRIPT_NAME": "/dav", "QUERY_STRING": "",
           "PATH_INFO": path.encode("utf-8").decode("latin-1"), "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8443",
           "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(body),
           "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0), "wsgi.multithread": True,
           "wsgi.multiprocess": False, "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1",
           "CONTENT_LENGTH": str(len(body)) if body else "",
           "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{USER}:{PW}".encode()).decode()}
    for k, v in headers.items():
        env["HTTP_" + k.upper()] = v
    return env


def call(app, env) -> tuple[str, int]:
    out = {}

    def start_response(status, hdrs, exc_info=None):
        out["status"] = status

    it = app(env, start_response)
    n = 0
    try:
        for chunk in it:
            n += len(chunk)
    finally:
        if hasattr(it, "close"):
            it.close()
    return out["status"], n


def make_data(data_dir: Path, docs: int) -> None:
    from gateway.core.mailbox import Mailbox  # noqa: F401
    from tests import pdfsamples

    cfg = config(data_dir)
    services = build(cfg)
    admin = services.administration(actor="micro")
    admin.add_institution(CENTRE, "Micro centre", "active")
    admin.add_account(USER, "staff", password=PW)
    admin.add_account("micro-up", "uploader")
    admin.grant(USER, CENTRE)
    mb = services.mailbox
    repo = services.repo
    up = mb.load_principal(repo_account_id(repo, "micro-up"), "test")
    from gateway.core.session import MailboxSession

    s = MailboxSession(mb, up, "test", "127.0.0.1")
    import pikepdf

    for i in range(50):
        pdf = pikepdf.open(io.BytesIO(pdfsamples.minimal_pdf(f"micro {i}")))
        pdf.Root.MicroFiller = pikepdf.Stream(pdf, os.urandom(200_000))
        buf = io.BytesIO()
        pdf.save(buf, compress_streams=False)
        data = buf.getvalue()
        u = s.open_upload(f"/{CENTRE}/small/f-{i:05d}.pdf")
        u.append(data)
        u.commit()
    with repo.write() as c:
        repo.create_folders(c, CENTRE, "propfind", "micro")
        for i in range(docs):
            d = repo.create_pending(c, institution_id=CENTRE, folder="propfind", name=f"doc-{i:05d}.pdf",
                                    blob_id=f"fake{i}", uploaded_by=up.account_id, node_id="micro")
            repo.finish_document(c, d, state="committed", size=123456 + i, sha256=f"{i:064x}", key_id="k",
                                 wrapped_key=b"x", content_type="application/pdf")
        for i in range(50, 2000):  # the rest of the 2,000 documents of dav_bench's wrk folder (rows only)
            d = repo.create_pending(c, institution_id=CENTRE, folder="small", name=f"f-{i:05d}.pdf",
                                    blob_id=f"fakesmall{i}", uploaded_by=up.account_id, node_id="micro")
            repo.finish_document(c, d, state="committed", size=205635, sha256=f"{i:064x}", key_id="k",
                                 wrapped_key=b"x", content_type="application/pdf")
    services.close()


def repo_account_id(repo, name: str) -> int:
    with repo.read() as c:
        return repo.account_by_name(c, name).id


def config(data_dir: Path):
    env = {"INSTPAGES_AUTH_SECOND_FACTOR": "off", "INSTPAGES_SFTP_PORT": "0", "INSTPAGES_WEBDAV_PORT": "0"}
    return load_config(None, env=env, overrides={"data_dir": str(data_dir)})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="/tmp/dav-micro")
    p.add_argument("--docs", type=int, default=10000)
    p.add_argument("--gets", type=int, default=2000)
    p.add_argument("--propfinds", type=int, default=20)
    p.add_argument("--profile", help="write a cProfile of the timed part here")
    p.add_argument("--only", default="get,propfind")
    p.add_argument("--json", help="write the figures here")
    a = p.parse_args()
    data = Path(a.data_dir)
    if not (data / ".micro-ready").exists():
        make_data(data, a.docs)
        (data / ".micro-ready").write_text("ok\n")
    services = build(config(data))
    app = create_app(services.mailbox, auth_cache_seconds=60, block_size=1024 * 1024)
    only = set(a.only.split(","))
    prof = cProfile.Profile() if a.profile else None
    out: dict = {}
    assert call(app, environ("GET", f"/{CENTRE}/small/f-00000.pdf"))[0].startswith("200")  # the login
    if "get" in only:
        for i in range(50):  # warm-up
            call(app, environ("GET", f"/{CENTRE}/small/f-{i:05d}.pdf"))
        if prof:
            prof.enable()
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(a.gets):
            status, n = call(app, environ("GET", f"/{CENTRE}/small/f-{i % 50:05d}.pdf"))
            assert status.startswith("200") and n > 190_000, (status, n)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        if prof:
            prof.disable()
        out["get_cpu_ms"] = cpu / a.gets * 1000
        out["get_wall_ms"] = wall / a.gets * 1000
        print(f"GET 200 KB: {out['get_cpu_ms']:.3f} ms CPU, {out['get_wall_ms']:.3f} ms wall per request")
    if "propfind" in only:
        times, cpus = [], []
        call(app, environ("PROPFIND", f"/{CENTRE}/propfind/", PROPFIND, DEPTH="1"))
        if prof:
            prof.enable()
        for _ in range(a.propfinds):
            c0, t0 = time.process_time(), time.perf_counter()
            status, n = call(app, environ("PROPFIND", f"/{CENTRE}/propfind/", PROPFIND, DEPTH="1"))
            times.append((time.perf_counter() - t0) * 1000)
            cpus.append((time.process_time() - c0) * 1000)
            assert status.startswith("207"), status
        if prof:
            prof.disable()
        out["propfind_ms_median"] = statistics.median(times)
        out["propfind_cpu_ms_median"] = statistics.median(cpus)
        out["propfind_bytes"] = n
        print(f"PROPFIND Depth 1, {a.docs} documents: median {out['propfind_ms_median']:.1f} ms wall, "
              f"{out['propfind_cpu_ms_median']:.1f} ms CPU, {n:,} bytes")
    if prof:
        prof.dump_stats(a.profile)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
