"""What one session already knows: the document rows of its last lookups and the entries of its last listings,
kept for a short while so that the next request about the same name is answered from memory.

An SFTP client asks about one name several times in a row: ``get`` sends LSTAT, STAT and OPEN for the name it was
just shown by a listing or a STAT. :class:`Known` belongs to one :class:`~gateway.core.session.MailboxSession`
(one principal: nothing read for one person is ever answered to another), holds what the session read for its
principal, and answers it for ``ttl`` seconds (the centre cache's lifetime, ``Mailbox.INSTITUTION_TTL``): a
document archived or added by another session shows within that bound, as a centre's status change does. It is
not a permission cache: every answer is still authorized by the session, from its principal and centre row, at
the moment it is given; the session forgets everything when it reloads its principal or changes the tree itself.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

from auth.policy import Action, Decision, decide
from auth.principal import Role
from gateway.core.entry import Entry
from storage.errors import GatewayError
from storage.repository import DocumentRow

#: rows and listings kept at most per session (beyond that, the oldest go): memory stays bounded per connection
MAX_ROWS = 1024
MAX_LISTINGS = 2
#: rows read at once, in name order, from the name asked on, once a session asks the database about a second
#: name of the same folder (a client going through a folder: ``get`` after ``get``)
READ_AHEAD_ROWS = 128

Key = tuple[str, str, str]  # centre, folder, name


class Known:
    """Rows and listings of one session, each answered while younger than ``ttl`` seconds of ``clock``."""

    __slots__ = ("_clock", "_listings", "_looked_up", "_rows", "ttl")

    def __init__(self, clock: Callable[[], float], ttl: float):
        self._clock = clock
        self.ttl = ttl
        self._rows: dict[Key, tuple[float, DocumentRow]] = {}
        self._listings: dict[tuple[str, str], tuple[float, dict[str, Entry]]] = {}
        self._looked_up: set[tuple[str, str]] = set()  # folders the session asked the database about

    def read_ahead(self, centre: str, folder: str) -> int:
        """How many rows to read for a name of this folder that is not known: one the first time, then
        ``READ_AHEAD_ROWS`` from that name on."""
        if (centre, folder) in self._looked_up:
            return READ_AHEAD_ROWS
        if len(self._looked_up) >= MAX_ROWS:
            self._looked_up.clear()
        self._looked_up.add((centre, folder))
        return 1

    def row(self, key: Key) -> DocumentRow | None:
        """The document row read for ``key`` less than ``ttl`` ago, unfiltered (the caller applies its rules)."""
        hit = self._rows.get(key)
        if hit is None:
            return None
        if self._clock() - hit[0] >= self.ttl:
            self._rows.pop(key, None)
            return None
        return hit[1]

    def remember_row(self, key: Key, row: DocumentRow) -> None:
        if len(self._rows) >= MAX_ROWS:
            self._rows.pop(next(iter(self._rows)), None)
        self._rows[key] = (self._clock(), row)

    def entry(self, key: Key) -> Entry | None:
        """The entry of a document as the session's last listing of its folder showed it (already filtered for
        the principal that listed it), when that listing is younger than ``ttl``."""
        hit = self._listings.get(key[:2])
        if hit is None:
            return None
        if self._clock() - hit[0] >= self.ttl:
            self._listings.pop(key[:2], None)
            return None
        return hit[1].get(key[2])

    def remember_listing(self, centre: str, folder: str, entries: list[Entry]) -> None:
        if len(self._listings) >= MAX_LISTINGS:
            self._listings.pop(next(iter(self._listings)), None)
        self._listings[(centre, folder)] = (self._clock(), {e.name: e for e in entries if not e.is_folder})

    def forget(self) -> None:
        self._rows.clear()
        self._listings.clear()


def changes_tree(method):
    """A method that changes the tree (a session's archive, rename...; an upload's commit): what the session knew
    is forgotten before and after it, so that its own change shows at once."""
    @functools.wraps(method)
    def changing(self, *args, **kwargs):
        known = self.known if hasattr(self, "known") else self.session.known
        known.forget()
        try:
            return method(self, *args, **kwargs)
        finally:
            known.forget()
    return changing


class AnsweredFromMemory:
    """The answers of a :class:`~gateway.core.session.MailboxSession` that need no database, disk or network when
    everything they depend on is in memory and fresh: its principal (not due to be re-read), the centre row (in
    the mailbox's cache) and the document (:class:`Known`). A front-end may call them in its event loop; each
    returns None whenever the answer would need I/O or is not a plain success -- then the front-end calls the
    ordinary method in a worker thread, which decides, raises and records refusals as always. Every answer given
    here is authorized by the same rules (``auth.policy.decide``, the uploader's own-documents filter) from the
    same principal and centre row that the ordinary method would use at that moment."""

    def _principal_in_memory(self):
        """The principal, unless the ordinary ``principal`` property would re-read it now (lifetime over, a change
        announced, the cache epochs due to be read) or the session ended."""
        mailbox = self.mailbox
        if self._ended is not None or mailbox.epochs.due():
            return None
        if mailbox.clock() - self._loaded > mailbox.PRINCIPAL_TTL or \
                mailbox.principal_epoch(poll=False) != self._loaded_under:
            return None
        return self._principal

    def _allowed_in_memory(self, path, *actions):
        """The centre row of ``path`` when every action in ``actions`` is allowed there, from memory; else None."""
        p = self._principal_in_memory()
        inst = self.mailbox.known_institution(path.institution) if p is not None else None
        if inst is None or p.role is Role.SECURITY_CELL:  # the security cell reads no contents: its refusals
            return None  # are the ordinary methods'
        for action in actions:
            if decide(p, action, inst.id, inst.status) is not Decision.ALLOWED:
                return None
        return inst

    def _known_doc(self, path):
        doc = self.known.row((path.institution, path.folder, path.name))
        return doc if doc is not None and self._sees(doc) else None

    def _document_path(self, raw):
        try:
            path = self._parse(raw)
        except GatewayError:
            return None
        return None if path.is_root or path.is_mailbox else path

    def stat_known(self, raw) -> Entry | None:
        """:meth:`stat` of a document this session was just shown, from memory; None: ask :meth:`stat`."""
        path = self._document_path(raw)
        if path is None or self._allowed_in_memory(path, Action.SEE, Action.LIST) is None:
            return None
        entry = self.known.entry((path.institution, path.folder, path.name))
        if entry is not None:
            return entry
        doc = self._known_doc(path)
        return Entry.of_document(doc) if doc is not None else None

    def open_download_known(self, raw):
        """:meth:`open_download` of a document this session just looked up, from memory (the blob is opened by
        the download's first read, in a worker thread); None: ask :meth:`open_download`."""
        path = self._document_path(raw)
        if path is None or self._allowed_in_memory(path, Action.READ) is None:
            return None
        doc = self._known_doc(path)
        if doc is None or doc.state != "committed":
            return None
        return self._download(path, doc, opened=False)
