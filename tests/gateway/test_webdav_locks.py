"""WebDAV locks are a write permission decided by the core: taken only where the account may write, bounded in
number and time, on the record when refused -- and never able to stop POD MI's delivery into a centre.

The attacks, each with curl LOCK requests, then POD MI's PUT over WebDAV with its pinned client certificate:
a read-only staff member locking a free name, its whole mailbox (Depth infinity) or the tree root, and another
centre's staff locking names at the root (the mailbox of a centre it cannot see, and any other name there).
Each LOCK is refused with 403 and a reason, on the record, and the delivery goes through. Where a lock is allowed
(staff who may write: a free name, the whole mailbox), it still holds other staff back, but not the delivery.
A remover still locks a document before its DELETE; the bounds (webdav.lock_max_seconds,
webdav.locks_per_account) apply to new locks and refreshes, and only the holder refreshes its lock.
"""
from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa

from gateway.core.enterprise import with_check
from tests.conftest import CENTRE_B
from tests.davtools import audit_list, dav_curl, lock, lock_token
from tests.machinecert import add_machine
from tests.pdfsamples import minimal_pdf

LK = with_check("03440001")         # a centre of this module's own: mailbox-wide locks touch nobody else
GHOST = with_check("09999999")      # no such centre
UPLOADER = "lk-podmi"               # POD MI over WebDAV (pinned client certificate)
READER = "lk-reader"                # read-only staff of LK
OTHER = "lk-other"                  # staff of another centre (B) only
WRITER, WRITER2 = "lk-writer", "lk-writer2"  # staff who may write in LK
REMOVER = "lk-remover"              # staff who may remove in LK, not write
PW = "lk-password-123"


