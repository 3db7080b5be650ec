"""The WebDAV front-end's DAV provider: the core's virtual tree as wsgidav resources (folders, documents, and the
Finder/Windows junk names answered but never stored), each operation one ``MailboxSession`` call. No filesystem
behind it, and no rule decided here.
"""
from __future__ import annotations

import io
import logging
import mimetypes
from urllib.parse import quote

from wsgidav.dav_error import HTTP_BAD_REQUEST, HTTP_FORBIDDEN
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider

from gateway.core import path as vpath
from gateway.core.entry import Entry
from gateway.core.session import MailboxSession
from gateway.dav import filingprops
from gateway.dav.domain import session_of
from gateway.dav.errors import GatewayDAVError, core_call, to_dav_error
from storage.errors import AlreadyExists, GatewayError, NotFound

log = logging.getLogger("instpages.webdav")

# Finder's resource forks and folder settings: answered, never stored
_JUNK_PREFIXES = ("._",)
_JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini", ".localized"}


def is_junk(name: str) -> bool:
    """A Finder resource fork or folder setting: answered, never stored."""
    return name in _JUNK_NAMES or name.startswith(_JUNK_PREFIXES)


#: environ key: what the core found at each path during this request, for the methods that change nothing
_FOUND = "instpages.found"
_READ_ONLY = frozenset(("GET", "HEAD", "PROPFIND"))


def lookup(session: MailboxSession, path: str, environ: dict) -> tuple[vpath.VPath, Entry] | None:
    """The entry at ``path`` as this session sees it; None when there is none. A request that changes nothing asks
    the core once per path: the middlewares look the target up before wsgidav does (a GET asked three times)."""
    memo = environ.setdefault(_FOUND, {}) if environ.get("REQUEST_METHOD") in _READ_ONLY else None
    if memo is not None and path in memo:
        return memo[path]
    try:
        vp = vpath.parse(path)
        found = vp, session.stat(vp)
    except NotFound:
        found = None
    except GatewayError as exc:
        raise to_dav_error(exc) from None
    if memo is not None:
        memo[path] = found
    return found


class _Common:
    entry: Entry
    vp: vpath.VPath

    def get_display_name(self):
        return self.entry.display_name or self.entry.name

    def get_creation_date(self):
        return self.entry.mtime

    def get_last_modified(self):
        return self.entry.mtime

    def _check_writable(self):
        """PROPPATCH and other metadata writes need write permission in the centre."""
        core_call(self.session.check_writable, self.vp)

    def set_property_value(self, name, value, *, dry_run=False):
        if filingprops.is_ours(name):  # the filing: read-only for everyone (refused once: at the dry run)
            raise filingprops.refuse_change(self.session, self.vp, name)
        self._check_writable()
        return super().set_property_value(name, value, dry_run=dry_run)

    def get_property_names(self, *, is_allprop):
        """wsgidav's names, and the document's filing (:mod:`gateway.dav.filingprops`; none when unclassified)."""
        names = super().get_property_names(is_allprop=is_allprop)
        return [n for n in names if not filingprops.is_ours(n)] + filingprops.names(self.entry)

    def get_property_value(self, name):
        if filingprops.is_ours(name):
            return filingprops.element(self.entry, name)
        return super().get_property_value(name)

    def set_last_modified(self, dest_path, time_stamp, *, dry_run):
        """Windows sets Win32LastModifiedTime after a copy; documents keep their delivery time, and the
        request is accepted so that Explorer does not report an error."""
        return True


