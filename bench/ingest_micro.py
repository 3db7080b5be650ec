"""The core's cost per upload, in process: documents delivered through ``MailboxSession.open_upload`` / ``append`` /
``commit`` one after the other, as one SFTP session of POD MI would, without SSH, the event loop or the thread hops.
A companion of bench/sftp_bench.py's ingest scenario (6: 2,000 x 200 KB puts in one session, target >= 300
docs/s): what this gives is a ceiling for it, the part of a put's time that is the core's (database, encryption,
fsync, content check, record).

    .venv/bin/python bench/ingest_micro.py [--docs 1000] [--rounds 3] [--profile out.pstats] [--json out.json]

Each round delivers ``--docs`` fresh 200 KB PDFs (an uncompressed random image, as the SFTP benchmark's documents)
into a new folder of one centre, in a fresh data directory under ``--tmp-dir`` (same disk as the benchmark's).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway.config import load_config  # noqa: E402
from gateway.core.enterprise import with_check  # noqa: E402
from gateway.core.session import MailboxSession  # noqa: E402
from gateway.services import build  # noqa: E402

CENTRE = with_check("02000998")
#: the SFTP client's write size (OpenSSH sftp: 32 KiB requests)
WRITE = 32 * 1024


def pdf_of(size: int) -> bytes:
    """A valid one-page PDF of about ``size`` bytes: an uncompressed random RGB image."""
    import pikepdf

    side = max(1, int((size / 3) ** 0.5))
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    image = pdf.make_stream(os.urandom(side * side * 3), Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image,
                            Width=side, Height=side, ColorSpace=pikepdf.Name.DeviceRGB, BitsPerComponent=8)
    pdf.pages[0].Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im1=image))
    pdf.pages[0].Contents = pdf.make_stream(b"q 200 0 0 200 72 100 cm /Im1 Do Q")
    buf = io.BytesIO()
    pdf.save(buf, compress_streams=False)
    return buf.getvalue()


def deliver(session: MailboxSession, folder: str, docs: list[bytes], n: int) -> float:
    """Seconds to deliver ``n`` documents (rotating over ``docs``) into ``folder``."""
    start = time.perf_counter()
    for i in range(n):
        up = session.open_upload(f"/{CENTRE}/{folder}/doc-{i:05d}.pdf")
        data = docs[i % len(docs)]
        for offset in range(0, len(data), WRITE):
            up.append(data[offset:offset + WRITE])
        up.commit()
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=1000, help="documents per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--size", type=int, default=200 * 1024, help="bytes per document")
    p.add_argument("--tmp-dir", default=tempfile.gettempdir())
    p.add_argument("--profile", help="write a cProfile of the last round here")
    p.add_argument("--json", help="write the figures here")
    a = p.parse_args()
    if a.docs < 1 or a.rounds < 1 or a.size < 1024:
        p.error("--docs and --rounds are at least 1, --size at least 1024")
    docs = [pdf_of(a.size) for _ in range(20)]
    with tempfile.TemporaryDirectory(prefix="ingest-micro-", dir=a.tmp_dir) as tmp:
        env = {"INSTPAGES_AUTH_SECOND_FACTOR": "off", "INSTPAGES_SFTP_PORT": "0", "INSTPAGES_WEBDAV_PORT": "0"}
        services = build(load_config(None, env=env, overrides={"data_dir": tmp}))
        try:
            admin = services.administration(actor="micro")
            admin.add_institution(CENTRE, "Ingest micro centre", "active")
            admin.add_account("micro-up", "uploader")
            mb = services.mailbox
            with mb.repo.read() as c:
                account = mb.repo.account_by_name(c, "micro-up").id
            session = MailboxSession(mb, mb.load_principal(account, "micro"), "sftp", "127.0.0.1")
            deliver(session, "warm-up", docs, 50)
            times = []
            for r in range(a.rounds):
                profile = cProfile.Profile() if a.profile and r == a.rounds - 1 else None
                if profile:
                    profile.enable()
                times.append(deliver(session, f"round-{r}", docs, a.docs))
                if profile:
                    profile.disable()
                    profile.dump_stats(a.profile)
                print(f"round {r + 1}: {a.docs} uploads in {times[-1]:.2f} s = {a.docs / times[-1]:.0f} docs/s, "
                      f"{times[-1] / a.docs * 1000:.2f} ms each")
        finally:
            services.close()
    rates = [a.docs / t for t in times]
    print(f"median {statistics.median(rates):.0f} docs/s ({a.size} bytes a document, {a.rounds} rounds)")
    if a.json:
        Path(a.json).write_text(json.dumps({"docs": a.docs, "size": len(docs[0]), "rounds_seconds": times,
                                            "docs_per_second": rates, "median": statistics.median(rates)},
                                           indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
