"""The demo data set for ``instpages serve --demo``: three centres, one account per role, SSH keys and a
password written into ``<data_dir>/demo/``, sample documents delivered (filed by the default conventions).
Loading it twice changes nothing."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import asyncssh

from gateway.admin.service import Administration
from gateway.config import Config
from gateway.core.enterprise import with_check
from gateway.core.session import MailboxSession

CENTRES = [
    (with_check("02123456"), "OCMW Demostad", "active"),
    (with_check("02071234"), "CPAS de Démoville", "active"),
    (with_check("02079999"), "OCMW Papierdorp (nog op papier)", "paper"),
]


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _keypair(folder: Path, name: str) -> str:
    key_file = folder / f"{name}.key"
    if not key_file.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{name}@demo")
        _write_private(key_file, key.export_private_key())
        (folder / f"{name}.key.pub").write_bytes(key.export_public_key())
    return (folder / f"{name}.key.pub").read_text()


def ensure_demo(admin: Administration, cfg: Config) -> str:
    folder = cfg.data_path / "demo"
    folder.mkdir(mode=0o700, exist_ok=True)
    first = CENTRES[0][0]
    existing = {i.id for i in admin.institutions()}
    for inst_id, name, status in CENTRES:
        if inst_id not in existing:
            admin.add_institution(inst_id, name, status)
    accounts = {a.name for a in admin.accounts()}
    pw_file = folder / "demo-staff.password"
    if "demo-podmi" not in accounts:
        admin.add_account("demo-podmi", "uploader", None, [_keypair(folder, "demo-podmi")],
                          display_name="POD MI (demo uploader)")
    if "demo-archive" not in accounts:
        admin.add_account("demo-archive", "archiver", first, [_keypair(folder, "demo-archive")],
                          display_name="Archive system of OCMW Demostad")
    card_file = folder / "demo-staff.token-card"
    device_file = folder / "demo-staff.device-password"
    if "demo-staff" not in accounts:
        password = secrets.token_urlsafe(12)
        _write_private(pw_file, password.encode() + b"\n")
        admin.add_account("demo-staff", "staff", None, [], password, display_name="Demo staff member")
        admin.grant("demo-staff", first, can_remove=False)
        card = admin.issue_token_card("demo-staff")
        _write_private(card_file, "".join(f"{n}: {code}\n" for n, code in card).encode())
        _, secret = admin.create_device_password("demo-staff", "demo drive", 365)
        _write_private(device_file, secret.encode() + b"\n")
        _deliver_sample(admin, first)
    # the administrators of the console and the REST API: the security cell, and the first centre's local admin
    for name, role, inst, label in (("demo-cell", "security-cell", None, "Veiligheidscel POD MI (demo)"),
                                    ("demo-admin", "local-admin", first, "Lokale beheerder OCMW Demostad (demo)")):
        if name not in accounts:
            secret = secrets.token_urlsafe(12)
            _write_private(folder / f"{name}.password", secret.encode() + b"\n")
            admin.add_account(name, role, inst, [], secret, display_name=label)
            card = admin.issue_token_card(name)
            _write_private(folder / f"{name}.token-card", "".join(f"{n}: {code}\n" for n, code in card).encode())
    if first not in {i.id for i in admin.institutions() if i.contacts}:
        admin.set_contacts(first, "secretariaat@demostad.example", "nl")
    password = pw_file.read_text().strip() if pw_file.exists() else "(see demo-staff.password)"
    device = device_file.read_text().strip() if device_file.exists() else "(see demo-staff.device-password)"
    key = folder / "demo-podmi.key"
    return "\n".join([
        "Demo data loaded. Centres: " + ", ".join(f"{i} ({s})" for i, _, s in CENTRES),
        "  POD MI uploader (SSH key):",
        f"    sftp -P {{port}} -i {key} demo-podmi@{cfg.sftp.host}",
        f"      sftp> put report.pdf /{first}/2026-11/report.pdf",
        "  Archive system of the first centre (SSH key; list, get, rm = archive):",
        f"    sftp -P {{port}} -i {folder / 'demo-archive.key'} demo-archive@{cfg.sftp.host}",
        "  Staff member (read-only on the first centre): the password, then the code the server asks for",
        f"    sftp -P {{port}} demo-staff@{cfg.sftp.host}     password: {password}",
        f"      token card: {card_file}",
        "  The same person's network drive (WebDAV; a device password, which works for WebDAV only):",
        f"    https://{cfg.webdav.host}:{{dav_port}}/dav/   user demo-staff   password: {device}",
        "  The same person's institutional page in a browser (password, then the token-card code it asks for):",
        f"    https://{cfg.webdav.host}:{{dav_port}}/page/   user demo-staff   password: {password}",
        "  Web console and REST API (password, then the token-card code the page asks for):",
        f"    https://{cfg.webdav.host}:{{dav_port}}/console/   security cell: demo-cell, local administrator: "
        "demo-admin",
        f"      passwords and token cards: {folder}/demo-cell.* and {folder}/demo-admin.*",
        f"    https://{cfg.webdav.host}:{{dav_port}}/api/openapi.json   the REST API's description",
    ])


#: the demo's deliveries: (path in the first centre's mailbox, the text on its page); filed by the default
#: conventions of gateway/core/filing.py, and one that no rule files (shown as "unclassified")
SAMPLES = (
    ("ris/monthly-statement/2026-10/maandstaat-ris-2026-10.pdf", "Maandstaat RMI oktober 2026 - demo"),
    ("ris/monthly-statement/2026-11/maandstaat-ris-2026-11.pdf", "Maandstaat RMI november 2026 - demo"),
    ("ris/refused-forms/2026-11/geweigerde-formulieren-2026-11.pdf", "Geweigerde formulieren november 2026 - demo"),
    ("law1965/accepted-forms/2026-11/aanvaarde-formulieren-2026-11.pdf", "Aanvaarde formulieren 1965 - demo"),
    ("maintenance_annual-settlement_2025.pdf", "Jaarlijkse afrekening voorschotten 2025 - demo"),
    ("2026-11/maandstaat-demo.pdf", "Maandstaat november 2026 - demo (no filing convention)"),
)


def _deliver_sample(admin: Administration, institution_id: str) -> None:
    """The sample PDFs delivered through the core, as the uploader would."""
    mailbox = admin.mailbox
    with mailbox.repo.read() as c:
        uploader = mailbox.repo.account_by_name(c, "demo-podmi")
    session = MailboxSession(mailbox, mailbox.load_principal(uploader.id, "demo"), "demo", "local")
    for path, text in SAMPLES:
        upload = session.open_upload(f"/{institution_id}/{path}")
        upload.append(_sample_pdf(text))
        upload.commit()


def _sample_pdf(text: str) -> bytes:
    """A one-page PDF saying ``text`` (ASCII)."""
    import io

    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica))
    page = pdf.pages[0]
    page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    page.Contents = pdf.make_stream(b"BT /F1 18 Tf 72 760 Td (" + text.encode("ascii") + b") Tj ET")
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()
