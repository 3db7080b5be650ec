"""The content rule (gateway/core/content.py) against the samples of tests/pdfsamples.py."""
from __future__ import annotations

import builtins
import io
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pikepdf
import pytest

from gateway.core.content import (
    ANY_TYPE,
    PDF_TYPE,
    REASON_EMPTY,
    REASON_ENCRYPTED,
    REASON_NOT_PDF,
    ContentPolicy,
    check_content,
)
from storage.errors import ConfigError, ContentRefused, IntegrityFailure
from tests import pdfsamples as samples

ALLOW_ACTIVE = ContentPolicy(allow_active_content=True)
ANYTHING = ContentPolicy(allowed_types=frozenset({"*"}))


def check(data: bytes, policy: ContentPolicy = ContentPolicy()) -> str:
    return check_content(io.BytesIO(data), len(data), policy)


def refusal(data: bytes, policy: ContentPolicy = ContentPolicy()) -> str:
    with pytest.raises(ContentRefused) as info:
        check(data, policy)
    return info.value.message


def resave(data: bytes, **save_kwargs) -> bytes:
    with pikepdf.open(io.BytesIO(data)) as pdf:
        buf = io.BytesIO()
        pdf.save(buf, deterministic_id=True, **save_kwargs)
    return buf.getvalue()


