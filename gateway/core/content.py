"""The content rule: only PDF documents, recognised by their content (never by their name), and no active content.

``check_content(stream, size, policy)`` validates the *plaintext* of an upload and either returns its content type
or raises :class:`~storage.errors.ContentRefused` with a short, specific reason that is safe to show the sender.

What is checked, in this order (cheapest first):

1. ``size == 0`` -> "empty file" (whatever the policy: an empty upload is never a document).
2. Policy ``"*"`` / ``"*/*"``: nothing else is checked; the type is sniffed from the first bytes only.
3. The content starts with ``%PDF-`` **at offset 0**. This is deliberately strict: PDF readers tolerate up to 1 KiB of
   junk before the header, and qpdf even finds a PDF stored inside a small ZIP archive that way, but no correct
   producer writes anything before ``%PDF-``, and a document that is really something else must not slip through.
4. ``%%EOF`` occurs in the last 1 KiB (catches plainly truncated uploads without parsing anything).
5. The declared ``size`` matches the length of the stream.
6. ``pikepdf.open(..., attempt_recovery=False)``: with the default (``True``) qpdf silently rebuilds a broken xref
   and opens truncated files. Any pikepdf/qpdf error -> "damaged or truncated PDF: <fixed short detail>".
   Password-protected *and* owner-password-only encrypted files (which open without a password) are refused.
7. Every object is loaded (``pdf.objects``); qpdf replaces an object it cannot read with ``null`` and records a
   warning even without recovery, so **any qpdf warning is treated as damage**, except three harmless line-ending
   nits after the ``stream`` keyword (see ``_HARMLESS_WARNINGS``). A document with no pages is refused.
8. Unless ``allow_active_content``, every object is inspected: each indirect object once (``objgen`` guard), with
   its direct dictionaries/arrays and streams' dictionaries; indirect children are not followed (they are
   enumerated themselves), so reference cycles cannot loop. Stream *data* is never read or decoded: a 20 MB
   image-heavy document costs about 100 KB of reads. See ``_find_active_content`` for what is flagged.

The stream is wrapped in a read-only adapter that has no ``fileno()`` (pikepdf would otherwise memory-map a real file
descriptor -- which, for a decrypting reader wrapping an encrypted file, would be the *ciphertext*), is read through
in full-buffer reads even if the underlying reader returns short reads, and is never closed. Nothing is written to
disk. Exceptions raised by the stream itself (``OSError``, ``IntegrityFailure`` from a decrypting reader, ...) pass
through unchanged. The stream position is restored afterwards.

Reasons never quote document content: details are fixed phrases plus, at most, object numbers and byte offsets.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

import pikepdf
from pikepdf import Array, Dictionary, Name, Stream, String

from storage.errors import ConfigError, ContentRefused
from storage.fsio import ReadOnlyStream

__all__ = [
    "ContentPolicy",
    "check_content",
    "PDF_TYPE",
    "ANY_TYPE",
    "REASON_EMPTY",
    "REASON_NOT_PDF",
    "REASON_ENCRYPTED",
]

log = logging.getLogger("gateway.content")  # its name from before the move to gateway/core/

PDF_TYPE = "application/pdf"
ANY_TYPE = "application/octet-stream"  # returned for non-PDF content accepted by a "*" policy
_WILDCARDS = frozenset({"*", "*/*"})
_SUPPORTED_TYPES = frozenset({PDF_TYPE})

TAIL_WINDOW = 1024  # %%EOF must occur in this many last bytes
_READ_BUFFER = 4096  # qpdf issues many small reads, seeks and tells; serve them from a C-level buffer

REASON_EMPTY = "empty file"
REASON_NOT_PDF = "not a PDF document (the content does not start with %PDF-)"
REASON_ENCRYPTED = "encrypted PDF documents are not accepted"
_DAMAGED = "damaged or truncated PDF: {}"
_ACTIVE = "PDF contains active content ({}) \u2014 not accepted"


@dataclass(frozen=True)
class ContentPolicy:
    """Which content an institution accepts.

    ``allowed_types``: ``{"application/pdf"}`` (the default), or a set containing ``"*"`` / ``"*/*"`` meaning any
    content is accepted unchecked. Values are normalised (lower-case, stripped). Other types are refused at
    construction with :class:`ConfigError` because no checker exists for them yet.
    ``allow_active_content``: accept PDFs with JavaScript, attachments, launch actions... (structure, encryption and
    damage are still checked).
    """

    allowed_types: frozenset[str] = field(default_factory=lambda: frozenset({PDF_TYPE}))
    allow_active_content: bool = False

    def __post_init__(self) -> None:
        raw = self.allowed_types
        if isinstance(raw, str) or not isinstance(raw, Iterable):
            raise ConfigError("content policy allowed_types: expected a set of content types")
        types = frozenset(str(t).strip().lower() for t in raw)
        if not types:
            raise ConfigError("content policy allowed_types: empty (use application/pdf, or * for any content)")
        unknown = sorted(types - _SUPPORTED_TYPES - _WILDCARDS)
        if unknown:
            raise ConfigError(
                f"content policy allowed_types: unsupported content type {unknown[0]!r} "
                "(supported: application/pdf, or * for any content)"
            )
        object.__setattr__(self, "allowed_types", types)

    @property
    def accepts_anything(self) -> bool:
        return not self.allowed_types.isdisjoint(_WILDCARDS)


DEFAULT_POLICY = ContentPolicy()


def check_content(stream: BinaryIO, size: int, policy: ContentPolicy = DEFAULT_POLICY) -> str:
    """Validate the plaintext of an upload; `stream` is a seekable binary file-like object (it may be a decrypting
    reader, not a real file -- ``fileno()`` and paths are never used). `size` is the plaintext length in bytes.

    Returns the content type: ``"application/pdf"``, or ``"application/octet-stream"`` for non-PDF content accepted
    by a ``"*"`` policy. Raises :class:`ContentRefused` with a clear, specific, user-facing reason, e.g.
    "empty file", "not a PDF document (the content does not start with %PDF-)",
    "damaged or truncated PDF: <short detail>", "encrypted PDF documents are not accepted",
    "PDF contains active content (JavaScript) \u2014 not accepted" (or launch action, embedded file, XFA form, ...).
    Errors raised by the stream itself propagate unchanged. The stream position is restored on return.
    """
    if size < 0:
        raise ValueError("size must be >= 0")
    if size == 0:
        raise ContentRefused(REASON_EMPTY)

    original_pos = stream.tell()
    try:
        head = _read_at(stream, 0, 8)
        if policy.accepts_anything:
            return PDF_TYPE if head.startswith(b"%PDF-") else ANY_TYPE
        if not head.startswith(b"%PDF-"):
            raise ContentRefused(REASON_NOT_PDF)

        tail = _read_at(stream, max(0, size - TAIL_WINDOW), TAIL_WINDOW)
        if b"%%EOF" not in tail:
            raise ContentRefused(_DAMAGED.format("no end-of-file marker (%%EOF) in the last 1 KiB"))

        stream.seek(0, io.SEEK_END)
        actual = stream.tell()
        if actual != size:
            raise ContentRefused(_DAMAGED.format(f"the content is {actual} bytes long, {size} were declared"))

        _check_pdf(stream, policy)
        return PDF_TYPE
    finally:
        with contextlib.suppress(OSError, ValueError):
            stream.seek(original_pos)


# --------------------------------------------------------------------------- PDF structure

def _check_pdf(stream: BinaryIO, policy: ContentPolicy) -> None:
    source = io.BufferedReader(_ReadOnlyView(stream), buffer_size=_READ_BUFFER)
    try:
        with pikepdf.open(
            source,
            attempt_recovery=False,
            access_mode=pikepdf.AccessMode.stream,
            suppress_warnings=True,
            inherit_page_attributes=False,  # not needed here; saves a pass over the page tree
        ) as pdf:
            if pdf.is_encrypted:  # owner-password-only files open without a password
                raise ContentRefused(REASON_ENCRYPTED)
            objects = pdf.objects  # parses every object; unreadable ones become null + a warning
            n_pages = len(pdf.pages)
            warnings = [w for w in pdf.get_warnings() if not any(h in w for h in _HARMLESS_WARNINGS)]
            if warnings:
                log.info("PDF refused as damaged, qpdf warnings: %s", "; ".join(warnings)[:500])
                raise ContentRefused(_DAMAGED.format(_warning_detail(warnings[0])))
            if n_pages == 0:
                raise ContentRefused(_DAMAGED.format("the document has no pages"))
            if not policy.allow_active_content:
                kind = _find_active_content(pdf, objects)
                if kind is not None:
                    raise ContentRefused(_ACTIVE.format(kind))
    except pikepdf.PasswordError as exc:
        raise ContentRefused(REASON_ENCRYPTED) from exc
    except pikepdf.PdfError as exc:  # QPDFExc: damaged, truncated, not parseable
        log.info("PDF refused as damaged: %s", str(exc)[:500])
        raise ContentRefused(_DAMAGED.format(_error_detail(str(exc)))) from exc
    except RuntimeError as exc:  # other qpdf failures (std::runtime_error and friends) on hostile input
        if isinstance(exc, RecursionError):
            raise
        log.info("PDF refused as damaged (%s): %s", type(exc).__name__, str(exc)[:500])
        raise ContentRefused(_DAMAGED.format("the file structure cannot be read")) from exc


# qpdf warnings about line-ending nits after the `stream` keyword: qpdf still locates the data exactly (a wrong
# /Length would add an "expected endstream" warning, which is refused). Every other warning means an object was
# dropped (replaced by null), or is ambiguous (duplicated keys: which value wins differs between readers).
_HARMLESS_WARNINGS = (
    "stream keyword followed by carriage return only",
    "stream keyword followed by extraneous whitespace",
    "stream keyword not followed by proper line terminator",
)
_OFFSET_RE = re.compile(r"\(.*?offset (\d+)\)")
_OBJECT_RE = re.compile(r"\(object (\d+) (\d+)")
_ERROR_DETAILS = (  # first match wins; fixed phrases only, never text from the file
    ("startxref", "no cross-reference table found (the file may be cut short)"),
    ("xref", "the cross-reference table is missing or invalid"),
    ("trailer", "the trailer is missing or invalid"),
    ("header", "invalid PDF header"),
    ("stream", "a data stream is damaged"),
    ("obj", "an object cannot be read"),
)


def _error_detail(message: str) -> str:
    lowered = message.lower()
    detail = next((d for key, d in _ERROR_DETAILS if key in lowered), "the file structure cannot be read")
    offset = _OFFSET_RE.search(message)
    return f"{detail} (at byte {offset.group(1)})" if offset else detail


def _warning_detail(warning: str) -> str:
    obj = _OBJECT_RE.search(warning)
    if obj is None:
        return _error_detail(warning)
    if "duplicated key" in warning:
        return f"object {obj.group(1)} {obj.group(2)} has a duplicated dictionary key"
    return f"object {obj.group(1)} {obj.group(2)} is malformed or cannot be read"


# --------------------------------------------------------------------------- active content

_ACTION_KINDS = {
    "/JavaScript": "JavaScript",
    "/Launch": "launch action",
    "/SubmitForm": "form submission action",
    "/ImportData": "data import action",
    "/GoToE": "link to an embedded document",
    "/GoToR": "link to another file",
    "/Rendition": "multimedia action",
    "/Sound": "multimedia action",
    "/Movie": "multimedia action",
    "/RichMediaExecute": "rich media",
}
_KEY_KINDS = {
    "/JS": "JavaScript",
    "/JavaScript": "JavaScript",  # the /Names /JavaScript document-level script tree
    "/Launch": "launch action",
    "/EmbeddedFiles": "embedded file",  # the /Names /EmbeddedFiles attachment tree
    "/EmbeddedFile": "embedded file",
    "/EF": "embedded file",  # a file specification carrying the file itself
    "/XFA": "XFA form",
    "/RichMediaContent": "rich media",
    "/RichMediaSettings": "rich media",
}
_SUBTYPE_KINDS = {
    "/FileAttachment": "embedded file",
    "/RichMedia": "rich media",
    "/Sound": "multimedia annotation",
    "/Movie": "multimedia annotation",
    "/3D": "3D content",
}
_TYPE_KINDS = {"/EmbeddedFile": "embedded file"}
# Every name that _classify_dict can react to; an object whose serialisation contains none of them is skipped.
_SUSPICIOUS_NAMES = sorted(
    {k[1:] for k in _KEY_KINDS} | {k[1:] for k in _SUBTYPE_KINDS} | {k[1:] for k in _TYPE_KINDS}
    | {k[1:] for k in _ACTION_KINDS} | {"URI"},
    key=len, reverse=True,
)
_SUSPICIOUS_NAME = re.compile(
    rb"/(?:" + b"|".join(re.escape(n.encode()) for n in _SUSPICIOUS_NAMES) + rb")(?![^\s/\[\]<>(){}%])"
)


def _find_active_content(pdf: pikepdf.Pdf, objects: Iterable[object]) -> str | None:
    """Return the kind of the first active content found, or None. Never reads stream data.

    Every indirect object is enumerated exactly once (``pdf.objects`` lists all of them; the ``objgen`` set
    guards against repeats), and only *direct* children are descended into -- an indirect child is inspected
    when it is enumerated itself -- so reference cycles cannot make the walk loop. For speed, each object is
    first serialised by qpdf (``unparse``, C++, which also canonicalises ``#xx`` escapes in names) and only the
    objects whose text contains one of the names that matter are inspected structurally.
    """
    seen: set[tuple[int, int]] = set()
    for obj in itertools.chain((pdf.trailer,), objects):
        if obj is None:  # pikepdf returns None for null objects
            continue
        if obj.is_indirect:
            og = obj.objgen
            if og in seen:
                continue
            seen.add(og)
        target = obj.stream_dict if isinstance(obj, Stream) else obj
        if not isinstance(target, (Dictionary, Array)):
            continue
        if _SUSPICIOUS_NAME.search(target.unparse(resolved=True)) is None:
            continue
        kind = _scan(target)
        if kind is not None:
            return kind
    return None


def _scan(root: object) -> str | None:
    """Depth-first over `root` (a dictionary or array) and its direct descendants."""
    stack = [root]
    while stack:
        obj = stack.pop()
        if isinstance(obj, Array):
            children: Iterable[object] = obj
        else:
            values = dict(obj.items())
            kind = _classify_dict(values)
            if kind is not None:
                return kind
            children = values.values()
        for value in children:
            if isinstance(value, (Dictionary, Array)) and not value.is_indirect:
                stack.append(value)
    return None


def _classify_dict(values: dict[str, object]) -> str | None:
    for key, kind in _KEY_KINDS.items():
        if key in values:
            return kind
    subtype = _name(values.get("/Subtype"))
    if subtype in _SUBTYPE_KINDS:
        return _SUBTYPE_KINDS[subtype]
    type_ = _name(values.get("/Type"))
    if type_ in _TYPE_KINDS:
        return _TYPE_KINDS[type_]
    # /S also names border styles, page-label styles, transparency groups, structure types...: none of those use
    # the action names below. /Type is deliberately not consulted -- readers run an action whatever its /Type says.
    action = _name(values.get("/S"))
    if action is not None:
        if action in _ACTION_KINDS:
            return _ACTION_KINDS[action]
        if action == "/URI" and _is_javascript_uri(values.get("/URI")):
            return "JavaScript"
    return None


def _name(value: object) -> str | None:
    return str(value) if isinstance(value, Name) else None


_SCRIPT_SCHEMES = (b"javascript", b"vbscript", b"data")


def _is_javascript_uri(value: object) -> bool:
    """True when a link's URI runs script once a viewer or browser opens it. The scheme is read as the WHATWG URL
    parser reads it: leading C0 controls and spaces stripped, every tab and newline removed anywhere (so
    ``java<TAB>script:`` is ``javascript:``), case folded; UTF-16 strings (with their BOM) are decoded first."""
    if not isinstance(value, String):
        return False
    return _uri_scheme(bytes(value)) in _SCRIPT_SCHEMES


def _uri_scheme(raw: bytes) -> bytes:
    if raw.startswith((b"\xfe\xff", b"\xff\xfe")):
        raw = raw.decode("utf-16", "replace").encode("ascii", "replace")
    raw = bytes(b for b in raw if b not in b"\t\n\r").lstrip(bytes(range(0x21)))
    scheme, colon, _ = raw.partition(b":")
    return scheme.lower() if colon else b""


# --------------------------------------------------------------------------- I/O

def _read_at(stream: BinaryIO, offset: int, n: int) -> bytes:
    stream.seek(offset)
    return _read_full(stream, n)


def _read_full(stream: BinaryIO, n: int) -> bytes:
    """Read up to n bytes, tolerating short reads; shorter only at end of stream."""
    chunks = []
    remaining = n
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class _ReadOnlyView(ReadOnlyStream):
    """What pikepdf sees: read/readinto/seek/tell over the caller's stream, no fileno(), closing it is a no-op
    for the underlying stream."""

    def __init__(self, inner: BinaryIO):
        super().__init__()
        self._inner = inner

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        data = _read_full(self._inner, len(view))
        view[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._inner.seek(offset, whence)
        return self._inner.tell()

    def tell(self) -> int:
        return self._inner.tell()
