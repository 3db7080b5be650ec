"""A logged-in session: the tree of centres' mailboxes as one principal may see and change it.

:class:`MailboxSession` is what the front-ends call for every operation once the client has logged in (one per
SFTP connection, one per WebDAV or web request): listing, stat, downloads and uploads (:mod:`gateway.core.transfer`),
folders, removal (an archive), the rename of a staged upload, WebDAV's copy, move and locks. Every operation is
authorized here (``auth.policy``) and recorded, refusals included.
"""
from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING

from auth.policy import (Action, Decision, LockTarget, decide, decide_lock, held_back_by_others_locks,
                         sees_only_own_documents)
from auth.principal import Principal, Role
from gateway.core import path as vpath
from gateway.core.catalogue import CatalogueViews
from gateway.core.entry import DOCUMENT_MODE, FOLDER_MODE_READ, FOLDER_MODE_WRITE, Entry, epoch
from gateway.core.known import AnsweredFromMemory, Known, changes_tree
from gateway.core.path import VPath
from gateway.core.transfer import IDENTICAL, Download, Upload, earlier_delivery
from storage.blobs.store import BlobRef
from storage.errors import (AlreadyDelivered, AlreadyExists, AuthenticationFailed, Conflict, GatewayError,
                            InstitutionNotActive, InvalidName, NotFound, PermissionDenied)
from storage.repository import AuditRecord, DocumentRow, utcnow

if TYPE_CHECKING:
    from gateway.core.mailbox import Mailbox


