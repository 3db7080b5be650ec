"""Sample documents for tests, built in memory with pikepdf.

Shared by several test modules: keep the names and signatures stable (add, don't change).
Every function returns ``bytes`` and is deterministic (fixed document ID, fixed dates, seeded random data),
except ``encrypted_pdf`` whose encryption salt/IV are random by nature.

Good documents:   minimal_pdf, big_pdf, pdf_with_benign_openaction, pdf_with_uri_link
Active content:   pdf_with_javascript, pdf_with_names_javascript, pdf_with_page_aa_javascript,
                  pdf_with_launch_action, pdf_with_embedded_file, pdf_with_xfa_form, pdf_with_action
Broken / other:   encrypted_pdf, truncated_pdf, truncated_pdf_with_fake_eof, pdf_with_shifted_xref,
                  not_a_pdf_zip, not_a_pdf_html
"""
from __future__ import annotations

import io
import random
import zipfile

import pikepdf
from pikepdf import Array, Dictionary, Name, Pdf, String

__all__ = [
    "minimal_pdf",
    "big_pdf",
    "pdf_with_javascript",
    "pdf_with_names_javascript",
    "pdf_with_launch_action",
    "pdf_with_embedded_file",
    "pdf_with_page_aa_javascript",
    "pdf_with_tab_split_javascript_uri",
    "pdf_with_benign_openaction",
    "pdf_with_uri_link",
    "pdf_with_xfa_form",
    "pdf_with_action",
    "encrypted_pdf",
    "truncated_pdf",
    "truncated_pdf_with_fake_eof",
    "pdf_with_shifted_xref",
    "not_a_pdf_zip",
    "not_a_pdf_html",
]


# --------------------------------------------------------------------------- building blocks

def _text_operand(text: str) -> bytes:
    """A PDF literal string (with parentheses) for a WinAnsi-encoded Helvetica text line."""
    raw = text.encode("cp1252", errors="replace")
    raw = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    raw = raw.replace(b"\r", b"\\r").replace(b"\n", b"\\n")
    return b"(" + raw + b")"


def _new_pdf() -> Pdf:
    return Pdf.new()


def _helvetica(pdf: Pdf) -> pikepdf.Object:
    return pdf.make_indirect(
        Dictionary(
            Type=Name.Font,
            Subtype=Name.Type1,
            BaseFont=Name.Helvetica,
            Encoding=Name.WinAnsiEncoding,
        )
    )


def _add_text_page(pdf: Pdf, text: str, font: pikepdf.Object | None = None) -> pikepdf.Page:
    """Append an A4 page showing ``text`` (one line per ``\\n``) in 24 pt Helvetica."""
    font = font if font is not None else _helvetica(pdf)
    page = pdf.add_blank_page(page_size=(595, 842))
    lines = text.split("\n") or [""]
    ops = [b"BT /F1 24 Tf 28 TL 72 760 Td"]
    for i, line in enumerate(lines):
        ops.append(_text_operand(line) + (b" Tj" if i == 0 else b" '"))
    ops.append(b"ET")
    page.obj.Resources = Dictionary(Font=Dictionary(F1=font))
    page.obj.Contents = pdf.make_stream(b"\n".join(ops))
    return page


def _save(pdf: Pdf, **kwargs) -> bytes:
    buf = io.BytesIO()
    kwargs.setdefault("deterministic_id", True)
    pdf.save(buf, **kwargs)
    pdf.close()
    return buf.getvalue()


def _text_pdf(text: str = "Hello", pages: int = 1) -> Pdf:
    pdf = _new_pdf()
    font = _helvetica(pdf)
    for n in range(pages):
        _add_text_page(pdf, text if pages == 1 else f"{text}\nPage {n + 1} of {pages}", font)
    return pdf


def _link(right: int, action, **extra) -> Dictionary:
    """A link annotation across the top of the page, up to ``right``, that does ``action``."""
    return Dictionary(Type=Name.Annot, Subtype=Name.Link, Rect=Array([72, 740, right, 790]), **extra, A=action)


# --------------------------------------------------------------------------- good documents

