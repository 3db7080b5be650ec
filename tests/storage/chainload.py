"""Many processes appending to the audit record at once, through the real Repository (tests and bench).

:func:`run_load` starts ``writers`` processes (multiprocessing "spawn", each with its own engine), lets them
start together and has each append ``events`` events, every one in its own write transaction, shaped like one
of the core's operations:

- ``bare``: the transaction is only the append (a login, a denial, a listing);
- ``download``: append, then update the writer's own row (the core's download close: event, then
  ``mark_fetched``), then commit -- the append happens early in the transaction;
- ``upload``: update the writer's own row twice, append last, commit (the core's upload commit);

``hold_ms`` adds work after the append inside the transaction (slow Python between statements). ``baseline``
inserts the same rows with a plain INSERT outside any chain: the ceiling that no chain design can beat on this
machine (the cost of the transactions themselves). Each event is
``actor=w<k>``, ``detail=<i>`` so the caller can check that every event is there exactly once. The result
holds per-writer counts, errors (repr of every exception that surfaced) and timings: ``append`` is the time
spent in ``repo.audit`` (on a chain whose head row is locked by the append, that is the wait for the lock),
``tx`` the whole transaction including its commit.
"""
from __future__ import annotations

import multiprocessing
import time
import traceback

import sqlalchemy as sa

MODES = ("bare", "download", "upload")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def prepare(url: str, writers: int) -> None:
    """Migrate the database and give every writer its own row to update (an institution)."""
    from storage.db import create_engine
    from storage.repository import I, Repository, utcnow

    repo = Repository(create_engine(url, pool_size=1))
    repo.initialize()
    with repo.write() as c:
        for k in range(writers):
            if c.execute(sa.select(I.c.id).where(I.c.id == f"{k:010d}")).first() is None:
                c.execute(I.insert().values(id=f"{k:010d}", name=f"load {k}", created_at=utcnow(),
                                            status_changed_at=utcnow()))
    repo.engine.dispose()


def _plain_insert(c, rec) -> None:
    from storage.repository import E, utcnow

    c.execute(E.insert().values(ts=utcnow(), prev_hash="", hash="", **{
        f: getattr(rec, f) for f in ("actor", "protocol", "source", "action", "outcome", "institution_id", "path",
                                     "document_id", "bytes", "detail")}))


def _writer(url: str, k: int, events: int, mode: str, hold_ms: float, baseline: bool, barrier, results) -> None:
    from storage.db import create_engine
    from storage.repository import AuditRecord, I, Repository

    repo = Repository(create_engine(url, pool_size=1))
    touch = I.update().where(I.c.id == f"{k:010d}").values(digest_cursor=sa.bindparam("n"))
    append_s: list[float] = []
    tx_s: list[float] = []
    errors: list[str] = []
    with repo.read() as c:  # connect before the start line
        c.execute(sa.select(1))
    barrier.wait()
    start = time.perf_counter()
    for i in range(events):
        rec = AuditRecord("download" if mode != "upload" else "upload", "ok", f"w{k}", "load", "127.0.0.1",
                          f"{k:010d}", f"/{k:010d}/doc{i}.pdf", None, 1000 + i, str(i))
        t0 = time.perf_counter()
        try:
            with repo.write() as c:
                if mode == "upload":
                    c.execute(touch, {"n": i})
                    c.execute(touch, {"n": i + 1})
                a0 = time.perf_counter()
                _plain_insert(c, rec) if baseline else repo.audit(c, rec)
                append_s.append(time.perf_counter() - a0)
                if mode == "download":
                    c.execute(touch, {"n": i})
                if hold_ms:
                    time.sleep(hold_ms / 1000)
        except Exception:  # noqa: BLE001 - every error that would reach a user is counted and shown
            errors.append(traceback.format_exc(limit=3))
        tx_s.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    repo.engine.dispose()
    results.put({"writer": k, "elapsed": elapsed, "append": append_s, "tx": tx_s, "errors": errors})


def run_load(url: str, *, writers: int, events: int, mode: str = "bare", hold_ms: float = 0.0,
             baseline: bool = False, timeout: float = 600.0) -> dict:
    """Run the load; returns a summary (events/s, append/transaction latencies in ms, errors)."""
    assert mode in MODES
    prepare(url, writers)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(writers)
    results = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, k, events, mode, hold_ms, baseline, barrier, results))
             for k in range(writers)]
    for p in procs:
        p.start()
    out = [results.get(timeout=timeout) for _ in procs]
    for p in procs:
        p.join(timeout)
    append = [x for r in out for x in r["append"]]
    tx = [x for r in out for x in r["tx"]]
    wall = max(r["elapsed"] for r in out)
    ms = 1000.0
    return {
        "writers": writers, "events_per_writer": events, "mode": mode, "hold_ms": hold_ms, "baseline": baseline,
        "events": writers * events, "wall_s": round(wall, 3), "events_per_s": round(writers * events / wall, 1),
        "append_ms": {"mean": round(sum(append) / max(1, len(append)) * ms, 3),
                      "p50": round(_percentile(append, 0.5) * ms, 3), "p99": round(_percentile(append, 0.99) * ms, 3),
                      "max": round(max(append, default=0) * ms, 3)},
        "tx_ms": {"mean": round(sum(tx) / max(1, len(tx)) * ms, 3), "p50": round(_percentile(tx, 0.5) * ms, 3),
                  "p99": round(_percentile(tx, 0.99) * ms, 3)},
        "errors": [e for r in out for e in r["errors"]],
        "exitcodes": [p.exitcode for p in procs],
    }


def load_events(url: str) -> list[tuple[str, str]]:
    """(actor, detail) of every load event on the record."""
    from storage.db import create_engine
    from storage.repository import E

    engine = create_engine(url, pool_size=1)
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(sa.select(E.c.actor, E.c.detail).where(E.c.protocol == "load"))]
    finally:
        engine.dispose()
