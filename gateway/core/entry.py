"""What a front-end is told about a name in the tree: an :class:`Entry` (a centre's mailbox, a folder or a
document) and the permission bits it shows. Built by the session (:mod:`gateway.core.session`) and the transfers
(:mod:`gateway.core.transfer`); the front-ends turn it into SFTP attributes or WebDAV properties."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from storage.repository import DocumentRow

FOLDER_MODE_READ = 0o550
FOLDER_MODE_WRITE = 0o750
DOCUMENT_MODE = 0o440


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    is_folder: bool
    size: int = 0
    mtime: float = 0.0
    mode: int = FOLDER_MODE_READ
    document_id: int | None = None
    sha256: str = ""
    content_type: str = ""
    display_name: str = ""  # centres: their name
    #: a document's (kind, legislation, period) as the filing rules filed it (:mod:`gateway.core.filing`); None:
    #: unclassified, and for folders
    filing: tuple[str, str, str] | None = None
    #: the document's row as the session's stat found it (not part of the entry's value): a download opened in the
    #: same operation starts from it instead of looking the name up again (:meth:`MailboxSession.open_download`)
    row: DocumentRow | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of_document(cls, doc: DocumentRow) -> Entry:
        """The entry of a stored document, as the caller may see it (always read-only)."""
        return cls(doc.name, False, doc.size, epoch(doc.committed_at), DOCUMENT_MODE, doc.id, doc.sha256,
                   doc.content_type, filing=(doc.kind, doc.legislation, doc.period) if doc.kind else None, row=doc)


_EPOCH, _EPOCH_NAIVE = datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(1970, 1, 1)


def epoch(dt: datetime | None) -> float:
    """Seconds since the epoch of a stored time (0 when there is none); a time without a zone is UTC (SQLite gives
    them so). The same float ``datetime.timestamp()`` gives, without making an aware copy of a naive time first (a
    10,000-document listing makes 10,000)."""
    if dt is None:
        return 0.0
    return (dt - (_EPOCH if dt.tzinfo is not None else _EPOCH_NAIVE)).total_seconds()
