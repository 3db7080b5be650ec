"""WebDAV state kept in the metadata database: dead properties and locks.

Both survive a restart and are shared by every gateway process (the scaled-out shape has no sticky sessions).
They implement wsgidav's PropertyManager and LockStorage interfaces over :class:`storage.repository.Repository`
tables, with bound parameters only.
"""
from __future__ import annotations

import base64
import json
import time

import sqlalchemy as sa
from wsgidav.lock_man.lock_manager import LockManager, generate_lock_token
from wsgidav.lock_man.lock_storage import LockStorageDict, normalize_lock_root, validate_lock
from wsgidav.xml_tools import xml_to_bytes

from storage.models import DavLock, DavProperty
from storage.repository import Repository

P = DavProperty.__table__
L = DavLock.__table__


def _like_children(col, path: str):
    return col.startswith(path.rstrip("/") + "/", autoescape=True)


class DbPropertyManager:
    """Dead properties, one row per (path, property name); values stored as serialized XML elements."""

    def __init__(self, repo: Repository):
        self.repo = repo

    def __repr__(self) -> str:
        return "DbPropertyManager"

    def get_properties(self, norm_url, environ=None):
        with self.repo.read() as c:
            return [r.name for r in c.execute(sa.select(P.c.name).where(P.c.path == norm_url))]

    def get_property(self, norm_url, name, environ=None):
        """The serialized property element (wsgidav parses it); it was stored from a request body that
        passed the defusedxml check."""
        with self.repo.read() as c:
            return c.execute(sa.select(P.c.value).where(P.c.path == norm_url, P.c.name == name)).scalar()

    def write_property(self, norm_url, name, property_value, dry_run=False, environ=None):
        if dry_run:
            return
        if isinstance(property_value, (bytes, bytearray)):
            value = bytes(property_value).decode("utf-8")
        elif isinstance(property_value, str):
            value = property_value
        else:
            value = xml_to_bytes(property_value, pretty=False).decode("utf-8")
        with self.repo.write() as c:
            n = c.execute(P.update().where(P.c.path == norm_url, P.c.name == name).values(value=value)).rowcount
            if n == 0:
                c.execute(P.insert().values(path=norm_url, name=name, value=value))

    def remove_property(self, norm_url, name, dry_run=False, environ=None):
        if dry_run:
            return
        with self.repo.write() as c:
            c.execute(P.delete().where(P.c.path == norm_url, P.c.name == name))

    def remove_properties(self, norm_url, environ=None):
        with self.repo.write() as c:
            c.execute(P.delete().where(P.c.path == norm_url))

    def copy_properties(self, src_url, dest_url, environ=None):
        with self.repo.write() as c:
            rows = c.execute(sa.select(P.c.name, P.c.value).where(P.c.path == src_url)).all()
            c.execute(P.delete().where(P.c.path == dest_url))
            for r in rows:
                c.execute(P.insert().values(path=dest_url, name=r.name, value=r.value))

    def move_properties(self, src_url, dest_url, with_children, environ=None):
        with self.repo.write() as c:
            c.execute(P.delete().where(P.c.path == dest_url))
            c.execute(P.update().where(P.c.path == src_url).values(path=dest_url))
            if with_children:
                for r in c.execute(sa.select(P.c.id, P.c.path).where(_like_children(P.c.path, src_url))).all():
                    c.execute(P.update().where(P.c.id == r.id).values(path=dest_url + r.path[len(src_url):]))

    def _close(self):  # wsgidav calls this on shutdown
        pass

    def under(self, ref_url: str) -> dict[str, list[tuple[str, str]]]:
        """Every dead property of ``ref_url`` and of everything below it, in one query: {ref_url: [(name, xml)]}."""
        out: dict[str, list[tuple[str, str]]] = {}
        base = ref_url.rstrip("/")
        with self.repo.read() as c:
            for r in c.execute(sa.select(P.c.path, P.c.name, P.c.value).where(sa.or_(
                    P.c.path == ref_url, P.c.path == base, _like_children(P.c.path, base)))):
                out.setdefault(r.path, []).append((r.name, r.value))
        return out


def _encode_lock(lock: dict) -> str:
    out = {}
    for k, v in lock.items():
        out[k] = {"b64": base64.b64encode(v).decode()} if isinstance(v, bytes) else v
    return json.dumps(out)


def _decode_lock(text: str) -> dict:
    lock = json.loads(text)
    return {k: base64.b64decode(v["b64"]) if isinstance(v, dict) and "b64" in v else v for k, v in lock.items()}


