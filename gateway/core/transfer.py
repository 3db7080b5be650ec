"""Transfers of a session: a :class:`Download` of a stored document and an :class:`Upload` in progress.

A session (:mod:`gateway.core.session`) opens them once the operation is authorized; they stream the bytes
(decrypted on the way out, encrypted on the way in), apply the upload rules (size, content, an identical
re-send) and put the outcome on the record: complete or aborted, committed, staged or refused.
"""
from __future__ import annotations

import io
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING

from auth.policy import sees_only_own_documents
from gateway.core.content import check_content
from gateway.core.entry import DOCUMENT_MODE, Entry
from gateway.core.known import changes_tree
from gateway.core.localtime import minute
from gateway.core.path import VPath
from storage.errors import (AlreadyDelivered, AlreadyExists, Conflict, ContentRefused, GatewayError,
                            InstitutionNotActive, ServiceUnavailable, TooLarge, UploadFinished)
from storage.repository import DocumentRow, utcnow

if TYPE_CHECKING:
    from gateway.core.session import MailboxSession


class Download:
    """An open document. ``read`` may be called with any offset; the record says complete or aborted.

    ``reader``: the blob's reader, or None to open it with ``open_reader`` on the first fetch (a download opened
    from memory, in a front-end's event loop: the blob store is only touched from a worker thread). A blob that
    then fails to open fails that read, and the download is recorded as aborted with the reason."""

    def __init__(self, session: MailboxSession, path: VPath, doc: DocumentRow, reader,
                 open_reader: Callable[[], object] | None = None):
        self.session = session
        self.path = path
        self.doc = doc
        self.size = doc.size
        self._reader = reader
        self._open_reader = open_reader
        self._served = 0          # bytes handed out (may exceed size on re-reads)
        self._contiguous = 0      # highest offset such that [0, offset) was handed out
        self._closed = False
        self.failure: str | None = None

    @property
    def entry(self) -> Entry:
        return Entry.of_document(self.doc)

    def read(self, offset: int, size: int) -> bytes:
        """Bytes handed to the client: fetched and counted."""
        data = self.fetch(offset, size)
        self.served(offset, len(data))
        return data

    def fetch(self, offset: int, size: int) -> bytes:
        """Decrypt ``[offset, offset + size)`` without counting it as served (read-ahead)."""
        if offset >= self.size or size <= 0:
            return b""
        try:
            if self._reader is None:
                if self._closed:
                    return b""
                self._reader = self._open_reader()
            return self._reader.read_range(offset, min(size, self.size - offset))
        except GatewayError as exc:
            self.failure = exc.message
            raise

    def prefetch(self, offset: int, size: int) -> None:
        """The client streams in order: start decrypting ``[offset, offset + size)`` (the next ``read``/``fetch``
        of exactly that range) on the blob store's threads while the current range is sent."""
        if 0 <= offset < self.size and size > 0:
            self._reader.prefetch(offset, min(size, self.size - offset))

    def served(self, offset: int, n: int) -> None:
        """Record that the client was sent ``n`` bytes at ``offset`` (the record says complete or aborted)."""
        self._served += n
        if offset <= self._contiguous < offset + n:
            self._contiguous = offset + n

    def close(self, aborted: bool = False) -> None:
        """Close the blob and put the download on the record; returns once the event is durable."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._reader is not None:
                self._reader.close()
        finally:
            # committed with the other downloads finishing now, in one transaction; returns once it is durable
            self.session.repo.grouped.run(self._record(aborted))

    def close_later(self, aborted: bool = False) -> Future | None:
        """:meth:`close` for a caller that must not block (an event loop): the blob is closed and the event
        queued for the next group commit; the future completes once the event is durable (or raises). None when
        the record cannot take it at once (or the download is closed already): then :meth:`close` it, from a
        thread."""
        if self._closed:
            return None
        future = self.session.repo.grouped.submit(self._record(aborted))
        if future is None:
            return None
        self._closed = True
        if self._reader is not None:
            self._reader.close()  # a file descriptor or a buffer: nothing that blocks
        return future

    def _record(self, aborted: bool) -> Callable[[object], None]:
        """The record's work for this download as it ends now: complete or aborted, and the receipt."""
        complete = not aborted and self.failure is None and self._contiguous >= self.size
        s = self.session
        nbytes = min(self._served, self.size)
        detail = self.failure or ("" if complete else "client stopped before the end")
        fetched_by = s.loaded_principal.name

        def record(c) -> None:
            s.audit(c, "download", "complete" if complete else "aborted", self.path, document_id=self.doc.id,
                    nbytes=nbytes, detail=detail)
            if complete:
                s.repo.mark_fetched(c, self.doc.id, fetched_by, s.protocol)
        return record


#: the record's detail of a harmless re-send
IDENTICAL = "identical document already delivered; nothing stored"


