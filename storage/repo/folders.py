"""Folders of a centre's mailbox: existence, creation with parents, listing, moving and deleting subtrees."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from storage.repo.base import D, F, _B, utcnow

_Q_FOLDER = sa.select(F).where(F.c.institution_id == _B("i"), F.c.path == _B("p"))


class FoldersRepo:
    """The folder tree of each centre (a move renames the documents' folder too)."""

    def folder_exists(self, c: Connection, institution_id: str, path: str) -> bool:
        if path == "":
            return True
        return c.execute(_Q_FOLDER, {"i": institution_id, "p": path}).first() is not None

    def folder_row(self, c: Connection, institution_id: str, path: str):
        return c.execute(_Q_FOLDER, {"i": institution_id, "p": path}).first()

    def create_folders(self, c: Connection, institution_id: str, path: str, created_by: str) -> bool:
        """Create ``path`` and its missing parents; returns False if ``path`` already existed."""
        parts = path.split("/")
        created = False
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if not self.folder_exists(c, institution_id, sub):
                try:
                    with c.begin_nested():
                        c.execute(F.insert().values(institution_id=institution_id, path=sub, created_by=created_by,
                                                    created_at=utcnow()))
                    created = created or i == len(parts)
                except IntegrityError:  # created concurrently: fine
                    pass
        return created

    def child_folders(self, c: Connection, institution_id: str, parent: str) -> list:
        """Folders directly below ``parent`` ("" = top level)."""
        q = sa.select(F.c.path, F.c.created_at).where(F.c.institution_id == institution_id)
        if parent:
            q = q.where(F.c.path.startswith(parent + "/", autoescape=True))
        rows = c.execute(q).all()
        depth = 0 if not parent else parent.count("/") + 1
        return [r for r in rows if r.path.count("/") == depth]

    def move_tree(self, c: Connection, institution_id: str, src: str, dst: str) -> None:
        """Rename folder ``src`` (and everything below it) to ``dst``, documents included."""
        rows = c.execute(sa.select(F.c.id, F.c.path).where(F.c.institution_id == institution_id, sa.or_(
            F.c.path == src, F.c.path.startswith(src + "/", autoescape=True)))).all()
        for r in rows:
            c.execute(F.update().where(F.c.id == r.id).values(path=dst + r.path[len(src):]))
        docs = c.execute(sa.select(D.c.id, D.c.folder).where(D.c.institution_id == institution_id, sa.or_(
            D.c.folder == src, D.c.folder.startswith(src + "/", autoescape=True)))).all()
        for r in docs:
            c.execute(D.update().where(D.c.id == r.id).values(folder=dst + r.folder[len(src):]))

    def folders_below(self, c: Connection, institution_id: str, path: str) -> list[str]:
        return [r.path for r in c.execute(sa.select(F.c.path).where(
            F.c.institution_id == institution_id, F.c.path.startswith(path + "/", autoescape=True)))]

    def delete_folder(self, c: Connection, institution_id: str, path: str) -> None:
        c.execute(F.delete().where(F.c.institution_id == institution_id, F.c.path == path))