def edit(data: bytes, change) -> bytes:
    """Open ``data`` with pikepdf, apply ``change(pdf)``, save."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        change(pdf)
        buf = io.BytesIO()
        pdf.save(buf, deterministic_id=True)
    return buf.getvalue()


def same_length_replace(data: bytes, old: bytes, new: bytes) -> bytes:
    """Byte-level corruption that keeps every xref offset valid."""
    assert len(old) == len(new) and data.count(old) == 1, (old, data.count(old))
    return data.replace(old, new)


class MinimalReader:
    """A decrypting-reader stand-in: only read/seek/tell, short reads, and no usable fileno().
    A read covering byte offset ``poison`` raises ``exc`` (like a failed authentication tag)."""

    def __init__(self, data: bytes, max_read: int = 7, poison: int | None = None, exc: Exception | None = None):
        self._buf = io.BytesIO(data)
        self.max_read = max_read
        self.poison = poison
        self.exc = exc
        self.bytes_read = 0

    def read(self, n: int = -1) -> bytes:
        n = self.max_read if n is None or n < 0 else min(n, self.max_read)
        pos = self._buf.tell()
        if self.poison is not None and pos <= self.poison < pos + n:
            raise self.exc
        chunk = self._buf.read(n)
        self.bytes_read += len(chunk)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._buf.seek(offset, whence)

    def tell(self) -> int:
        return self._buf.tell()

    def fileno(self) -> int:  # pragma: no cover - must never be called
        raise AssertionError("fileno() must not be used")


# --------------------------------------------------------------------------- the sample module itself

def test_minimal_pdf_is_a_printable_helvetica_text_page():
    data = samples.minimal_pdf("Hello")
    assert data.startswith(b"%PDF-") and b"%%EOF" in data[-32:]
    with pikepdf.open(io.BytesIO(data), attempt_recovery=False) as pdf:
        assert len(pdf.pages) == 1
        page = pdf.pages[0]
        assert page.Resources.Font.F1.BaseFont == pikepdf.Name.Helvetica
        assert b"(Hello) Tj" in page.Contents.read_bytes()
        assert pdf.get_warnings() == []


def test_minimal_pdf_is_deterministic_and_text_dependent():
    assert samples.minimal_pdf("Hello") == samples.minimal_pdf("Hello")
    assert samples.minimal_pdf("Hello") != samples.minimal_pdf("Hellp")
    assert samples.minimal_pdf("\u0416") != samples.minimal_pdf("\u0417")  # both print as '?'
    with pikepdf.open(io.BytesIO(samples.minimal_pdf("x", pages=3))) as pdf:
        assert len(pdf.pages) == 3


def test_big_pdf_has_roughly_the_requested_size():
    data = samples.big_pdf(3)
    assert 3 * 2**20 <= len(data) <= 3.3 * 2**20
    assert data == samples.big_pdf(3)


# --------------------------------------------------------------------------- accepted

@pytest.mark.parametrize(
    "make",
    [
        lambda: samples.minimal_pdf(),
        lambda: samples.minimal_pdf("Three pages", pages=3),
        samples.pdf_with_benign_openaction,
        samples.pdf_with_uri_link,
        lambda: samples.pdf_with_action("GoTo"),
        lambda: samples.pdf_with_action("URI"),
        lambda: resave(samples.minimal_pdf(), object_stream_mode=pikepdf.ObjectStreamMode.generate),
        lambda: resave(samples.minimal_pdf("lin", pages=2), linearize=True),
    ],
    ids=["minimal", "3-pages", "benign-openaction", "uri-link", "goto-action", "uri-action", "objstm", "linearized"],
)
def test_good_pdfs_are_accepted(make):
    assert check(make()) == PDF_TYPE


def test_benign_openaction_sample_really_has_an_openaction_destination():
    with pikepdf.open(io.BytesIO(samples.pdf_with_benign_openaction())) as pdf:
        action = pdf.Root.OpenAction
        assert isinstance(action, pikepdf.Array) and action[1] == pikepdf.Name.Fit
    assert check(samples.pdf_with_benign_openaction()) == PDF_TYPE


def test_active_content_words_in_text_and_strings_are_not_active_content():
    data = samples.minimal_pdf("/JS /JavaScript /Launch /EmbeddedFiles /S /Launch /XFA")
    assert b"/EmbeddedFiles" in data  # in the /Title string, so the fast pre-filter does see it
    assert check(data) == PDF_TYPE


# --------------------------------------------------------------------------- active content

ACTIVE_SAMPLES = [
    (samples.pdf_with_javascript, "(JavaScript)"),
    (samples.pdf_with_names_javascript, "(JavaScript)"),
    (samples.pdf_with_page_aa_javascript, "(JavaScript)"),
    (samples.pdf_with_launch_action, "(launch action)"),
    (samples.pdf_with_embedded_file, "(embedded file)"),
    (samples.pdf_with_xfa_form, "(XFA form)"),
    (lambda: samples.pdf_with_action("JavaScript"), "(JavaScript)"),
    (lambda: samples.pdf_with_action("Launch"), "(launch action)"),
    (lambda: samples.pdf_with_action("SubmitForm"), "(form submission action)"),
    (lambda: samples.pdf_with_action("ImportData"), "(data import action)"),
    (lambda: samples.pdf_with_action("GoToE"), "(link to an embedded document)"),
    (lambda: samples.pdf_with_action("GoToR"), "(link to another file)"),
    (lambda: samples.pdf_with_action("Rendition"), "(multimedia action)"),
    (lambda: samples.pdf_with_action("Sound"), "(multimedia action)"),
    (lambda: samples.pdf_with_action("Movie"), "(multimedia action)"),
]
ACTIVE_IDS = [
    "openaction-js", "names-js", "page-aa-js", "launch", "embedded-file", "xfa",
    "S-JavaScript", "S-Launch", "S-SubmitForm", "S-ImportData", "S-GoToE", "S-GoToR",
    "S-Rendition", "S-Sound", "S-Movie",
]


@pytest.mark.parametrize("make, kind", ACTIVE_SAMPLES, ids=ACTIVE_IDS)
def test_active_content_is_refused_and_named(make, kind):
    reason = refusal(make())
    assert reason == f"PDF contains active content {kind} \u2014 not accepted"


@pytest.mark.parametrize("make, kind", ACTIVE_SAMPLES, ids=ACTIVE_IDS)
def test_active_content_samples_are_otherwise_valid(make, kind):
    """With active content allowed the same files pass: the refusal above is the active-content rule, nothing else."""
    assert check(make(), ALLOW_ACTIVE) == PDF_TYPE


def test_javascript_in_object_streams_is_found():
    data = resave(samples.pdf_with_page_aa_javascript(), object_stream_mode=pikepdf.ObjectStreamMode.generate)
    assert b"/JavaScript" not in data  # really compressed away
    assert "(JavaScript)" in refusal(data)


def test_javascript_key_written_with_name_escapes_is_found():
    data = samples.pdf_with_javascript()
    # /JS spelled /J#53 (+2 bytes), compensated by dropping two optional spaces in the same object
    data = same_length_replace(data, b"/JS (app.alert\\('hello'\\);) /S /JavaScript /Type /Action",
                               b"/J#53 (app.alert\\('hello'\\);) /S/JavaScript /Type/Action")
    with pikepdf.open(io.BytesIO(data), attempt_recovery=False) as pdf:
        assert pdf.get_warnings() == [] and "/JS" in pdf.Root.OpenAction
    assert "(JavaScript)" in refusal(data)


def test_javascript_uri_is_refused():
    def to_js(pdf):
        pdf.pages[0].Annots[0].A.URI = pikepdf.String("  JavaScript:app.alert(1)")
    assert "(JavaScript)" in refusal(edit(samples.pdf_with_uri_link(), to_js))


@pytest.mark.parametrize("uri", [
    b"java\tscript:app.alert(1)", b"java\nscript:x", b"\r\njava\tscr\nipt:x", b"\x01\x1f JavaScript:x",
    b"j" + b"\t" * 200 + b"avascript:x", b"VbScRiPt:x", b"data:text/html,<script>alert(1)</script>",
    "javascript:x".encode("utf-16"), "java\tscript:x".encode("utf-16-be").join([b"\xfe\xff", b""]),
])
def test_script_uri_in_any_spelling_a_browser_accepts_is_refused(uri):
    assert "(JavaScript)" in refusal(samples.pdf_with_uri_link_to(uri))


@pytest.mark.parametrize("uri", [b"https://www.mi-is.be/", b"mailto:info@mi-is.be", b"https://x.be/javascript:x",
                                 b"javascript", b"/relative/java\tscript:x"])
def test_ordinary_links_stay_accepted(uri):
    assert check(samples.pdf_with_uri_link_to(uri)) == PDF_TYPE


def test_active_content_behind_a_reference_cycle_terminates_and_is_found():
    def cycle(pdf, with_js):
        a = pdf.make_indirect(pikepdf.Dictionary(Kind=pikepdf.Name.A))
        b = pdf.make_indirect(pikepdf.Dictionary(Kind=pikepdf.Name.B, Other=a))
        a.Other = b
        if with_js:
            b.Next = pikepdf.Array([pikepdf.Dictionary(S=pikepdf.Name.JavaScript, Script=pikepdf.String("x"))])
        pdf.Root.Custom = a
    results = {}

    def run():  # in a thread, so that a walk that loops fails the test instead of hanging it
        results["clean"] = check(edit(samples.minimal_pdf(), lambda p: cycle(p, False)))
        results["js"] = refusal(edit(samples.minimal_pdf(), lambda p: cycle(p, True)))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the object walk did not terminate on a reference cycle"
    assert results["clean"] == PDF_TYPE
    assert "(JavaScript)" in results["js"]


def test_active_content_deep_inside_direct_objects_is_found():
    def nest(pdf):
        inner = pikepdf.Dictionary(S=pikepdf.Name.Launch)
        for _ in range(200):
            inner = pikepdf.Array([pikepdf.Dictionary(Wrap=inner)])
        pdf.Root.Deep = inner
    assert "(launch action)" in refusal(edit(samples.minimal_pdf(), nest))


def test_active_content_in_the_trailer_is_found():
    def extra(pdf):
        pdf.trailer.Extra = pikepdf.Dictionary(S=pikepdf.Name.Launch)
    data = edit(samples.minimal_pdf(), extra)
    assert b"trailer << /Extra << /S /Launch >>" in data
    assert "(launch action)" in refusal(data)


def test_file_attachment_annotation_is_refused():
    def annotate(pdf):
        spec = pikepdf.AttachedFileSpec(pdf, b"payload", filename="x.bin")
        pdf.pages[0].obj.Annots = pikepdf.Array([pikepdf.Dictionary(
            Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.FileAttachment,
            Rect=pikepdf.Array([0, 0, 10, 10]), FS=spec.obj,
        )])
    assert "(embedded file)" in refusal(edit(samples.minimal_pdf(), annotate))


# --------------------------------------------------------------------------- encrypted

def test_password_protected_pdf_is_refused():
    assert refusal(samples.encrypted_pdf()) == REASON_ENCRYPTED


def test_owner_password_only_pdf_is_refused_although_it_opens_without_password():
    data = samples.encrypted_pdf(user_password="")
    with pikepdf.open(io.BytesIO(data)) as pdf:  # no PasswordError: only is_encrypted tells
        assert pdf.is_encrypted
    assert refusal(data) == REASON_ENCRYPTED


# --------------------------------------------------------------------------- damaged / truncated

def test_truncated_pdf_is_refused_for_missing_eof():
    reason = refusal(samples.truncated_pdf())
    assert reason.startswith("damaged or truncated PDF: ") and "%%EOF" in reason


@pytest.mark.parametrize("make", [samples.truncated_pdf_with_fake_eof, samples.pdf_with_shifted_xref],
                         ids=["fake-eof", "shifted-xref"])
def test_damage_that_xref_recovery_would_hide_is_refused(make):
    data = make()
    with pikepdf.open(io.BytesIO(data)) as pdf:  # pikepdf's default (recovery) opens it: the sample is meaningful
        assert len(pdf.pages) >= 1
    reason = refusal(data)
    assert reason.startswith("damaged or truncated PDF: ")
    assert "cross-reference" in reason


def test_unreadable_object_is_refused():
    data = same_length_replace(samples.minimal_pdf(), b"4 0 obj", b"4 0 xbj")
    reason = refusal(data)
    assert reason == "damaged or truncated PDF: object 4 0 is malformed or cannot be read"


def test_wrong_stream_length_is_refused():
    data = samples.minimal_pdf()
    (length,) = re.findall(rb"/Length (\d+)", data)
    wrong = str(int(length) - 3).encode().rjust(len(length), b"0")
    data = same_length_replace(data, b"/Length " + length, b"/Length " + wrong)
    assert refusal(data).startswith("damaged or truncated PDF: object ")


def test_duplicated_dictionary_key_is_refused():
    data = same_length_replace(samples.minimal_pdf(), b"/Encoding /WinAnsiEncoding /Subtype /Type1",
                               b"/Subtype /Type1            /Subtype /Type1")
    assert refusal(data) == "damaged or truncated PDF: object 6 0 has a duplicated dictionary key"


def test_harmless_stream_keyword_line_ending_is_accepted():
    data = same_length_replace(samples.minimal_pdf(), b">>\nstream\n", b">>\nstream\r")
    with pikepdf.open(io.BytesIO(data), attempt_recovery=False) as pdf:
        _ = pdf.objects
        assert pdf.get_warnings()  # qpdf does complain...
    assert check(data) == PDF_TYPE  # ...but reads the data exactly


def test_pdf_without_pages_is_refused():
    buf = io.BytesIO()
    pikepdf.new().save(buf)
    assert refusal(buf.getvalue()) == "damaged or truncated PDF: the document has no pages"


def test_pdf_header_followed_by_garbage_is_damaged():
    assert refusal(b"%PDF-1.7\n<html>not really</html>\n%%EOF\n").startswith("damaged or truncated PDF: ")


def test_declared_size_must_match_stream():
    data = samples.minimal_pdf()
    with pytest.raises(ContentRefused) as info:
        check_content(io.BytesIO(data + b"\n" * 10), len(data))
    assert info.value.message == f"damaged or truncated PDF: the content is {len(data) + 10} bytes long, " \
                                 f"{len(data)} were declared"


def test_refusal_reasons_never_quote_the_document():
    secret = "NISS 85073003361 Dupont"
    good = samples.minimal_pdf(secret)
    broken = [
        good[: len(good) // 2] + b"\n%%EOF\n",
        same_length_replace(good, b"4 0 obj", b"4 0 xbj"),
        good.replace(b"xref\n0 ", b"xref\n9 "),
        good[:200] + b"%%EOF",
    ]
    for data in broken:
        reason = refusal(data)
        assert reason.startswith("damaged or truncated PDF: ")
        for leak in ("NISS", "Dupont", "BytesIO", "0x", "stream <"):
            assert leak not in reason, (leak, reason)
        assert len(reason) < 120


# --------------------------------------------------------------------------- not a PDF / policy

@pytest.mark.parametrize("make", [samples.not_a_pdf_zip, samples.not_a_pdf_html], ids=["zip", "html"])
def test_not_a_pdf_is_refused(make):
    assert refusal(make()) == REASON_NOT_PDF


def test_leading_junk_before_header_is_refused_although_readers_tolerate_it():
    data = b"\xef\xbb\xbf" + samples.minimal_pdf()
    with pikepdf.open(io.BytesIO(data)) as pdf:  # qpdf finds the header within the first 1 KiB
        assert len(pdf.pages) == 1
    assert refusal(data) == REASON_NOT_PDF


@pytest.mark.parametrize("wildcard", ["*", "*/*"])
def test_wildcard_policy_accepts_anything_unchecked(wildcard):
    policy = ContentPolicy(allowed_types=frozenset({wildcard}))
    assert check(samples.not_a_pdf_zip(), policy) == ANY_TYPE
    assert check(samples.not_a_pdf_html(), policy) == ANY_TYPE
    assert check(samples.pdf_with_javascript(), policy) == PDF_TYPE
    assert check(samples.truncated_pdf(), policy) == PDF_TYPE


@pytest.mark.parametrize("policy", [ContentPolicy(), ANYTHING, ALLOW_ACTIVE], ids=["default", "any", "active"])
def test_empty_file_is_refused_under_every_policy(policy):
    assert refusal(b"", policy) == REASON_EMPTY


def test_policy_defaults_and_normalisation():
    assert ContentPolicy().allowed_types == frozenset({"application/pdf"})
    assert ContentPolicy().allow_active_content is False
    assert ContentPolicy(allowed_types={" Application/PDF "}).allowed_types == frozenset({"application/pdf"})
    assert ContentPolicy(allowed_types=frozenset({"application/pdf", "*"})).accepts_anything
    assert not ContentPolicy().accepts_anything


@pytest.mark.parametrize("types", [frozenset({"image/png"}), frozenset(), "application/pdf"])
def test_policy_rejects_types_it_cannot_check(types):
    with pytest.raises(ConfigError, match="allowed_types"):
        ContentPolicy(allowed_types=types)


def test_active_content_allowed_still_checks_structure_and_encryption():
    assert refusal(samples.truncated_pdf_with_fake_eof(), ALLOW_ACTIVE).startswith("damaged or truncated PDF: ")
    assert refusal(samples.encrypted_pdf(), ALLOW_ACTIVE) == REASON_ENCRYPTED
    assert refusal(samples.not_a_pdf_zip(), ALLOW_ACTIVE) == REASON_NOT_PDF


# --------------------------------------------------------------------------- streams, I/O, speed

def test_stream_without_fileno_and_with_short_reads_works():
    good = MinimalReader(samples.minimal_pdf())
    assert check_content(good, len(samples.minimal_pdf())) == PDF_TYPE
    js = samples.pdf_with_page_aa_javascript()
    with pytest.raises(ContentRefused, match=r"\(JavaScript\)"):
        check_content(MinimalReader(js), len(js))
    trunc = samples.truncated_pdf_with_fake_eof()
    with pytest.raises(ContentRefused, match="^damaged or truncated PDF: "):
        check_content(MinimalReader(trunc), len(trunc))


def test_stream_position_is_restored():
    data = samples.minimal_pdf()
    for payload in (data, samples.pdf_with_javascript()):
        stream = io.BytesIO(payload)
        stream.seek(17)
        try:
            check_content(stream, len(payload))
        except ContentRefused:
            pass
        assert stream.tell() == 17
        assert not stream.closed


BIG1 = samples.big_pdf(1)


@pytest.mark.parametrize("exc", [IntegrityFailure("tag mismatch"), OSError(5, "I/O error")],
                         ids=["integrity", "oserror"])
@pytest.mark.parametrize(
    "poison",
    [2, len(BIG1) - 10, BIG1.index(b"/Type /Pages"), BIG1.index(b"/Subtype /Image")],
    ids=["header", "tail", "pages-object-read-by-pikepdf", "image-dict-read-by-pikepdf"],
)
def test_errors_of_the_stream_itself_propagate_unchanged(exc, poison):
    reader = MinimalReader(BIG1, max_read=4096, poison=poison, exc=exc)
    with pytest.raises(type(exc)) as info:
        check_content(reader, len(BIG1))
    assert info.value is exc  # the very exception, not wrapped into ContentRefused or PdfError


def test_image_data_is_never_read():
    middle = len(BIG1) // 2  # inside the 1 MiB image stream
    reader = MinimalReader(BIG1, max_read=4096, poison=middle, exc=IntegrityFailure("read the image data"))
    assert check_content(reader, len(BIG1)) == PDF_TYPE


def test_no_files_are_opened_or_created(monkeypatch):
    data = samples.big_pdf(1)
    js = samples.pdf_with_embedded_file()

    def forbidden(*args, **kwargs):
        raise AssertionError(f"file system access: {args!r}")

    for module, name in [(builtins, "open"), (io, "open"), (os, "open"), (tempfile, "mkstemp"),
                         (tempfile, "NamedTemporaryFile"), (tempfile, "TemporaryFile"),
                         (tempfile, "SpooledTemporaryFile"), (tempfile, "mkdtemp")]:
        monkeypatch.setattr(module, name, forbidden)
    assert check(data) == PDF_TYPE
    assert "(embedded file)" in refusal(js)


def test_big_pdf_is_accepted_quickly_without_reading_its_streams():
    data = samples.big_pdf(20)
    assert len(data) >= 20 * 2**20
    reader = MinimalReader(data, max_read=1 << 20)
    check_content(reader, len(data))  # warm-up (imports, caches)
    reader = MinimalReader(data, max_read=1 << 20)
    start = time.perf_counter()
    assert check_content(reader, len(data)) == PDF_TYPE
    elapsed = time.perf_counter() - start
    assert reader.bytes_read < 1 << 20, reader.bytes_read  # image data is skipped, not read or decoded
    assert elapsed < 0.5, f"{elapsed:.3f} s"  # typically ~0.01 s; loose for loaded CI machines


def test_the_gateway_loads_pikepdf_only_for_an_upload():
    """pikepdf and qpdf take 6 MB in every process that loads them: a worker that only serves downloads never
    does; the first upload that reaches the structure check does."""
    code = ("import sys, io; import gateway.cli, gateway.server, gateway.services; "
            "print('pikepdf' in sys.modules); from gateway.core.content import check_content; "
            f"check_content(io.BytesIO({samples.minimal_pdf()!r}), {len(samples.minimal_pdf())}); "
            "print('pikepdf' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split() == ["False", "True"]