def minimal_pdf(text: str = "Hello", pages: int = 1) -> bytes:
    """A valid, printable text PDF (Helvetica, A4). Different ``text`` gives different bytes.

    The text is drawn in WinAnsi encoding (characters outside cp1252 print as '?') and is also stored,
    exactly, as the document title, so any two distinct texts give distinct files.
    """
    if pages < 1:
        raise ValueError("pages must be >= 1")
    pdf = _text_pdf(text, pages)
    pdf.docinfo[Name.Title] = String(text)
    return _save(pdf)


def big_pdf(megabytes: int) -> bytes:
    """A valid PDF of roughly ``megabytes`` MiB: one page per MiB, each with an uncompressed
    512x683 RGB image of seeded random bytes (~1 MiB) plus a line of text. Builds in well under a second."""
    if megabytes < 1:
        raise ValueError("megabytes must be >= 1")
    rng = random.Random(20240601 + megabytes)
    width, height = 512, 683  # 512 * 683 * 3 = 1 049 088 bytes, ~1 MiB
    pdf = _new_pdf()
    font = _helvetica(pdf)
    for n in range(megabytes):
        page = _add_text_page(pdf, f"Image page {n + 1}", font)
        image = pdf.make_stream(
            rng.randbytes(width * height * 3),
            Type=Name.XObject,
            Subtype=Name.Image,
            Width=width,
            Height=height,
            ColorSpace=Name.DeviceRGB,
            BitsPerComponent=8,
        )
        page.obj.Resources.XObject = Dictionary(Im1=image)
        page.obj.Contents = pdf.make_stream(
            page.obj.Contents.read_bytes() + b"\nq 451 0 0 600 72 100 cm /Im1 Do Q"
        )
    # compress_streams=False: random data does not deflate, and compressing 20 MB would be slow.
    return _save(pdf, compress_streams=False)


def pdf_with_benign_openaction() -> bytes:
    """``/OpenAction [page /Fit]`` -- a plain destination, written by many producers; must be accepted."""
    pdf = _text_pdf("Opens at page 1, fit to window")
    pdf.Root.OpenAction = Array([pdf.pages[0].obj, Name.Fit])
    return _save(pdf)


def pdf_with_uri_link() -> bytes:
    """A page with an ordinary https:// link annotation (a /URI action) -- accepted."""
    pdf = _text_pdf("See https://www.mi-is.be")
    uri = Dictionary(Type=Name.Action, S=Name.URI, URI=String("https://www.mi-is.be/"))
    pdf.pages[0].obj.Annots = Array([_link(400, uri, Border=Array([0, 0, 0]))])
    return _save(pdf)


def pdf_with_uri_link_to(uri: bytes) -> bytes:
    """The same link annotation, pointing at ``uri`` (raw bytes of the PDF string)."""
    pdf = pikepdf.open(io.BytesIO(pdf_with_uri_link()))
    pdf.pages[0].obj.Annots[0].A.URI = String(uri)
    return _save(pdf)


def pdf_with_tab_split_javascript_uri() -> bytes:
    """A link to ``java<TAB>script:`` -- browsers drop tabs and newlines inside a URL, so it runs script."""
    return pdf_with_uri_link_to(b"java\tscript:app.alert(1)")


# --------------------------------------------------------------------------- active content

def pdf_with_javascript() -> bytes:
    """Document-level ``/OpenAction << /S /JavaScript /JS (...) >>``."""
    pdf = _text_pdf("JavaScript on open")
    pdf.Root.OpenAction = Dictionary(
        Type=Name.Action, S=Name.JavaScript, JS=String("app.alert('hello');")
    )
    return _save(pdf)


def pdf_with_names_javascript() -> bytes:
    """Document-level script in the ``/Names /JavaScript`` name tree, the script itself in a stream."""
    pdf = _text_pdf("Named JavaScript")
    script = pdf.make_stream(b"app.alert('named');")
    action = pdf.make_indirect(Dictionary(S=Name.JavaScript, JS=script))
    pdf.Root.Names = Dictionary(JavaScript=Dictionary(Names=Array([String("init"), action])))
    return _save(pdf)


def pdf_with_page_aa_javascript() -> bytes:
    """A page-open additional action (``/AA << /O << /S /JavaScript ... >> >>``), all direct objects
    nested in the page dictionary -- missed by a walk that does not recurse into direct dictionaries."""
    pdf = _text_pdf("Page additional action")
    pdf.pages[0].obj.AA = Dictionary(
        O=Dictionary(S=Name.JavaScript, JS=String("this.print();"))
    )
    return _save(pdf)


