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

Steps 6-8 are :mod:`gateway.core.pdfscan`, imported on the first upload that gets there: pikepdf and qpdf take
6 MB, which a worker process that only serves downloads does not need.

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
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from storage.errors import ConfigError, ContentRefused

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

        from gateway.core import pdfscan  # pikepdf (6 MB) only in a process that receives uploads

        pdfscan.check_pdf(stream, policy)
        return PDF_TYPE
    finally:
        with contextlib.suppress(OSError, ValueError):
            stream.seek(original_pos)


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