class FolderResource(_Common, DAVCollection):
    def __init__(self, path: str, environ: dict, session: MailboxSession, vp: vpath.VPath, entry: Entry):
        super().__init__(path, environ)
        self.session, self.vp, self.entry = session, vp, entry
        self._members: list[Entry] | None = None

    def get_etag(self):
        return None

    def _list(self) -> list[Entry]:
        if self._members is None:
            self._members = core_call(self.session.list, self.vp)
        return self._members

    def get_member_names(self):
        return [e.name for e in self._list()]

    def get_member_list(self):
        base = self.path.rstrip("/") + "/"
        return [make_resource(base + e.name + ("/" if e.is_folder else ""), self.environ, self.session,
                              self.vp.child(e.name), e) for e in self._list()]

    def get_member(self, name):
        for e in self._list():
            if e.name == name:
                return make_resource(self.path.rstrip("/") + "/" + name, self.environ, self.session,
                                     self.vp.child(name), e)
        return None

    def create_empty_resource(self, name):
        if is_junk(name):
            return JunkResource(self.path.rstrip("/") + "/" + name, self.environ)
        return DocumentResource(self.path.rstrip("/") + "/" + name, self.environ, self.session,
                                self.vp.child(name), None)

    def create_collection(self, name):
        core_call(self.session.mkdir, self.vp.child(name))

    def delete(self):
        # wsgidav also calls this on the destination of MOVE/COPY with Overwrite: T and expects it to be recursive
        self._members = None  # a DELETE request may have removed members since they were listed
        for member in self.get_member_list():
            member.delete()
        core_call(self.session.rmdir, self.vp)
        self.remove_all_properties(recursive=True)
        self.remove_all_locks(recursive=True)

    def support_recursive_delete(self):
        return False

    def copy_move_single(self, dest_path, *, is_move):
        if is_move:
            raise GatewayDAVError(HTTP_FORBIDDEN, "folders are moved as a whole")
        dest = vpath.parse(dest_path)
        try:
            self.session.mkdir(dest)
        except AlreadyExists:  # COPY onto an existing folder (Overwrite: T) keeps it and merges into it
            if not core_call(self.session.stat, dest).is_folder:
                raise to_dav_error(AlreadyExists()) from None
        except GatewayError as exc:
            raise to_dav_error(exc) from None
        pm = self.provider.prop_manager
        if pm:
            pm.copy_properties(self.get_ref_url(), _ref_url(self.provider, dest_path, collection=True))

    def support_recursive_move(self, dest_path):
        return True

    def move_recursive(self, dest_path):
        core_call(self.session.move, self.vp, vpath.parse(dest_path))
        pm = self.provider.prop_manager
        if pm:
            pm.move_properties(self.get_ref_url(), _ref_url(self.provider, dest_path, collection=True),
                               with_children=True)
        return []


class _DownloadStream(io.RawIOBase):
    """File-like view of a core Download for wsgidav's GET (ranges seek); closing it records the download."""

    def __init__(self, download):
        self._d = download
        self._pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._d.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self):
        return self._pos

    def read(self, size=-1):
        if size is None or size < 0:
            size = self._d.size - self._pos
        data = core_call(self._d.read, self._pos, size)
        self._pos += len(data)
        if data and self._pos < self._d.size:
            self._d.prefetch(self._pos, size)  # wsgidav reads in order: decrypt the next block while this one goes
        return data

    def readinto(self, b):
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self):
        if not self.closed:
            try:
                self._d.close()
            finally:
                super().close()


class _UploadSink:
    """What wsgidav writes the PUT body into: the core's atomic upload."""

    def __init__(self, upload):
        self.upload = upload
        self.received = 0

    def write(self, data):
        self.received += len(data)
        core_call(self.upload.append, bytes(data))

    def close(self):
        pass  # the commit happens in end_write, which knows whether the body arrived whole


