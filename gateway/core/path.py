"""The virtual tree, parsed in exactly one place.

``/`` lists the centres an account may see; ``/<centre-id>/`` is a centre's mailbox; below it, folders (at most
``max_depth`` levels) and documents. Every front-end turns its raw path into a :class:`VPath` with
:func:`parse` and nothing else. There is no real filesystem behind these paths, so ``..`` can never escape:
it is resolved here, and anything that is not a well-formed path into the tree answers as a name that does not
exist.
"""
from __future__ import annotations

import fnmatch
import unicodedata
from dataclasses import dataclass

from gateway.core import enterprise
from storage.errors import InvalidName, NotFound

# "/" separates components; "\\" would be a separator for Windows clients. Other characters Windows dislikes
# (< > : " | ? *) are allowed: POD MI's file names are theirs, and every page escapes names.
_FORBIDDEN = set("\\/")


@dataclass(frozen=True, slots=True)
class VPath:
    institution: str | None = None
    parts: tuple[str, ...] = ()

    @property
    def is_root(self) -> bool:
        return self.institution is None

    @property
    def is_mailbox(self) -> bool:
        return self.institution is not None and not self.parts

    @property
    def name(self) -> str:
        if self.parts:
            return self.parts[-1]
        return self.institution or "/"

    @property
    def folder(self) -> str:
        """The slash-joined folder this entry lives in, relative to the mailbox ("" = top level)."""
        return "/".join(self.parts[:-1])

    @property
    def relpath(self) -> str:
        """Path below the mailbox, slash-joined ("" for the mailbox itself)."""
        return "/".join(self.parts)

    @property
    def parent(self) -> "VPath":
        if self.parts:
            return VPath(self.institution, self.parts[:-1])
        return ROOT

    def child(self, name: str) -> "VPath":
        if self.institution is None:
            return VPath(name, ())
        return VPath(self.institution, self.parts + (name,))

    def __str__(self) -> str:
        if self.institution is None:
            return "/"
        return "/" + "/".join((self.institution,) + self.parts)


ROOT = VPath()


def _decode(raw: str | bytes) -> str:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise NotFound() from None
    return unicodedata.normalize("NFC", raw)


def parse(raw: str | bytes, cwd: VPath = ROOT) -> VPath:
    """Resolve ``raw`` (absolute, or relative to ``cwd``) to a VPath.

    Raises NotFound for anything that cannot name an entry of the tree: undecodable bytes, control characters,
    a first component that is not a valid enterprise number.
    """
    text = _decode(raw)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):  # NUL and every other control character
        raise NotFound()
    start = () if text.startswith("/") or not cwd.institution else (cwd.institution, *cwd.parts)
    stack = _without_dot_segments(text.split("/"), start)
    if not stack:
        return ROOT
    if not enterprise.is_valid(stack[0]):
        raise NotFound()
    return VPath(stack[0], tuple(stack[1:]))


def request_path(raw: str | bytes) -> str:
    """The path an HTTP request names (percent-decoding done; a WSGI ``PATH_INFO`` is those bytes as latin-1),
    as text: UTF-8 or NotFound (overlong forms such as ``%C0%AE`` and stray bytes included), NUL refused, dot
    segments resolved inside the tree as :func:`parse` resolves them, a trailing slash kept. Nothing else is
    changed: names are normalised where they are looked up (:func:`parse`)."""
    if isinstance(raw, str):
        try:
            raw = raw.encode("latin-1")
        except UnicodeEncodeError:
            raise NotFound() from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotFound() from None
    if "\x00" in text:
        raise NotFound()
    if not text:
        return text
    comps = text.split("/")
    stack = _without_dot_segments(comps)
    folder = comps[-1] in ("", ".", "..")
    return "/" + "/".join(stack) + ("/" if stack and folder else "")


def _without_dot_segments(comps: list[str], start: tuple[str, ...] = ()) -> list[str]:
    """Path components with empty and ``.`` ones dropped and ``..`` resolved, after ``start`` and never above the
    root."""
    stack = list(start)
    for comp in comps:
        if comp in ("", "."):
            continue
        if comp == "..":
            if stack:
                stack.pop()
            continue
        stack.append(comp)
    return stack


def check_new_name(path: VPath, *, max_depth: int, max_name_length: int, is_folder: bool) -> None:
    """Rules for a name someone is about to create. Raises InvalidName with the reason."""
    if path.institution is None or not path.parts:
        raise InvalidName("documents and folders can only be created inside a centre's mailbox")
    folder_levels = len(path.parts) if is_folder else len(path.parts) - 1
    if folder_levels > max_depth:
        raise InvalidName(f"folders may be nested at most {max_depth} levels deep")
    for comp in path.parts:
        if len(comp) > max_name_length or len(comp.encode("utf-8")) > 255:
            raise InvalidName(f"name too long (at most {max_name_length} characters)")
        if comp != comp.strip() or comp.endswith("."):
            raise InvalidName("names may not begin or end with spaces or end with a dot")
        if _FORBIDDEN & set(comp):
            raise InvalidName("names may not contain \\ or /")
        if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") for ch in comp):
            raise InvalidName("names may not contain control or invisible formatting characters")


def is_temporary_name(name: str, *, suffixes: tuple[str, ...], patterns: tuple[str, ...]) -> bool:
    """Is ``name`` a client's temporary upload name (a staged upload, committed by a rename to its final name)?
    It ends in one of ``suffixes`` (WinSCP's ``.filepart``, ``.part``) after at least one character, or matches one
    of ``patterns`` as a whole (shell-style, case-sensitive: rclone's ``NAME.<random>.partial``)."""
    return (any(name.endswith(s) and len(name) > len(s) for s in suffixes)
            or any(fnmatch.fnmatchcase(name, p) for p in patterns))


def normalize(raw: str | bytes) -> str:
    """Lexical absolute form of ``raw`` (relative paths are taken from ``/``), for SFTP's realpath.
    It decides nothing about existence or visibility."""
    try:
        text = _decode(raw)
    except NotFound:
        text = "/"
    return "/" + "/".join(_without_dot_segments(text.split("/")))