def pdf_with_launch_action() -> bytes:
    """A link annotation (direct, inside the page's /Annots array) whose action launches a program."""
    pdf = _text_pdf("Click here")
    launch = Dictionary(S=Name.Launch, Win=Dictionary(F=String("cmd.exe"), P=String("/c echo hi")))
    pdf.pages[0].obj.Annots = Array([_link(300, launch)])
    return _save(pdf)


def pdf_with_embedded_file() -> bytes:
    """A document-level attachment (``/Names /EmbeddedFiles``)."""
    pdf = _text_pdf("With attachment")
    pdf.attachments["data.txt"] = pikepdf.AttachedFileSpec(
        pdf, b"attached data\n", mime_type="text/plain",
        creation_date="D:20240101000000Z", mod_date="D:20240101000000Z",
    )
    return _save(pdf)


def pdf_with_xfa_form() -> bytes:
    """An AcroForm carrying an XFA packet."""
    pdf = _text_pdf("XFA form")
    xdp = pdf.make_stream(b'<xdp:xdp xmlns:xdp="http://ns.adobe.com/xdp/"></xdp:xdp>')
    pdf.Root.AcroForm = Dictionary(Fields=Array([]), XFA=xdp)
    return _save(pdf)


def pdf_with_action(action_type: str) -> bytes:
    """A link annotation whose ``/A`` action has ``/S /<action_type>`` (e.g. "SubmitForm", "GoToR",
    "ImportData", "GoToE", "Rendition", "Sound", "Movie", "URI", "GoTo"). The action is an indirect object."""
    pdf = _text_pdf(f"{action_type} action")
    action = Dictionary(Type=Name.Action, S=Name("/" + action_type))
    if action_type in ("SubmitForm", "ImportData", "GoToR", "Launch"):
        action.F = String("http://example.invalid/x")
    if action_type in ("GoToR", "GoToE"):
        action.D = Array([0, Name.Fit])
    if action_type == "URI":
        action.URI = String("https://example.invalid/")
    pdf.pages[0].obj.Annots = Array([pdf.make_indirect(_link(300, pdf.make_indirect(action)))])
    return _save(pdf)


# --------------------------------------------------------------------------- broken / other

def encrypted_pdf(user_password: str = "secret", owner_password: str = "owner") -> bytes:
    """AES-256 encrypted PDF. With the default (non-empty) user password it cannot be opened without it;
    ``encrypted_pdf(user_password="")`` gives an owner-password-only file that opens without a password."""
    pdf = _text_pdf("Encrypted")
    return _save(
        pdf,
        deterministic_id=False,
        static_id=True,
        encryption=pikepdf.Encryption(owner=owner_password, user=user_password, R=6),
    )


def _truncatable() -> bytes:
    return minimal_pdf("Truncate me\nline two\nline three", pages=4)


def truncated_pdf() -> bytes:
    """The first half of a valid 4-page PDF (no xref, no trailer, no %%EOF)."""
    data = _truncatable()
    return data[: len(data) // 2]


def truncated_pdf_with_fake_eof() -> bytes:
    """The first half of a valid PDF with ``%%EOF`` appended: passes a naive end-marker check, and opens
    with pikepdf's default xref recovery; must be refused."""
    return truncated_pdf() + b"\n%%EOF\n"


def pdf_with_shifted_xref() -> bytes:
    """A complete PDF with an extra comment line inserted after the header, so every xref offset is wrong.
    Readers that rebuild the xref open it; a strict parser must refuse it."""
    data = minimal_pdf("Shifted")
    nl = data.index(b"\n") + 1
    return data[:nl] + b"%shifted-by-junk\n" + data[nl:]


def not_a_pdf_zip() -> bytes:
    """A small ZIP archive (fixed timestamps, deterministic)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("document.pdf", date_time=(2024, 1, 1, 0, 0, 0))
        zf.writestr(info, minimal_pdf("inside a zip"))
    return buf.getvalue()


def not_a_pdf_html() -> bytes:
    """An HTML page (what an error page from a proxy looks like)."""
    return (
        b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
        b"<body><h1>Bad Gateway</h1><p>The upstream server did not respond.</p></body></html>\n"
    )