@pytest.fixture(scope="module")
def lk(world, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("locks")
    a = world.admin
    a.add_institution(LK, "OCMW Slotenmakers", "active")
    cert = add_machine(world, tmp, UPLOADER)
    for name in (READER, OTHER, WRITER, WRITER2, REMOVER):
        a.add_account(name, "staff", password=PW)
    a.grant(READER, LK)
    a.grant(OTHER, CENTRE_B)
    a.grant(WRITER, LK, can_write=True)
    a.grant(WRITER2, LK, can_write=True)
    a.grant(REMOVER, LK, can_remove=True)
    return {"cert": cert}


def as_person(name: str) -> dict:
    return {"user": name, "password": PW}


def deliver(world, lk, path: str, tmp, data: bytes) -> None:
    """POD MI's PUT of a new document over WebDAV: it must go through."""
    r = dav_curl(world, "PUT", path, tmp, cert=lk["cert"], body=data)
    assert r.status in (201, 204), f"POD MI's delivery to {path} was refused: {r}"
    got = dav_curl(world, "GET", path, tmp, user=WRITER, password=PW)
    assert got.status == 200 and got.body == data, f"the delivered document does not read back: {got}"


def mkcol(world, path, tmp, **who):
    return dav_curl(world, "MKCOL", path, tmp, **who)


def unlock(world, path, token, tmp, **who):
    r = dav_curl(world, "UNLOCK", path, tmp, headers={"Lock-Token": f"<{token}>"}, **who)
    assert r.status == 204, r


def lock_rows(world, actor: str) -> list[dict]:
    return [r for r in audit_list(world) if r["ACTOR"] == actor and r["ACTION"] == "lock"]


# -- the attacks -----------------------------------------------------------------------------------------------
ATTACKS = {
    # label: (who, path to lock, depth, reason in the answer, where POD MI then delivers)
    "read-only-free-name": (READER, f"/{LK}/{{f}}/brief.pdf", "0", "may not create this name",
                            f"/{LK}/{{f}}/brief.pdf"),
    "read-only-whole-mailbox": (READER, f"/{LK}/", "infinity", "may not write in this mailbox",
                                f"/{LK}/{{f}}/brief.pdf"),
    "read-only-tree-root": (READER, "/", "infinity", "top level", f"/{LK}/{{f}}/brief.pdf"),
    "other-centre-mailbox-name": (OTHER, f"/{LK}", "infinity", "top level", f"/{LK}/{{f}}/brief.pdf"),
    "other-centre-root-name": (OTHER, "/lk-anything", "infinity", "top level", f"/{LK}/{{f}}/brief.pdf"),
}


@pytest.mark.parametrize("label", list(ATTACKS))
def test_lock_attack_is_refused_and_the_delivery_goes_through(world, lk, tmp_path, label):
    who, target, depth, reason, put = ATTACKS[label]
    f = "lk-" + label
    assert mkcol(world, f"/{LK}/{f}/", tmp_path, user=WRITER, password=PW).status == 201
    target, put = target.format(f=f), put.format(f=f)

    r = lock(world, target, tmp_path, depth=depth, **as_person(who))
    token = r.headers.get("lock-token", "").strip("<>")
    try:
        assert r.status == 403, f"{who} was given a lock on {target} (depth {depth}): {r}"
        assert reason in r.text, r
        row = lock_rows(world, who)[0]
        assert row["OUTCOME"] == "denied" and reason in row["DETAIL"] and f"depth {depth}" in row["DETAIL"], row
        deliver(world, lk, put, tmp_path, minimal_pdf(label))
    finally:
        if token:  # only when the attack was let through: do not leave it to the other tests
            dav_curl(world, "UNLOCK", target, tmp_path, headers={"Lock-Token": f"<{token}>"}, **as_person(who))


def test_a_hidden_centre_answers_a_lock_like_a_missing_one(world, lk, tmp_path):
    """Another centre's staff: the top-level name of a centre it cannot see, and a name inside it, get exactly
    the answers of a centre that does not exist."""
    for hidden, ghost in ((f"/{LK}", f"/{GHOST}"), (f"/{LK}/x.pdf", f"/{GHOST}/x.pdf")):
        h = lock(world, hidden, tmp_path, **as_person(OTHER))
        g = lock(world, ghost, tmp_path, **as_person(OTHER))
        assert h.status in (403, 404) and (h.status, h.body.replace(LK.encode(), b"<c>")) == \
            (g.status, g.body.replace(GHOST.encode(), b"<c>")), (hidden, h, g)


# -- allowed locks: they still work, and still never stop a delivery ------------------------------------------
def test_a_writers_locks_hold_other_staff_back_but_never_the_delivery(world, lk, tmp_path):
    f = "lk-writer-locks"
    assert mkcol(world, f"/{LK}/{f}/", tmp_path, **as_person(WRITER)).status == 201
    # a free name, locked before a PUT (as Windows and Office do)
    free = f"/{LK}/{f}/bericht.pdf"
    r = lock(world, free, tmp_path, depth="0", **as_person(WRITER))
    assert r.status == 201, r
    try:
        other = dav_curl(world, "PUT", free, tmp_path, body=minimal_pdf("other"), **as_person(WRITER2))
        assert other.status == 423, f"the lock does not hold another writer back: {other}"
        deliver(world, lk, free, tmp_path, minimal_pdf("bericht"))
    finally:
        unlock(world, free, lock_token(r), tmp_path, **as_person(WRITER))

    # the whole mailbox, Depth infinity
    r = lock(world, f"/{LK}/", tmp_path, depth="infinity", **as_person(WRITER))
    assert r.status == 200, r
    try:
        other = mkcol(world, f"/{LK}/{f}-2/", tmp_path, **as_person(WRITER2))
        assert other.status == 423, f"the lock does not hold another writer back: {other}"
        other = dav_curl(world, "PUT", f"/{LK}/{f}/ander.pdf", tmp_path, body=minimal_pdf("x"), **as_person(WRITER2))
        assert other.status == 423, other
        made = mkcol(world, f"/{LK}/{f}/nieuw/", tmp_path, cert=lk["cert"])
        assert made.status == 201, f"POD MI's MKCOL was held back by a lock: {made}"
        deliver(world, lk, f"/{LK}/{f}/nieuw/lijst.pdf", tmp_path, minimal_pdf("lijst"))
        deliver(world, lk, f"/{LK}/{f}/ander.pdf", tmp_path, minimal_pdf("ander"))
        # the holder itself writes, with its token
        own = dav_curl(world, "PUT", f"/{LK}/{f}/eigen.pdf", tmp_path, body=minimal_pdf("eigen"),
                       headers={"If": f"(<{lock_token(r)}>)"}, **as_person(WRITER))
        assert own.status == 201, own
    finally:
        unlock(world, f"/{LK}/", lock_token(r), tmp_path, **as_person(WRITER))


def test_a_remover_locks_a_document_before_deleting_it(world, lk, tmp_path):
    f = "lk-remover"
    assert mkcol(world, f"/{LK}/{f}/", tmp_path, **as_person(WRITER)).status == 201
    doc = f"/{LK}/{f}/weg.pdf"
    deliver(world, lk, doc, tmp_path, minimal_pdf("weg"))
    assert lock(world, doc, tmp_path, depth="0", **as_person(READER)).status == 403
    r = lock(world, doc, tmp_path, depth="0", **as_person(REMOVER))
    assert r.status == 200, r
    token = lock_token(r)
    assert dav_curl(world, "DELETE", doc, tmp_path, **as_person(WRITER2)).status in (403, 423)
    d = dav_curl(world, "DELETE", doc, tmp_path, headers={"If": f"(<{token}>)"}, **as_person(REMOVER))
    assert d.status == 204, d
    assert dav_curl(world, "GET", doc, tmp_path, **as_person(READER)).status == 404
    with world.repo.read() as c:
        state = c.execute(sa.text("select state from documents where institution_id = :i and folder = :f and "
                                  "name = 'weg.pdf'"), {"i": LK, "f": f}).scalar()
    assert state == "archived"


# -- the bounds ------------------------------------------------------------------------------------------------
def granted_seconds(a) -> int:
    m = re.search(r"<D:timeout>Second-(\d+)</D:timeout>", a.text, re.I) or \
        re.search(r"<(?:\w+:)?timeout>Second-(\d+)<", a.text)
    assert m, f"no finite timeout in the lock answer: {a}"
    return int(m.group(1))


def test_locks_are_bounded_in_time_and_number(make_gateway, tmp_path):
    gw = make_gateway(env={"INSTPAGES_WEBDAV_LOCK_MAX_SECONDS": "120", "INSTPAGES_WEBDAV_LOCKS_PER_ACCOUNT": "2"})
    a = gw.admin
    a.add_institution(LK, "OCMW Slotenmakers", "active")
    for name in (WRITER, WRITER2):
        a.add_account(name, "staff", password=PW)
        a.grant(name, LK, can_write=True)
    assert mkcol(gw, f"/{LK}/map/", tmp_path, **as_person(WRITER)).status == 201

    # time: "Infinite" and a week both become the configured maximum, in the answer and in the stored lock
    r1 = lock(gw, f"/{LK}/map/a.pdf", tmp_path, depth="0", timeout="Infinite", **as_person(WRITER))
    assert r1.status == 201, r1
    assert 110 <= granted_seconds(r1) <= 120
    r2 = lock(gw, f"/{LK}/map/b.pdf", tmp_path, depth="0", timeout="Second-604800", **as_person(WRITER))
    assert r2.status == 201 and 110 <= granted_seconds(r2) <= 120, r2
    with gw.repo.read() as c:
        expiries = [e for (e,) in c.execute(sa.text("select expire from dav_locks"))]
    assert len(expiries) == 2 and all(0 < e <= time.time() + 121 for e in expiries), expiries

    # number: a third lock of the same account is refused, on the record; another account still locks
    r3 = lock(gw, f"/{LK}/map/c.pdf", tmp_path, depth="0", **as_person(WRITER))
    assert r3.status == 403 and "too many locks" in r3.text, r3
    row = lock_rows(gw, WRITER)[0]
    assert row["OUTCOME"] == "denied" and "at most 2" in row["DETAIL"], row
    r4 = lock(gw, f"/{LK}/map/c.pdf", tmp_path, depth="0", **as_person(WRITER2))
    assert r4.status == 201, r4
    unlock(gw, f"/{LK}/map/a.pdf", lock_token(r1), tmp_path, **as_person(WRITER))
    r5 = lock(gw, f"/{LK}/map/d.pdf", tmp_path, depth="0", **as_person(WRITER))
    assert r5.status == 201, r5

    # refreshes are capped too, and only the holder refreshes its lock
    refresh = {"If": f"(<{lock_token(r2)}>)", "Timeout": "Infinite"}
    other = dav_curl(gw, "LOCK", f"/{LK}/map/b.pdf", tmp_path, headers=refresh, **as_person(WRITER2))
    assert other.status == 403, other
    own = dav_curl(gw, "LOCK", f"/{LK}/map/b.pdf", tmp_path, headers=refresh, **as_person(WRITER))
    assert own.status == 200 and 110 <= granted_seconds(own) <= 120, own
    assert [r["OUTCOME"] for r in lock_rows(gw, WRITER2)] == ["denied"]
