"""``document ...``: documents -- a removed (archived) document restored at its path."""
from __future__ import annotations

from gateway.admin.service import Administration
from gateway.commands.base import administration, command


def add_document(sub, common) -> None:
    doc = sub.add_parser("document", parents=[common], help="documents").add_subparsers(dest="sub", required=True)
    a = command(doc, common, "restore", restore)
    a.add_argument("institution")
    a.add_argument("path")


@administration
def restore(args, admin: Administration) -> int:
    doc_id = admin.restore(args.institution, args.path)
    print(f"restored document {doc_id} at {args.path}")
    return 0
