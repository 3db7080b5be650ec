#!/usr/bin/env python3
"""Audit record benchmark: 1, 2, 4... writer processes appending events on SQLite (WAL file) and PostgreSQL.

Each configuration runs on a fresh database (a temp SQLite file; a throwaway PostgreSQL database created on
``--pg``'s server and dropped afterwards), then checks what a user of the record would check: every event on
the record exactly once, the chain verifying, no error surfaced. The load itself is tests/storage/chainload.py.

    .venv/bin/python bench/audit_bench.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test \
        --writers 1,2,4 --events 500 --modes bare,download,upload --json /tmp/audit.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if "--storage-from" in sys.argv:  # compare with another version's storage package (children inherit sys.path)
    sys.path.insert(0, sys.argv[sys.argv.index("--storage-from") + 1])

from storage.db import create_engine
from storage.repository import Repository
from tests.conftest import fresh_database
from tests.storage.chainload import load_events, run_load


@contextmanager
def database(kind: str, pg_server: str):
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as d:
            yield f"sqlite:///{d}/bench.db"
    else:
        with fresh_database(pg_server) as url:
            yield url


def check(url: str, writers: int, events: int) -> dict:
    seen = Counter(load_events(url))
    want = {(f"w{k}", str(i)) for k in range(writers) for i in range(events)}
    repo = Repository(create_engine(url, pool_size=1))
    try:
        with repo.read() as c:
            verified = repo.verify_audit_chain(c)
    finally:
        repo.engine.dispose()
    return {"missing": len(want - set(seen)), "duplicated": sum(1 for v in seen.values() if v > 1),
            "verify": list(verified) if isinstance(verified, tuple) else str(verified)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--dbs", default="sqlite,postgresql")
    ap.add_argument("--writers", default="1,2,4")
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--modes", default="bare,download,upload")
    ap.add_argument("--hold-ms", type=float, default=0.0)
    ap.add_argument("--baseline", action="store_true", help="plain INSERTs, no chain (the ceiling)")
    ap.add_argument("--storage-from", metavar="DIR", help="import storage/ from DIR (e.g. an export of main)")
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    for kind in args.dbs.split(","):
        for mode in args.modes.split(","):
            for w in (int(x) for x in args.writers.split(",")):
                with database(kind, args.pg) as url:
                    r = run_load(url, writers=w, events=args.events, mode=mode, hold_ms=args.hold_ms,
                                 baseline=args.baseline)
                    r.update(db=kind, **({} if args.baseline else check(url, w, args.events)))
                rows.append(r)
                print(f"{kind:10} {mode:8} writers={w} {r['events_per_s']:8.0f} ev/s  append p50 "
                      f"{r['append_ms']['p50']:7.2f} p99 {r['append_ms']['p99']:7.2f} ms  tx p50 "
                      f"{r['tx_ms']['p50']:7.2f} p99 {r['tx_ms']['p99']:7.2f} ms  errors {len(r['errors'])} "
                      f"missing {r.get('missing')} dup {r.get('duplicated')} verify {r.get('verify')}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    bad = [r for r in rows if r["errors"] or r.get("missing") or r.get("duplicated")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
