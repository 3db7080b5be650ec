"""``document ...``: documents -- a removed (archived) document restored at its path."""
from __future__ import annotations

from gateway.admin.service import Administration
from gateway.commands.base import command, group, reports


def add_document(sub, common) -> None:
    doc = group(sub, common, "document", "documents")
    a = command(doc, common, "restore", restore)
    a.add_argument("institution")
    a.add_argument("path")


@reports
def restore(args, admin: Administration) -> str:
    doc_id = admin.restore(args.institution, args.path)
    return f"restored document {doc_id} at {args.path}"
