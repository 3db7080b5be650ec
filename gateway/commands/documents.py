"""``document ...``: documents -- a centre's catalogue (filed by kind, legislation and period, with when each was
delivered, first fetched and archived), one document's receipt, and a removed (archived) document restored at its
path. Names and dates only, never content."""
from __future__ import annotations

from datetime import datetime

from gateway.admin.service import Administration
from gateway.commands.base import command, group, lists, reports
from gateway.core.catalogue import MAX_ROWS, document_filter
from storage.repository import CatalogueRow


def add_document(sub, common) -> None:
    doc = group(sub, common, "document", "documents")
    a = command(doc, common, "list", list_documents, help="a centre's documents, newest first, with their receipts")
    a.add_argument("institution")
    a.add_argument("--kind", help="e.g. monthly-statement, or unclassified")
    a.add_argument("--legislation", help="ris, law1965 or maintenance")
    a.add_argument("--period", help="a year (2026) or a month (2026-10)")
    a.add_argument("--archived", action="store_true", help="the archived documents instead of the mailbox's")
    a.add_argument("--limit", type=int, default=100, help=f"at most this many (1 to {MAX_ROWS}; default 100)")
    a = command(doc, common, "receipt", receipt,
                help="when a document was delivered, first fetched (by whom, how) and archived")
    a.add_argument("institution")
    a.add_argument("path")
    a = command(doc, common, "refile", refile,
                help="file delivered documents again by the current filing rules (by default the unclassified)")
    a.add_argument("institution", nargs="?", help="only this centre (default: every centre)")
    a.add_argument("--all", action="store_true", help="every delivered document, not only the unclassified "
                   "(after a change of [documents] filing_rules)")
    a = command(doc, common, "restore", restore)
    a.add_argument("institution")
    a.add_argument("path")


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


def _fetched(row: CatalogueRow) -> str:
    if row.first_fetched_at is None:
        return "-"
    return f"{_when(row.first_fetched_at)} {row.first_fetched_by or '?'} ({row.first_fetched_protocol or '?'})"


@lists("DELIVERED", "KIND", "LEGISLATION", "PERIOD", "SIZE", "PATH", "FIRST FETCHED", "ARCHIVED")
def list_documents(args, admin: Administration) -> list[list[str]]:
    flt = document_filter(kind=args.kind, legislation=args.legislation, period=args.period, archived=args.archived,
                          limit=args.limit)
    return [[_when(r.delivered_at), r.kind or "unclassified", r.legislation or "-", r.period or "-", str(r.size),
             r.relpath, _fetched(r), f"{_when(r.archived_at)} {r.archived_by or ''}".rstrip() if r.archived_at
             else "-"] for r in admin.catalogue(args.institution, flt)]


@reports
def receipt(args, admin: Administration) -> str:
    r = admin.receipt(args.institution, args.path)
    lines = [
        f"document   {r.id} at {r.relpath} ({r.size} bytes, sha256 {r.sha256})",
        f"filed as   {r.kind or 'unclassified'}, {r.legislation or '-'}, {r.period or '-'}",
        f"delivered  {_when(r.delivered_at)} by {r.sender or '?'}",
        f"fetched    {_fetched(r) if r.first_fetched_at else 'not yet'}",
        f"archived   {_when(r.archived_at) + ' by ' + (r.archived_by or '?') if r.archived_at else 'no'}",
    ]
    return "\n".join(lines)


@reports
def refile(args, admin: Administration) -> str:
    n = admin.refile(args.institution, everything=args.all)
    return (f"examined {n['examined']} documents: {n['changed']} filed anew, {n['unclassified']} unclassified by the "
            "current rules")


@reports
def restore(args, admin: Administration) -> str:
    doc_id = admin.restore(args.institution, args.path)
    return f"restored document {doc_id} at {args.path}"
