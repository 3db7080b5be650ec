"""The authorization policy: a pure function of (principal, action, centre, centre status, document ownership).

Nothing here touches the database or the network, so the whole matrix is tested directly
(tests/auth/test_policy.py). The core service asks :func:`decide` before every operation.

Outcomes:
- ``HIDDEN``: the caller may not even know the centre exists -- the front-end answers "no such file".
- ``DENIED``: the caller sees the object but may not do this (e.g. an uploader reading).
- ``NOT_ACTIVE``: an upload into a centre that has not switched over or is suspended.
- ``ALLOWED``.
"""
from __future__ import annotations

from enum import Enum, StrEnum

from auth.principal import Principal, Role


class Action(StrEnum):
    SEE = "see"              # centre appears in "/" and can be addressed at all
    LIST = "list"            # list a mailbox/folder and stat its documents
    READ = "read"            # download content
    UPLOAD = "upload"
    MKDIR = "mkdir"
    ARCHIVE = "archive"      # remove from the mailbox (kept, restorable)
    RESTORE = "restore"
    RECEIPTS = "receipts"    # the catalogue: names, filing and receipts of documents (never content)


class Decision(Enum):
    ALLOWED = "allowed"
    DENIED = "denied"
    HIDDEN = "hidden"
    NOT_ACTIVE = "not-active"


ACTIVE = "active"
STATUSES = ("paper", "requested", "active", "suspended")


def _reader_scope(p: Principal, institution_id: str) -> tuple[bool, bool, bool]:
    """(may read, may remove, may write) for roles that read a centre's mailbox."""
    if p.role is Role.ARCHIVER:
        own = p.institution_id == institution_id
        return own, own, False
    if p.role in (Role.STAFF, Role.LOCAL_ADMIN):
        grant = p.grant_for(institution_id)
        own_admin = p.is_admin_of(institution_id)
        return ((grant is not None or own_admin), (grant is not None and grant.can_remove),
                (grant is not None and grant.can_write))
    return False, False, False


def decide(p: Principal, action: Action, institution_id: str, status: str) -> Decision:
    if p.role is Role.UPLOADER:
        # POD MI knows every centre; it is told plainly when one does not take electronic delivery.
        if action in (Action.UPLOAD, Action.MKDIR):
            return Decision.ALLOWED if status == ACTIVE else Decision.NOT_ACTIVE
        if action is Action.SEE:
            # listed in "/" only when active (the core filters); addressed directly, the refusal names the status
            return Decision.ALLOWED if status == ACTIVE else Decision.NOT_ACTIVE
        if action is Action.LIST:
            # an uploader lists folders and its own uploads only (the core filters by owner)
            return Decision.ALLOWED if status == ACTIVE else Decision.NOT_ACTIVE
        if action is Action.RECEIPTS:
            # the receipts of what it sent (the core filters by owner), whatever the centre's status since: a
            # sender proves delivery and pick-up to a centre that has been suspended as well
            return Decision.ALLOWED
        return Decision.DENIED

    if p.role is Role.SECURITY_CELL:
        return Decision.ALLOWED if action is Action.SEE else Decision.DENIED

    may_read, may_remove, may_write = _reader_scope(p, institution_id)
    if not may_read:
        return Decision.HIDDEN
    if action in (Action.SEE, Action.LIST, Action.READ, Action.RECEIPTS):
        return Decision.ALLOWED
    if action in (Action.UPLOAD, Action.MKDIR):
        if not may_write:
            return Decision.DENIED
        return Decision.ALLOWED if status == ACTIVE else Decision.NOT_ACTIVE
    if action is Action.ARCHIVE:
        return Decision.ALLOWED if may_remove else Decision.DENIED
    if action is Action.RESTORE:
        return Decision.ALLOWED if p.is_admin_of(institution_id) else Decision.DENIED
    return Decision.DENIED


class LockTarget(StrEnum):
    """What a WebDAV LOCK would cover."""

    ROOT = "root"            # the top level: the tree of every centre, or a name there that is no centre one sees
    MAILBOX = "mailbox"      # a centre's whole mailbox
    FOLDER = "folder"
    DOCUMENT = "document"
    FREE_NAME = "free-name"  # nothing there yet: Windows and Office lock a name before they PUT it