class MailboxSession(AnsweredFromMemory, CatalogueViews):
    """One logged-in connection (SFTP) or request (WebDAV); made by :meth:`Mailbox.login
    <gateway.core.mailbox.Mailbox.login>` (or for an internal caller, from :meth:`Mailbox.load_principal
    <gateway.core.mailbox.Mailbox.load_principal>`). What it was just shown is kept in ``known``
    (:mod:`gateway.core.known`) and answered from there by ``stat`` and ``open_download``."""

    def __init__(self, mailbox: Mailbox, principal: Principal, protocol: str, source: str):
        self.mailbox = mailbox
        self.repo = mailbox.repo
        self._principal = principal
        self._loaded = mailbox.clock()
        self._loaded_under = mailbox.principal_epoch()
        self._ended: AuthenticationFailed | None = None
        self.protocol = protocol
        self.source = source
        self.known = Known(mailbox.clock, mailbox.INSTITUTION_TTL)

    # -- identity --------------------------------------------------------------------------------------------
    @property
    def principal(self) -> Principal:
        """Who acts; re-read (account, grants, source ranges) at most ``PRINCIPAL_TTL`` seconds after the last
        time, and on the first use after any process announced a change (:mod:`gateway.core.epochs`), so a
        disabled account, a revoked grant or a new range ends an open session within that bound, on the record."""
        if self._ended is not None:
            raise self._ended
        epoch = self.mailbox.principal_epoch()
        if self.mailbox.clock() - self._loaded > self.mailbox.PRINCIPAL_TTL or epoch != self._loaded_under:
            p = self._principal
            try:
                self._principal = self.mailbox.resume_session(p.account_id, p.name, None, method=p.method,
                                                              source=self.source, protocol=self.protocol)
            except AuthenticationFailed as exc:
                self._ended = exc
                raise
            self._loaded, self._loaded_under = self.mailbox.clock(), epoch
            self.known.forget()  # what it was shown was filtered for the principal as it was
        return self._principal

    @property
    def loaded_principal(self) -> Principal:
        """Who acts, as last loaded, not read again: for finishing an operation already authorized (a transfer's
        record, its new folders) without a re-read that could fail halfway."""
        return self._principal

    def audit(self, c, action: str, outcome: str, path: VPath | None = None, *, document_id: int | None = None,
              nbytes: int | None = None, detail: str = "") -> None:
        """Put this session's ``action`` on ``path`` on the record, in the transaction ``c``."""
        p = self._principal
        self.repo.audit(c, AuditRecord(action, outcome, p.name, self.protocol, self.source,
                                       path.institution if path else None, str(path) if path else "",
                                       document_id, nbytes, detail))

    def _audit_now(self, action: str, outcome: str, path: VPath | None = None, **kw) -> None:
        """Put an event on the record on its own; committed with the other sessions' (group commit), durable
        when this returns."""
        self.repo.grouped.run(lambda c: self.audit(c, action, outcome, path, **kw))

    # -- authorization -----------------------------------------------------------------------------------------
    def _authorize(self, action: Action, path: VPath, *, audit_denial: bool = False):
        """Return the centre row if ``action`` is allowed on ``path``'s centre; raise otherwise.

        A centre the caller may not see answers exactly like one that does not exist.
        """
        inst = self.mailbox.institution(path.institution)
        if inst is None:
            raise NotFound()
        d = decide(self.principal, action, inst.id, inst.status)
        if d is Decision.ALLOWED:
            return inst
        if d is Decision.HIDDEN:
            raise NotFound()
        if d is Decision.NOT_ACTIVE:
            err: GatewayError = InstitutionNotActive(inst.id, inst.status)
        else:
            err = PermissionDenied(f"permission denied: your account may not {action.value} here")
        if audit_denial:
            self._audit_now(action.value, "denied", path, detail=err.message)
        raise err

    def _parse(self, raw: str | bytes | VPath) -> VPath:
        return raw if isinstance(raw, VPath) else vpath.parse(raw)

    def _item(self, raw, on_mailbox: GatewayError, on_root: GatewayError | None = None) -> VPath:
        """A path below a mailbox (a folder or document). For a mailbox itself, ``on_mailbox`` is raised -- after
        checking the caller may see it, so a hidden centre still answers as a missing name; for the root,
        ``on_root`` (default: the same error)."""
        path = self._parse(raw)
        if path.is_mailbox:
            self._authorize(Action.SEE, path)
            raise on_mailbox
        if path.is_root:
            raise on_root or on_mailbox
        return path

    def _visible_doc(self, path: VPath, *, known: bool = False) -> DocumentRow | None:
        """The document at ``path`` as this caller may see it (uploaders: only their own); ``known``: the row this
        session read less than ``known.ttl`` ago will do (reads only: stat, download)."""
        key = (path.institution, path.folder, path.name)
        doc = self.known.row(key) if known else None
        if doc is None:
            ahead = self.known.read_ahead(path.institution, path.folder) if known else 1
            with self.repo.read() as c:
                if ahead == 1:
                    rows = [self.repo.visible_document(c, path.institution, path.folder, path.name)]
                else:  # the rows of the names that follow too: the next gets are answered from memory
                    rows = self.repo.visible_documents_from(c, path.institution, path.folder, path.name, ahead)
            for r in rows if known else ():
                if r is not None:
                    self.known.remember_row((r.institution_id, r.folder, r.name), r)
            doc = rows[0] if rows and rows[0] is not None and rows[0].name == path.name else None
            if doc is None:
                return None
        return doc if self._sees(doc) else None

    def _sees(self, doc: DocumentRow) -> bool:
        own = doc.uploaded_by == self._principal.account_id
        if doc.state == "staged" and not own:
            return False
        return own or not sees_only_own_documents(self._principal)

    def _document(self, path: VPath, *, known: bool = False) -> DocumentRow:
        """The document at ``path`` as this caller sees it; a folder there is 'this is a folder', else NotFound."""
        doc = self._visible_doc(path, known=known)
        if doc is None:
            with self.repo.read() as c:
                if self.repo.folder_exists(c, path.institution, path.relpath):
                    raise PermissionDenied("this is a folder")
            raise NotFound()
        return doc

    def _folder_mode(self, inst) -> int:
        d = decide(self._principal, Action.UPLOAD, inst.id, inst.status)
        return FOLDER_MODE_WRITE if d is Decision.ALLOWED else FOLDER_MODE_READ

    # -- reading the tree --------------------------------------------------------------------------------------
    def stat(self, raw) -> Entry:
        path = self._parse(raw)
        if path.is_root:
            return Entry("/", True, mode=FOLDER_MODE_READ)
        inst = self._authorize(Action.SEE, path)
        if path.is_mailbox:
            return Entry(inst.id, True, mtime=epoch(inst.status_changed_at), mode=self._folder_mode(inst),
                         display_name=inst.name)
        if self._principal.role is Role.SECURITY_CELL:
            raise PermissionDenied("the security cell does not read mailbox contents")
        self._authorize(Action.LIST, path)
        entry = self.known.entry((path.institution, path.folder, path.name))  # in the listing just shown
        if entry is not None:
            return entry
        doc = self._visible_doc(path, known=True)  # documents first: most stats are of documents (a get, ls -l)
        if doc is not None:
            return Entry.of_document(doc)
        with self.repo.read() as c:
            folder = self.repo.folder_row(c, inst.id, path.relpath)
        if folder is None:
            raise NotFound()
        return Entry(path.name, True, mtime=epoch(folder.created_at), mode=self._folder_mode(inst))

    def list(self, raw) -> list[Entry]:
        path = self._parse(raw)
        p = self.principal
        if path.is_root:
            return self._list_root(path)
        inst = self._authorize(Action.LIST, path, audit_denial=True)
        entries: list[Entry] = []
        with self.repo.read() as c:
            if not path.is_mailbox and not self.repo.folder_exists(c, inst.id, path.relpath):
                doc = self.repo.visible_document(c, inst.id, path.folder, path.name)
                if doc is not None and self._visible_doc(path) is not None:
                    raise NotFound("not a folder")
                raise NotFound()
            mode = self._folder_mode(inst)
            for f in self.repo.child_folders(c, inst.id, path.relpath):
                entries.append(Entry(f.path.rsplit("/", 1)[-1], True, mtime=epoch(f.created_at), mode=mode))
            own_only = sees_only_own_documents(p)
            me = p.account_id
            for doc_id, name, size, committed, sha256, ctype, state, uploaded_by, filed in \
                    self.repo.listing(c, inst.id, path.relpath):
                if (own_only or state == "staged") and uploaded_by != me:
                    continue
                entries.append(Entry(name, False, size, epoch(committed), DOCUMENT_MODE, doc_id, sha256, ctype, "",
                                     filed and tuple(filed.split("|"))))
        self._audit_now("list", "ok", path, detail=f"{len(entries)} entries")
        entries.sort(key=lambda e: e.name)
        self.known.remember_listing(inst.id, path.relpath, entries)
        return entries

    def _list_root(self, path: VPath) -> list[Entry]:
        p = self.principal
        with self.repo.read() as c:
            if p.role in (Role.UPLOADER, Role.SECURITY_CELL):
                rows = self.repo.institutions(c)
            else:
                ids = {g.institution_id for g in p.grants}
                if p.institution_id:
                    ids.add(p.institution_id)
                rows = self.repo.institutions(c, ids)
        entries = []
        for inst in rows:
            if decide(p, Action.SEE, inst.id, inst.status) is Decision.ALLOWED:
                entries.append(Entry(inst.id, True, mtime=epoch(inst.status_changed_at),
                                     mode=self._folder_mode(inst), display_name=inst.name))
        self._audit_now("list", "ok", path, detail=f"{len(entries)} centres")
        return entries

    # -- downloads ----------------------------------------------------------------------------------------------
    def open_download(self, raw, seen: Entry | None = None) -> Download:
        """``seen``: the entry :meth:`stat` just gave for ``raw`` (its row is not read again); authorized anyway."""
        path = self._parse(raw)
        if path.is_root or path.is_mailbox:
            raise PermissionDenied("this is a folder")
        self._authorize(Action.READ, path, audit_denial=True)
        doc = seen.row if seen is not None else None
        if doc is None or (doc.institution_id, doc.folder, doc.name) != (path.institution, path.folder, path.name):
            doc = self._document(path, known=True)
        if doc.state != "committed":
            raise NotFound()
        return self._download(path, doc, opened=True)

    def _download(self, path: VPath, doc: DocumentRow, *, opened: bool) -> Download:
        """A download of ``doc``, authorized by the caller; its blob opened now, or by its first read."""
        ref = BlobRef(doc.blob_id, doc.size, doc.sha256, doc.key_id, doc.wrapped_key)
        open_reader = functools.partial(self.mailbox.blobs.open, ref, verify=True)
        return Download(self, path, doc, open_reader() if opened else None, open_reader)

    # -- uploads ------------------------------------------------------------------------------------------------
    def _is_temporary_name(self, name: str) -> bool:
        docs = self.mailbox.config.documents
        return vpath.is_temporary_name(name, suffixes=docs.temporary_suffixes, patterns=docs.temporary_patterns)

    def _upload_target(self, raw) -> tuple[VPath, object]:
        """What an upload starts with, every refusal recorded: a document's name inside a mailbox the caller may
        write to, valid as a new name. Returns the path and the centre."""
        path = self._parse(raw)
        if path.is_root or path.is_mailbox:
            err = PermissionDenied("uploads go into a centre's mailbox, as a document")
            self._audit_now("upload", "denied", path, detail=err.message)
            raise err
        inst = self._authorize(Action.UPLOAD, path, audit_denial=True)
        self._check_new_name("upload", path, is_folder=False)
        return path, inst

    def _check_new_name(self, action: str, path: VPath, *, is_folder: bool) -> None:
        """The naming rules for something about to be created; a refusal is recorded under ``action``."""
        cfg = self.mailbox.config.documents
        try:
            vpath.check_new_name(path, max_depth=cfg.max_depth, max_name_length=cfg.max_name_length,
                                 is_folder=is_folder)
        except InvalidName as exc:
            self._audit_now(action, "refused", path, detail=exc.message)
            raise

    def may_upload(self, raw) -> None:
        """The checks :meth:`open_upload` starts with (refusals recorded), for a front-end whose server looks the
        name up before it would upload (WebDAV): the refusal is then the core's, on the record, as over SFTP."""
        self._upload_target(raw)

    def open_upload(self, raw) -> Upload:
        path, inst = self._upload_target(raw)
        with self.repo.read() as c:
            if self.repo.folder_exists(c, inst.id, path.relpath):
                raise AlreadyExists("a folder with this name exists")
            for i in range(1, len(path.parts)):
                if self.repo.visible_document(c, inst.id, "/".join(path.parts[:i - 1]), path.parts[i - 1]):
                    raise NotFound()
        writer = self.mailbox.blobs.create()
        try:
            with self.repo.write() as c:
                doc_id = self.repo.create_pending(c, institution_id=inst.id, folder=path.folder, name=path.name,
                                                  blob_id=writer.blob_id, uploaded_by=self._principal.account_id,
                                                  node_id=self.mailbox.owner)
        except Exception:
            writer.abort()
            raise
        return Upload(self, path, doc_id, writer, staged=self._is_temporary_name(path.name))

    # -- folders ------------------------------------------------------------------------------------------------
    def _mkdir_target(self, raw) -> tuple[VPath, object]:
        """What a mkdir starts with (refusals recorded): a new folder's name below a mailbox the caller may write
        to. Returns the path and the centre."""
        path = self._item(raw, AlreadyExists("this folder already exists"), PermissionDenied())
        inst = self._authorize(Action.MKDIR, path, audit_denial=True)
        self._check_new_name("mkdir", path, is_folder=True)
        return path, inst

    def may_mkdir(self, raw) -> None:
        """The checks :meth:`mkdir` starts with (refusals recorded); see :meth:`may_upload`."""
        self._mkdir_target(raw)

    def mkdir(self, raw) -> None:
        path, inst = self._mkdir_target(raw)
        with self.repo.write() as c:
            for i in range(1, len(path.parts) + 1):
                if self.repo.visible_document(c, inst.id, "/".join(path.parts[:i - 1]), path.parts[i - 1]):
                    raise AlreadyExists("a document with this name exists")
            if not self.repo.create_folders(c, inst.id, path.relpath, self._principal.name):
                raise AlreadyExists("this folder already exists")
            self.audit(c, "mkdir", "ok", path)

    @changes_tree
    def rmdir(self, raw) -> None:
        path = self._removal_path(raw)
        inst = self._authorize(Action.ARCHIVE, path, audit_denial=True)
        with self.repo.write() as c:
            if not self.repo.folder_exists(c, inst.id, path.relpath):
                raise NotFound()
            if self.repo.has_children(c, inst.id, path.relpath):
                raise PermissionDenied("the folder is not empty")
            self.repo.delete_folder(c, inst.id, path.relpath)
            self.audit(c, "rmdir", "ok", path)

    # -- removal = archive -----------------------------------------------------------------------------------
    def _removal_path(self, raw) -> VPath:
        """A path below a mailbox, to remove: a mailbox itself (or the root) is refused on the record -- a
        WebDAV DELETE of a mailbox would otherwise remove every document in it, one by one, before failing."""
        path = self._parse(raw)
        if path.is_root or path.is_mailbox:
            if path.is_mailbox:
                self._authorize(Action.SEE, path)  # a hidden centre answers as a missing one
            err = PermissionDenied("a centre's mailbox cannot be removed")
            self._audit_now("archive", "denied", path, detail=err.message)
            raise err
        return path

    def _removal_target(self, raw) -> tuple[VPath, DocumentRow | None]:
        """What a removal (archive, rmdir) starts with (refusals recorded): a path below a mailbox and the right to
        remove there -- or an uploader's own staged upload, returned, which it may always cancel."""
        path = self._removal_path(raw)
        if self.principal.role is Role.UPLOADER:
            doc = self._visible_doc(path)  # only its own uploads are visible to an uploader
            if doc is not None and doc.state == "staged":
                return path, doc
        self._authorize(Action.ARCHIVE, path, audit_denial=True)
        return path, None

    def may_remove(self, raw) -> None:
        """The checks :meth:`archive` and :meth:`rmdir` start with (refusals recorded); see :meth:`may_upload`."""
        self._removal_target(raw)

    @changes_tree
    def archive(self, raw) -> None:
        path, staged = self._removal_target(raw)
        if staged is not None:
            # cancelling its own unfinished upload (WinSCP removes its .filepart)
            with self.repo.write() as c:
                if self.repo.set_state(c, staged.id, ("staged",), "aborted"):
                    self.audit(c, "upload", "aborted", path, document_id=staged.id, detail="staged upload removed")
            self.mailbox.blobs.delete(staged.blob_id)
            return
        doc = self._document(path)
        with self.repo.write() as c:
            if not self.repo.set_state(c, doc.id, ("committed",), "archived", archived_at=utcnow(),
                                       archived_by=self._principal.name):
                raise NotFound()
            self.audit(c, "archive", "ok", path, document_id=doc.id, nbytes=doc.size)

    # -- rename: only a staged upload onto its final name ----------------------------------------------------
    @changes_tree
    def rename(self, raw_src, raw_dst) -> None:
        src, dst = self._parse(raw_src), self._parse(raw_dst)
        if self.principal.role is not Role.UPLOADER:
            self.stat(src)  # not visible -> NotFound, exactly as a missing name
            raise self._no_rename(src, dst)
        doc = self._visible_doc(src) if not (src.is_root or src.is_mailbox) else None
        if doc is None:
            raise NotFound()
        if doc.state != "staged":
            raise self._no_rename(src, dst)
        if dst.is_root or dst.is_mailbox or dst.institution != src.institution:
            raise PermissionDenied("a staged upload can only be renamed within its centre")
        inst = self._authorize(Action.UPLOAD, dst, audit_denial=True)
        cfg = self.mailbox.config.documents
        vpath.check_new_name(dst, max_depth=cfg.max_depth, max_name_length=cfg.max_name_length, is_folder=False)
        if self._is_temporary_name(dst.name):
            raise InvalidName("the final name may not end in a temporary-upload suffix")
        refused: GatewayError | None = None
        drop_blob = False
        with self.repo.write() as c:
            if self.repo.folder_exists(c, inst.id, dst.relpath):
                raise AlreadyExists("a folder with this name exists")
            existing = self.repo.visible_document(c, inst.id, dst.folder, dst.name)
            earlier = earlier_delivery(self, c, inst, dst, doc.sha256, doc.size, existing)
            if earlier is not None:
                self.repo.set_state(c, doc.id, ("staged",), "aborted")
                self.audit(c, "upload", "refused" if earlier else "ok", dst, nbytes=doc.size,
                           document_id=existing.id if existing else None, detail=earlier or IDENTICAL)
                refused, drop_blob = (AlreadyDelivered(earlier) if earlier else None), True
            elif existing is not None:
                refused = AlreadyExists()
                self.audit(c, "upload", "refused", dst, nbytes=doc.size, detail="name exists with different content")
            else:
                if dst.folder:
                    self.repo.create_folders(c, inst.id, dst.folder, self._principal.name)
                try:
                    self.repo.promote_staged(c, doc.id, dst.folder, dst.name, self._filing(dst))
                except Conflict:
                    raise AlreadyExists() from None
                self.audit(c, "upload", "committed", dst, document_id=doc.id, nbytes=doc.size,
                           detail=f"sha256={doc.sha256}; renamed from {src.name}")
        if drop_blob:
            self.mailbox.blobs.delete(doc.blob_id)
        if refused is not None:
            raise refused

    def _no_rename(self, src: VPath, dst: VPath) -> PermissionDenied:
        """The refusal of renaming a committed document (SFTP rename, WebDAV MOVE), recorded; returned to raise."""
        err = PermissionDenied("documents cannot be renamed or moved; a correction is sent as a new document")
        self._audit_now("move", "denied", src, detail=f"{err.message}; to {dst}")
        return err

    # -- copy and move (WebDAV) --------------------------------------------------------------------------------
    def _same_centre(self, src: VPath, dst: VPath, action: str) -> None:
        if src.is_root or src.is_mailbox or dst.is_root or dst.is_mailbox or src.institution != dst.institution:
            err = PermissionDenied("documents can only be copied or moved inside one centre's mailbox")
            self._audit_now(action, "denied", src, detail=f"{err.message}; to {dst}")
            raise err

    def may_copy_or_move(self, raw_src, raw_dst, *, move: bool) -> None:
        """The checks :meth:`copy_document` and :meth:`move` start with: a source the caller sees, a destination
        in the same centre (refused on the record); see :meth:`may_upload`."""
        src, dst = self._parse(raw_src), self._parse(raw_dst)
        self.stat(src)  # hidden -> NotFound
        self._same_centre(src, dst, "move" if move else "copy")

    def copy_document(self, raw_src, raw_dst) -> Entry:
        """A new document with the content of ``src`` (a correction or duplicate is always a new document)."""
        src, dst = self._parse(raw_src), self._parse(raw_dst)
        self.stat(src)  # hidden -> NotFound
        self._same_centre(src, dst, "copy")
        download = self.open_download(src)
        try:
            upload = self.open_upload(dst)
            try:
                for offset in range(0, download.size, 1024 * 1024):
                    upload.append(download.read(offset, 1024 * 1024))
            except BaseException:
                upload.abort("copy failed")
                raise
        finally:
            download.close()
        return upload.commit()

    @changes_tree
    def move(self, raw_src, raw_dst) -> None:
        """Move a document or folder to a free name in a mutable (scratch) centre; a staged upload onto its final
        name anywhere. Immutable centres never rename committed documents."""
        src, dst = self._parse(raw_src), self._parse(raw_dst)
        entry = self.stat(src)  # hidden -> NotFound
        self._same_centre(src, dst, "move")
        doc = None if entry.is_folder else self._visible_doc(src)
        if doc is not None and doc.state == "staged":
            return self.rename(src, dst)
        inst = self._authorize(Action.UPLOAD, dst, audit_denial=True)
        self._authorize(Action.ARCHIVE, src, audit_denial=True)
        if not inst.mutable:
            raise self._no_rename(src, dst)
        cfg = self.mailbox.config.documents
        vpath.check_new_name(dst, max_depth=cfg.max_depth, max_name_length=cfg.max_name_length,
                             is_folder=entry.is_folder)
        if entry.is_folder and (dst.parts[:len(src.parts)] == src.parts):
            raise PermissionDenied("a folder cannot be moved into itself")
        with self.repo.write() as c:
            if self.repo.folder_exists(c, inst.id, dst.relpath) or \
                    self.repo.visible_document(c, inst.id, dst.folder, dst.name):
                raise AlreadyExists("the destination exists")
            if dst.folder and not self.repo.folder_exists(c, inst.id, dst.folder):
                raise NotFound("the destination folder does not exist")
            if entry.is_folder:
                self.repo.move_tree(c, inst.id, src.relpath, dst.relpath)
            else:
                try:
                    self.repo.move_document(c, doc.id, dst.folder, dst.name, self._filing(dst))
                except Conflict:
                    raise AlreadyExists("the destination exists") from None
            self.audit(c, "move", "ok", src, document_id=doc.id if doc else None, detail=f"to {dst}")

    def check_writable(self, raw) -> None:
        """Metadata writes (WebDAV PROPPATCH) need the right to write in the centre (refusals recorded)."""
        path = self._parse(raw)
        if path.is_root:
            err = PermissionDenied()
            self._audit_now("upload", "denied", path, detail=f"properties: {err.message}")
            raise err
        self._authorize(Action.UPLOAD, path, audit_denial=True)

    # -- WebDAV locks: a write permission ------------------------------------------------------------------------
    _LOCK_REFUSALS = {
        LockTarget.ROOT: "the top level holds the centres' mailboxes only; nothing there can be locked",
        LockTarget.MAILBOX: "permission denied: your account may not write in this mailbox, so it may not lock it",
        LockTarget.FOLDER: "permission denied: your account may not write here, so it may not lock here",
        LockTarget.FREE_NAME: "permission denied: your account may not create this name, so it may not lock it",
        LockTarget.DOCUMENT: "permission denied: your account may neither write nor remove here, so it may not "
                             "lock this document",
    }

    def authorize_lock(self, raw, *, depth: str, timeout: float | None, owner: str | None = None) -> int:
        """May the caller lock ``raw`` (``owner``: who holds the lock a refresh extends; None for a new lock)?
        Returns the seconds the lock may last: the asked ``timeout`` (None: none asked; negative: infinite) capped
        to webdav.lock_max_seconds. Refused, on the record with the reason: what :func:`decide_lock` refuses, a new
        lock beyond webdav.locks_per_account, a refresh of another account's lock."""
        target, path, inst = self._lock_target(raw)
        cfg = self.mailbox.config.webdav
        d = decide_lock(self.principal, target, inst.id if inst else None, inst.status if inst else "")
        if d is Decision.HIDDEN:
            raise NotFound()
        if d is Decision.NOT_ACTIVE:
            err: GatewayError = InstitutionNotActive(inst.id, inst.status)
        elif d is not Decision.ALLOWED:
            err = PermissionDenied(self._LOCK_REFUSALS[target])
        elif owner is not None and owner != self.principal.name:
            err = PermissionDenied("permission denied: a lock is refreshed only by the account that holds it")
        elif owner is None and self._locks_held() >= cfg.locks_per_account:
            err = PermissionDenied(f"too many locks: an account holds at most {cfg.locks_per_account} at once; "
                                   "unlock some or let them expire")
        else:
            return cfg.lock_max_seconds if timeout is None or timeout < 0 else \
                max(1, min(int(timeout), cfg.lock_max_seconds))
        asked = vpath.normalize(str(raw)) if target is LockTarget.ROOT else str(path)
        self._audit_now("lock", "denied", path, detail=f"{err.message}; {target.value} {asked}, depth {depth}, "
                                                       f"{'refresh' if owner is not None else 'new lock'}")
        raise err

    def _lock_target(self, raw) -> tuple[LockTarget, VPath, object]:
        """What a lock on ``raw`` would cover, the path and its centre. A top-level name that is no centre the
        caller sees (a hidden centre, a missing one, any other name) is the top level itself, so that all of them
        get the same answer."""
        try:
            path = self._parse(raw)
        except NotFound:
            if vpath.normalize(raw).count("/") > 1:
                raise
            return LockTarget.ROOT, vpath.ROOT, None
        if path.is_root:
            return LockTarget.ROOT, path, None
        inst = self.mailbox.institution(path.institution)
        seen = inst is not None and decide(self.principal, Action.SEE, inst.id, inst.status) is not Decision.HIDDEN
        if path.is_mailbox:
            return (LockTarget.MAILBOX, path, inst) if seen else (LockTarget.ROOT, vpath.ROOT, None)
        if not seen:
            raise NotFound()
        if self._visible_doc(path) is not None:
            return LockTarget.DOCUMENT, path, inst
        with self.repo.read() as c:
            folder = self.repo.folder_exists(c, inst.id, path.relpath)
        return (LockTarget.FOLDER if folder else LockTarget.FREE_NAME), path, inst

    def _locks_held(self) -> int:
        with self.repo.read() as c:
            return self.repo.dav_locks_held(c, self.principal.name, time.time())

    def held_back_by_others_locks(self) -> bool:
        """Whether other accounts' WebDAV locks hold this caller's writes back (never POD MI's deliveries)."""
        return held_back_by_others_locks(self.principal)

    def setstat_allowed(self, raw) -> None:
        """Clients set times after an upload (WinSCP, rsync-like tools). Documents keep their delivery time; the
        request is accepted and ignored for what the caller may see, refused as not found otherwise."""
        self.stat(raw)

    def close(self) -> None:
        pass