class DocumentResource(_Common, DAVNonCollection):
    def __init__(self, path, environ, session: MailboxSession, vp: vpath.VPath, entry: Entry | None):
        super().__init__(path, environ)
        self.session, self.vp = session, vp
        self.entry = entry or Entry(vp.name, False)
        self._sink: _UploadSink | None = None

    def get_content_length(self):
        return self.entry.size

    def get_content_type(self):
        return self.entry.content_type or mimetypes.guess_type(self.entry.name)[0] or "application/octet-stream"

    def get_etag(self):
        return self.entry.sha256[:40] or None

    def support_etag(self):
        return True

    def support_ranges(self):
        return True

    def get_content(self):
        return _DownloadStream(core_call(self.session.open_download, self.vp, self.entry))

    def begin_write(self, *, content_type=None):
        self._sink = _UploadSink(core_call(self.session.open_upload, self.vp))
        return self._sink

    def end_write(self, *, with_errors):
        sink, self._sink = self._sink, None
        if sink is None:
            return
        expected = self.environ.get("CONTENT_LENGTH")
        if not with_errors and expected not in (None, ""):
            try:
                short = int(expected) != sink.received
            except ValueError:
                short = True
            if short:
                with_errors = True
                log.info("PUT %s: received %d of %s bytes", self.vp, sink.received, expected)
        if with_errors or self.environ.get("wsgidav.all_input_read") != 1 and expected in (None, ""):
            core_call(sink.upload.abort, "request body incomplete (client gone or length short of Content-Length)")
            if not with_errors:
                raise GatewayDAVError(HTTP_BAD_REQUEST, "request body incomplete; nothing was stored")
            return
        self.entry = core_call(sink.upload.commit)

    def delete(self):
        core_call(self.session.archive, self.vp)
        self.remove_all_properties(recursive=False)
        self.remove_all_locks(recursive=False)

    def copy_move_single(self, dest_path, *, is_move):
        dst = vpath.parse(dest_path)
        if is_move:
            core_call(self.session.move, self.vp, dst)
        else:
            core_call(self.session.copy_document, self.vp, dst)
        pm = self.provider.prop_manager
        if pm:
            dest_ref = _ref_url(self.provider, dest_path)
            if is_move:
                pm.move_properties(self.get_ref_url(), dest_ref, with_children=False)
            else:
                pm.copy_properties(self.get_ref_url(), dest_ref)

    def support_recursive_move(self, dest_path):
        return True  # otherwise wsgidav deletes the source again after copy_move_single moved it

    def move_recursive(self, dest_path):
        self.copy_move_single(dest_path, is_move=True)
        return []


class JunkResource(DAVNonCollection):
    """``._*`` and ``.DS_Store`` from Finder: accepted and dropped, so the drive stays clean."""

    def get_content_length(self):
        return 0

    def get_content_type(self):
        return "application/octet-stream"

    def get_etag(self):
        return None

    def support_etag(self):
        return False

    def get_content(self):
        return io.BytesIO(b"")

    def begin_write(self, *, content_type=None):
        return io.BytesIO()

    def end_write(self, *, with_errors):
        pass

    def delete(self):
        pass


def _ref_url(provider, path: str, collection: bool = False) -> str:
    return quote(provider.share_path + path.rstrip("/") + ("/" if collection and path != "/" else ""))


def make_resource(path: str, environ: dict, session: MailboxSession, vp: vpath.VPath, entry: Entry):
    if entry.is_folder:
        return FolderResource(path, environ, session, vp, entry)
    return DocumentResource(path, environ, session, vp, entry)


class MailboxProvider(DAVProvider):
    """The virtual tree of the core as DAV resources; no filesystem behind it."""

    def is_readonly(self):
        return False

    def get_resource_inst(self, path: str, environ: dict):
        session = session_of(environ)
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if is_junk(name):
            return None
        found = lookup(session, path, environ)
        if found is None:
            return self._locked_placeholder(path, environ, session)
        return make_resource(path, environ, session, *found)

    def _locked_placeholder(self, path: str, environ: dict, session: MailboxSession):
        """LOCK on a name that holds nothing yet (Windows and Office lock before they PUT): the locked name is a
        placeholder until the PUT stores the document. Nothing is stored for it."""
        if not self.lock_manager or path.endswith("/") or not self.lock_manager.get_url_lock_list(
                _ref_url(self, path)):
            return None
        try:
            vp = vpath.parse(path)
            if session.stat(vp.parent).is_folder:
                return DocumentResource(path, environ, session, vp, None)
        except GatewayError:
            pass
        return None
