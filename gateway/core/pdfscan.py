"""Steps 6-8 of the content rule (:mod:`gateway.core.content`, whose docstring states them): the PDF opened by qpdf
without recovery, every object loaded, any warning but three line-ending nits taken as damage, and, unless the
policy allows it, every object inspected for active content. Imported by :func:`~gateway.core.content.check_content`
when an upload gets that far, so that pikepdf is loaded only in a process that receives uploads."""
from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterable
from typing import BinaryIO

import pikepdf
from pikepdf import Array, Dictionary, Name, Stream, String

from gateway.core.content import _ACTIVE, _DAMAGED, _READ_BUFFER, REASON_ENCRYPTED, ContentPolicy, _read_full, log
from storage.errors import ContentRefused
from storage.fsio import ReadOnlyStream


# --------------------------------------------------------------------------- PDF structure

def check_pdf(stream: BinaryIO, policy: ContentPolicy) -> None:
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
