"""The authorization policy as a matrix: role x action x centre relation x centre status."""
from __future__ import annotations

import itertools

import pytest

from auth.policy import (Action, Decision, LockTarget, decide, decide_lock, held_back_by_others_locks,
                         sees_only_own_documents)
from auth.principal import Grant, Principal, Role

OWN, OTHER = "0212345668", "0207123456"
A, D, H, N = Decision.ALLOWED, Decision.DENIED, Decision.HIDDEN, Decision.NOT_ACTIVE

P = {
    "uploader": Principal(1, "podmi", Role.UPLOADER),
    "archiver": Principal(2, "arch", Role.ARCHIVER, OWN),
    "staff": Principal(3, "staff", Role.STAFF, grants=frozenset({Grant(OWN)})),
    "staff-rm": Principal(4, "staffrm", Role.STAFF, grants=frozenset({Grant(OWN, can_remove=True)})),
    "staff-none": Principal(5, "nobody", Role.STAFF),
    "local-admin": Principal(6, "ladmin", Role.LOCAL_ADMIN, OWN),
    "cell": Principal(7, "cell", Role.SECURITY_CELL),
    "staff-w": Principal(8, "staffw", Role.STAFF, grants=frozenset({Grant(OWN, can_write=True)})),
}

# expected decision on the OWN/granted centre when it is active
ACTIVE_OWN = {
    #              SEE LIST READ UPLOAD MKDIR ARCHIVE RESTORE RECEIPTS
    "uploader":    (A,  A,   D,   A,     A,    D,      D,      A),
    "archiver":    (A,  A,   A,   D,     D,    A,      D,      A),
    "staff":       (A,  A,   A,   D,     D,    D,      D,      A),
    "staff-rm":    (A,  A,   A,   D,     D,    A,      D,      A),
    "staff-none":  (H,  H,   H,   H,     H,    H,      H,      H),
    "local-admin": (A,  A,   A,   D,     D,    D,      A,      A),
    "cell":        (A,  D,   D,   D,     D,    D,      D,      D),
}
ACTIONS = [Action.SEE, Action.LIST, Action.READ, Action.UPLOAD, Action.MKDIR, Action.ARCHIVE, Action.RESTORE,
           Action.RECEIPTS]


@pytest.mark.parametrize("who,action", list(itertools.product(ACTIVE_OWN, range(len(ACTIONS)))))
def test_own_active_centre(who, action):
    assert decide(P[who], ACTIONS[action], OWN, "active") is ACTIVE_OWN[who][action]


@pytest.mark.parametrize("who", ["archiver", "staff", "staff-rm", "staff-none", "local-admin"])
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("status", ["active", "paper", "suspended", "requested"])
def test_other_centre_is_invisible_to_centre_roles(who, action, status):
    # a centre one has no business with answers exactly as a centre that does not exist
    assert decide(P[who], action, OTHER, status) is H


@pytest.mark.parametrize("status", ["paper", "requested", "suspended"])
def test_uploader_is_told_the_centre_does_not_take_uploads(status):
    up = P["uploader"]
    assert decide(up, Action.UPLOAD, OTHER, status) is N
    assert decide(up, Action.MKDIR, OTHER, status) is N
    assert decide(up, Action.SEE, OTHER, status) is N  # not listed in "/", and told why when addressed
    assert decide(up, Action.READ, OTHER, status) is D
    assert decide(up, Action.RECEIPTS, OTHER, status) is A  # what it sent stays provable (the core filters)


@pytest.mark.parametrize("status", ["paper", "suspended"])
def test_granted_staff_still_reads_a_suspended_or_paper_centre(status):
    assert decide(P["staff"], Action.READ, OWN, status) is A
    assert decide(P["archiver"], Action.ARCHIVE, OWN, status) is A


def test_security_cell_never_reads_content_anywhere():
    for inst, status in itertools.product([OWN, OTHER], ["active", "suspended", "paper"]):
        assert decide(P["cell"], Action.READ, inst, status) is D
        assert decide(P["cell"], Action.LIST, inst, status) is D


def test_uploaders_see_only_their_own_documents():
    assert sees_only_own_documents(P["uploader"])
    assert not any(sees_only_own_documents(P[w]) for w in P if w != "uploader")


def test_principal_is_frozen():
    with pytest.raises(AttributeError):
        P["staff"].role = Role.SECURITY_CELL  # type: ignore[misc]


# -- WebDAV locks: a write permission ----------------------------------------------------------------------------
LOCK_TARGETS = [LockTarget.MAILBOX, LockTarget.FOLDER, LockTarget.FREE_NAME, LockTarget.DOCUMENT]
# expected decision on the OWN/granted centre when it is active
LOCKS_ACTIVE_OWN = {
    #              MAILBOX FOLDER FREE DOCUMENT
    "uploader":    (A,      A,     A,   A),      # it may create anywhere in an active centre
    "archiver":    (D,      D,     D,   A),      # removes: may lock a document before its DELETE
    "staff":       (D,      D,     D,   D),      # read-only: never, at any depth
    "staff-rm":    (D,      D,     D,   A),
    "staff-w":     (A,      A,     A,   A),
    "staff-none":  (H,      H,     H,   H),
    "local-admin": (D,      D,     D,   D),
    "cell":        (D,      D,     D,   D),
}


@pytest.mark.parametrize("who,target", list(itertools.product(LOCKS_ACTIVE_OWN, range(len(LOCK_TARGETS)))))
def test_lock_needs_the_right_to_write_there(who, target):
    assert decide_lock(P[who], LOCK_TARGETS[target], OWN, "active") is LOCKS_ACTIVE_OWN[who][target]


@pytest.mark.parametrize("who", list(P))
@pytest.mark.parametrize("status", ["active", "paper"])
def test_nobody_locks_the_top_level(who, status):
    assert decide_lock(P[who], LockTarget.ROOT, None, status) is D
    assert decide_lock(P[who], LockTarget.ROOT, OWN, status) is D


@pytest.mark.parametrize("status", ["paper", "requested", "suspended"])
def test_no_new_locks_where_nothing_may_be_created(status):
    assert decide_lock(P["uploader"], LockTarget.FREE_NAME, OTHER, status) is N
    assert decide_lock(P["staff-w"], LockTarget.FREE_NAME, OWN, status) is N
    assert decide_lock(P["staff"], LockTarget.MAILBOX, OWN, status) is D
    assert decide_lock(P["staff-w"], LockTarget.FREE_NAME, OTHER, status) is H


def test_only_deliveries_ignore_other_accounts_locks():
    assert not held_back_by_others_locks(P["uploader"])
    assert all(held_back_by_others_locks(P[w]) for w in P if w != "uploader")