def earlier_delivery(s, c, inst, path: VPath, sha256: str, size: int, existing: DocumentRow | None) -> str | None:
    """Whether the same content was delivered under this name before: None (no), "" (it is the visible document:
    re-sending is harmless) or, when the centre has archived it since (and the name is free), the sender's message
    saying when it was delivered and archived. Mutable (scratch) centres only look at the visible document."""
    if existing is not None:
        return "" if existing.state == "committed" and existing.sha256 == sha256 and existing.size == size else None
    if inst.mutable:
        return None
    earlier = s.repo.same_content(c, inst.id, path.folder, path.name, sha256, size)
    if earlier is None:
        return None
    if earlier.state != "archived":
        return ""
    return (f"already delivered on {minute(earlier.committed_at, '?')} and archived on "
            f"{minute(earlier.archived_at, '?')} (Brussels time); nothing stored")


class Upload:
    """An upload in progress: bytes go straight into an encrypted temporary blob; nothing is visible until
    :meth:`commit` has validated and committed it. :meth:`abort` (dropped connection) leaves nothing.

    A small upload (up to :attr:`KEEP_FOR_CHECK` bytes, one chunk of the blob format: POD MI's statements and
    lists) also keeps the bytes it was given, so that its content check reads them rather than decrypting the
    blob it just wrote, and runs while that blob is made durable. A front-end hands its buffers over already
    (SFTP: up to 1 MiB at a time), so this holds no copy; a larger upload drops what it kept."""

    KEEP_FOR_CHECK = 256 * 1024

    def __init__(self, session: MailboxSession, path: VPath, doc_id: int, writer, staged: bool):
        self.session = session
        self.path = path
        self.doc_id = doc_id
        self._writer = writer
        self.staged = staged
        self.max_size = session.mailbox.config.documents.max_size
        self._done = False
        #: the plaintext of a small upload as it came (up to KEEP_FOR_CHECK bytes), for the content check
        self._kept: list[bytes] | None = []

    @property
    def size(self) -> int:
        return self._writer.size

    def append(self, data: bytes) -> None:
        """Sequential bytes (the front-end puts out-of-order writes back in order)."""
        if self._done:
            raise UploadFinished()
        if self._writer.size + len(data) > self.max_size:
            raise self.refuse(TooLarge(f"document exceeds the maximum size of {self.max_size} bytes"))
        try:
            self._writer.write(data)
        except ServiceUnavailable as exc:  # the blob store is down: nothing kept, the refusal on the record
            raise self.refuse(exc) from None
        if self._kept is not None:
            if self._writer.size <= self.KEEP_FOR_CHECK:
                self._kept.append(bytes(data))
            else:
                self._kept = None

    def abort(self, reason: str = "upload interrupted") -> None:
        if self._done:
            return
        self._done = True
        s = self.session
        try:
            self._writer.abort()
        finally:
            with s.repo.write() as c:
                s.repo.set_state(c, self.doc_id, ("pending",), "aborted")
                s.audit(c, "upload", "aborted", self.path, document_id=self.doc_id, nbytes=self._writer.size,
                        detail=reason)

    def refuse(self, err: GatewayError) -> GatewayError:
        """The upload breaks a rule (size, content, name...): drop it and record the refusal with its reason.
        Returns ``err`` for the caller to raise."""
        if self._done:
            return err
        self._done = True
        s = self.session
        self._writer.abort()
        with s.repo.write() as c:
            s.repo.set_state(c, self.doc_id, ("pending",), "aborted")
            s.audit(c, "upload", "refused", self.path, document_id=self.doc_id, nbytes=self._writer.size,
                    detail=err.message)
        return err

    @changes_tree
    def commit(self, tail: bytes = b"") -> Entry:
        """Append ``tail`` (the last bytes), finish, validate and commit. Returns the visible entry; raises (after
        cleaning up) on refusal. The blob is finished (its last chunk encrypted, the file made durable) on the
        store's I/O pool while this thread looks for an identical earlier delivery and checks the content of a
        small upload from the copy it kept; the outcome, refusals and their order are those of doing one after
        the other, and the record commits only once the blob is durable in its place."""
        if tail:
            self.append(tail)
        if self._done:
            raise UploadFinished()
        s = self.session
        path = self.path
        kept, self._kept = self._kept, None
        finishing = self._writer.finish_async()
        inst = existing = early = None
        same: str | None = None
        try:
            inst = s.mailbox.institution(path.institution)
            if inst is not None and inst.status == "active":
                if not self.staged:
                    with s.repo.read() as c:
                        existing = s.repo.visible_document(c, inst.id, path.folder, path.name)
                        same = earlier_delivery(s, c, inst, path, self._writer.digest(), self._writer.size,
                                                  existing)
                if kept is not None and same is None and not (existing is not None and not inst.mutable):
                    early = self._check_kept(kept, inst)
        finally:
            try:
                ref = finishing.result()
            except ServiceUnavailable as exc:
                raise self.refuse(exc) from None
        if inst is None or inst.status != "active":
            raise self.refuse(InstitutionNotActive(path.institution, inst.status if inst else "unknown"))
        if same is not None:
            return self._noop(existing, same)
        if existing is not None and not inst.mutable:
            raise self.refuse(AlreadyExists())
        content_type = early if early is not None else self._check_stored(ref, inst)
        if isinstance(content_type, ContentRefused):
            raise self.refuse(content_type)
        try:
            self._writer.commit()
        except ServiceUnavailable as exc:
            raise self.refuse(exc) from None
        return self._record_commit(inst, ref, content_type)

    def _check_kept(self, kept: list[bytes], inst) -> str | ContentRefused:
        """The content check of a small upload, on the plaintext it kept (the bytes the blob holds)."""
        data = kept[0] if len(kept) == 1 else b"".join(kept)
        try:
            return check_content(io.BytesIO(data), len(data), self.session.mailbox.content_policy(inst))
        except ContentRefused as exc:
            return exc

    def _check_stored(self, ref, inst) -> str | ContentRefused:
        """The content check of an upload, decrypting the finished (still temporary) blob."""
        try:
            reader = self._writer.open_reader()
            try:
                return check_content(reader, ref.size, self.session.mailbox.content_policy(inst))
            finally:
                reader.close()
        except ContentRefused as exc:
            return exc
        except ServiceUnavailable as exc:
            raise self.refuse(exc) from None

    def _record_commit(self, inst, ref, content_type: str) -> Entry:
        """The committed blob's document and its record event, in one transaction; the entry it became."""
        s = self.session
        path = self.path
        state = "staged" if self.staged else "committed"
        try:
            with s.repo.write() as c:
                if self.staged:
                    old = s.repo.visible_document(c, inst.id, path.folder, path.name)
                    if old is not None and old.state == "staged" and old.uploaded_by == s.loaded_principal.account_id:
                        s.repo.set_state(c, old.id, ("staged",), "aborted")
                        replaced = old.blob_id
                    else:
                        replaced = None
                if path.folder:
                    s.repo.create_folders(c, inst.id, path.folder, s.loaded_principal.name)
                if inst.mutable and not self.staged:
                    old = s.repo.visible_document(c, inst.id, path.folder, path.name)
                    if old is not None and old.state == "committed":
                        s.repo.set_state(c, old.id, ("committed",), "archived", archived_at=utcnow(),
                                         archived_by=s.loaded_principal.name)
                        s.audit(c, "archive", "ok", path, document_id=old.id, nbytes=old.size,
                                detail="replaced by a new version")
                s.repo.finish_document(c, self.doc_id, state=state, size=ref.size, sha256=ref.sha256,
                                       key_id=ref.key_id, wrapped_key=ref.wrapped_key, content_type=content_type,
                                       filing=None if self.staged else s._filing(path))
                s.audit(c, "upload", "staged" if self.staged else "committed", path, document_id=self.doc_id,
                        nbytes=ref.size, detail=f"sha256={ref.sha256}")
        except Conflict:
            # someone committed the same name meanwhile
            s.mailbox.blobs.delete(ref.blob_id)
            with s.repo.read() as c:
                existing = s.repo.visible_document(c, inst.id, path.folder, path.name)
                same = earlier_delivery(s, c, inst, path, ref.sha256, ref.size, existing)
            if same is not None:
                return self._noop(existing, same)
            raise self.refuse(AlreadyExists())
        except BaseException:
            s.mailbox.blobs.delete(ref.blob_id)
            raise
        self._done = True
        if self.staged and replaced:
            s.mailbox.blobs.delete(replaced)
        return Entry(path.name, False, ref.size, time.time(), DOCUMENT_MODE, self.doc_id, ref.sha256, content_type)

    def _noop(self, existing: DocumentRow | None, earlier: str) -> Entry:
        """An identical document was delivered before: nothing is stored. Still in the mailbox: a harmless
        no-op; archived since (``earlier`` says when): the sender is told so (AlreadyDelivered)."""
        self._done = True
        s = self.session
        size = self._writer.size
        self._writer.abort()
        with s.repo.write() as c:
            s.repo.set_state(c, self.doc_id, ("pending",), "aborted")
            s.audit(c, "upload", "refused" if earlier else "ok", self.path, nbytes=size,
                    document_id=existing.id if existing else None, detail=earlier or IDENTICAL)
        if earlier:
            raise AlreadyDelivered(earlier)
        if existing is not None and (existing.uploaded_by == s.loaded_principal.account_id
                                     or not sees_only_own_documents(s.loaded_principal)):
            return Entry.of_document(existing)
        return Entry(self.path.name, False, size, time.time(), DOCUMENT_MODE)