def decide_lock(p: Principal, target: LockTarget, institution_id: str | None, status: str) -> Decision:
    """A lock is a write permission: it stops others writing, so only those who may write there take one.

    Nobody locks the top level (nobody writes there). A mailbox, a folder or a free name: only where the
    account may create (upload) -- a read-only account never locks a mailbox, at any depth, nor a name it could
    not create. An existing document: also where the account may remove it (a lock before a DELETE)."""
    if target is LockTarget.ROOT or institution_id is None:
        return Decision.DENIED
    write = decide(p, Action.UPLOAD, institution_id, status)
    if target is LockTarget.DOCUMENT and write is not Decision.ALLOWED and \
            decide(p, Action.ARCHIVE, institution_id, status) is Decision.ALLOWED:
        return Decision.ALLOWED
    return write


def held_back_by_others_locks(p: Principal) -> bool:
    """Do other accounts' WebDAV locks hold this account's writes back? Never POD MI's deliveries: an uploader
    only creates (documents, folders, the final name of its own staged upload) and sees only its own documents,
    so no one else's lock -- on a free name, a folder or a whole mailbox -- may stop a centre's mail arriving.
    Its own locks still apply to it."""
    return p.role is not Role.UPLOADER


class AdminAction(StrEnum):
    """What the console, the REST API and the CLI do to a centre's administration."""

    LIST_ALL = "list-all"            # every centre with its switch-over status
    VIEW = "view"                    # one centre: status, history, administrators, contacts
    TRANSITION = "transition"        # request / activate / suspend (the switch-over lifecycle)
    DESIGNATE = "designate"          # local administrators and the security consultant
    CONTACTS = "contacts"            # notification addresses and language
    VIEW_ACCESS = "view-access"      # who has access to the mailbox, since when, granted by whom
    GRANT = "grant"                  # grant and revoke staff access
    RESTORE = "restore"              # list archived documents (names only) and restore them
    CATALOGUE = "catalogue"          # the centre's documents: names, filing and receipts (never content)
    AUDIT = "audit"                  # the centre's part of the record
    NOTIFY_TEST = "notify-test"      # send a test mail to the centre's contacts
    UNCLASSIFIED = "unclassified"    # per centre, how many documents no filing rule filed (counts, no names)
    REFILE = "refile"                # file delivered documents again by the current rules (the operator only)


_CELL_ADMIN = frozenset({AdminAction.LIST_ALL, AdminAction.VIEW, AdminAction.TRANSITION, AdminAction.DESIGNATE,
                         AdminAction.CONTACTS, AdminAction.VIEW_ACCESS, AdminAction.AUDIT, AdminAction.NOTIFY_TEST,
                         AdminAction.UNCLASSIFIED})
_LOCAL_ADMIN = frozenset({AdminAction.VIEW, AdminAction.CONTACTS, AdminAction.VIEW_ACCESS, AdminAction.GRANT,
                          AdminAction.RESTORE, AdminAction.CATALOGUE, AdminAction.AUDIT, AdminAction.NOTIFY_TEST})


def decide_admin(p: Principal | None, action: AdminAction, institution_id: str | None = None) -> Decision:
    """Delegation. ``p`` None is the operator on the gateway host (the CLI with the data folder): everything.

    The security cell switches centres over and designates administrators for every centre, answers for access
    (sees it) but neither grants it nor reads documents. A local administrator -- designated, or the centre's
    security consultant while none is -- manages access, contacts and archived documents of that centre only;
    every other centre is HIDDEN, exactly as a centre that does not exist."""
    if p is None:
        return Decision.ALLOWED
    if p.role is Role.SECURITY_CELL:
        return Decision.ALLOWED if action in _CELL_ADMIN else Decision.DENIED
    if p.role.is_machine:
        return Decision.DENIED
    if action is AdminAction.LIST_ALL:
        return Decision.ALLOWED if p.administered() else Decision.DENIED  # the list holds their centres only
    if not p.is_admin_of(institution_id):
        return Decision.HIDDEN
    return Decision.ALLOWED if action in _LOCAL_ADMIN else Decision.DENIED


def sees_only_own_documents(p: Principal) -> bool:
    """Uploaders see (metadata of) the documents they sent themselves, never other senders'."""
    return p.role is Role.UPLOADER