class DbLockStorage:
    """wsgidav LockStorage over the ``dav_locks`` table. No lock outlives ``max_seconds`` (webdav.lock_max_seconds),
    whatever timeout reaches it (the core already capped the client's; this is the last line)."""

    LOCK_TIME_OUT_DEFAULT = LockStorageDict.LOCK_TIME_OUT_DEFAULT
    LOCK_TIME_OUT_MAX = LockStorageDict.LOCK_TIME_OUT_MAX

    def __init__(self, repo: Repository, max_seconds: float | None = None):
        self.repo = repo
        if max_seconds is not None:
            self.LOCK_TIME_OUT_MAX = max_seconds
            self.LOCK_TIME_OUT_DEFAULT = min(self.LOCK_TIME_OUT_DEFAULT, max_seconds)

    def __repr__(self) -> str:
        return "DbLockStorage"

    def open(self):
        pass

    def close(self):
        pass

    def cleanup(self):
        with self.repo.write() as c:
            c.execute(L.delete().where(L.c.expire >= 0, L.c.expire < time.time()))

    def clear(self):
        with self.repo.write() as c:
            c.execute(L.delete())

    def get(self, token):
        with self.repo.read() as c:
            row = c.execute(sa.select(L.c.data, L.c.expire).where(L.c.token == token)).first()
        if row is None:
            return None
        if 0 <= row.expire < time.time():
            self.delete(token)
            return None
        return _decode_lock(row.data)

    def create(self, path, lock):
        assert lock.get("token") is None and lock.get("expire") is None
        lock["root"] = normalize_lock_root(path)
        timeout = lock.get("timeout")
        timeout = self.LOCK_TIME_OUT_DEFAULT if timeout is None else float(timeout)
        if timeout < 0 or timeout > self.LOCK_TIME_OUT_MAX:
            timeout = self.LOCK_TIME_OUT_MAX
        lock["timeout"] = timeout
        lock["expire"] = time.time() + timeout
        validate_lock(lock)
        lock["token"] = generate_lock_token()
        with self.repo.write() as c:
            c.execute(L.insert().values(token=lock["token"], root=lock["root"], data=_encode_lock(lock),
                                        expire=lock["expire"]))
        return lock

    def refresh(self, token, *, timeout):
        lock = self.get(token)
        if lock is None:
            raise ValueError("Lock must exist")
        if timeout < 0 or timeout > self.LOCK_TIME_OUT_MAX:
            timeout = self.LOCK_TIME_OUT_MAX
        lock["timeout"] = timeout
        lock["expire"] = time.time() + timeout
        with self.repo.write() as c:
            c.execute(L.update().where(L.c.token == token).values(data=_encode_lock(lock), expire=lock["expire"]))
        return lock

    def delete(self, token):
        with self.repo.write() as c:
            return c.execute(L.delete().where(L.c.token == token)).rowcount > 0

    def roots(self) -> list[str]:
        """Roots of all live locks (one query; locks are few)."""
        now = time.time()
        with self.repo.read() as c:
            return [r.root for r in c.execute(sa.select(L.c.root, L.c.expire)) if not 0 <= r.expire < now]

    def get_lock_list(self, path, *, include_root, include_children, token_only):
        path = normalize_lock_root(path)
        conds = []
        if include_root:
            conds.append(L.c.root == path)
        if include_children:
            conds.append(_like_children(L.c.root, path))
        now = time.time()
        with self.repo.read() as c:
            rows = c.execute(sa.select(L.c.token, L.c.data, L.c.expire).where(sa.or_(*conds))).all()
        out = []
        for r in rows:
            if 0 <= r.expire < now:
                continue
            out.append(r.token if token_only else _decode_lock(r.data))
        return out



class LockPrincipal(str):
    """The account name wsgidav's lock manager holds locks under -- always the canonical account name, whatever
    the client typed (``DOMAIN\\user``) -- carrying the core's answer to whether other accounts' locks hold this
    account's writes back (:func:`auth.policy.held_back_by_others_locks`)."""

    others_hold_back: bool

    def __new__(cls, name: str, others_hold_back: bool = True):
        self = super().__new__(cls, name)
        self.others_hold_back = others_hold_back
        return self


class GatewayLockManager(LockManager):
    """wsgidav's lock manager, where a writer whose principal says others' locks do not hold it back (POD MI's
    deliveries) meets only its own locks: a 423 for it names none of another account's locks."""

    def _get_write_conflicts(self, url, depth, token_list, principal):
        errcond = super()._get_write_conflicts(url, depth, token_list, principal)
        if getattr(principal, "others_hold_back", True) or not errcond.hrefs:
            return errcond
        errcond.hrefs = [href for href in errcond.hrefs if any(
            lock["principal"] == principal and lock["token"] not in token_list
            for lock in self.get_url_lock_list(href, recursive=False))]
        return errcond
