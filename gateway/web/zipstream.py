"""Several documents as one ZIP, streamed: the archive is written chunk by chunk as the documents are read, never
held whole in memory (``zipfile`` writes to a sink that cannot seek: each member then carries a data descriptor).

PDFs are stored as they are (no compression: they are compressed already). Each document is read through the
core's :class:`~gateway.core.transfer.Download` the caller opened, so each is authorized, recorded (complete, or
aborted when the client goes away) and marks its receipt, exactly as a download of that document alone.

Member names come from the documents' places in the mailbox, made safe for every unzip tool: no absolute path, no
``..``, no backslash, no character Windows refuses, and each name once (case-insensitively).
"""
from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from gateway.core.localtime import BRUSSELS
from storage.repository import as_utc

log = logging.getLogger("instpages.page")

#: bytes read from a document at a time
CHUNK = 256 * 1024
#: what Windows refuses in a name, and control characters
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\]')
_MAX_COMPONENT = 120


@dataclass(frozen=True, slots=True)
class Member:
    """One document of the ZIP: its name inside, when it was delivered, and how to open it (the core's download,
    opened only when its turn comes)."""
    name: str
    delivered_at: datetime | None
    open: Callable[[], object]


class _Sink:
    """Where ``zipfile`` writes: kept until the stream takes it (no seek, no tell: a stream)."""

    def __init__(self):
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def safe_component(part: str) -> str:
    """One path component, safe to extract anywhere."""
    part = _UNSAFE.sub("_", part).strip().rstrip(". ")
    if part in ("", ".", ".."):
        part = "_"
    return part[:_MAX_COMPONENT]


def member_names(relpaths: list[str]) -> list[str]:
    """Safe, unique member names for documents at these places in the mailbox (``folder/name``), in order."""
    seen: set[str] = set()
    names = []
    for relpath in relpaths:
        parts = [safe_component(p) for p in relpath.split("/") if p not in ("",)] or ["document.pdf"]
        candidate = "/".join(parts)
        stem, dot, ext = candidate.rpartition(".")
        if not dot or "/" in ext:
            stem, ext = candidate, ""
        n = 1
        while candidate.lower() in seen:
            n += 1
            candidate = f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})"
        seen.add(candidate.lower())
        names.append(candidate)
    return names


def _stamp(moment: datetime | None) -> tuple[int, int, int, int, int, int]:
    if moment is None:
        return (1980, 1, 1, 0, 0, 0)
    local = as_utc(moment).astimezone(BRUSSELS)
    return (max(local.year, 1980), local.month, local.day, local.hour, local.minute, local.second)


def zip_stream(members: list[Member]) -> Iterator[bytes]:
    """The ZIP of ``members``, in chunks. A document whose download cannot be opened or read stops the stream
    (the client sees an incomplete download); a client that goes away closes the current download as aborted."""
    sink = _Sink()
    zf = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
    for member in members:
        download = member.open()
        try:
            info = zipfile.ZipInfo(member.name, date_time=_stamp(member.delivered_at))
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = download.size
            info.external_attr = 0o644 << 16
            with zf.open(info, "w") as out:
                offset = 0
                while offset < download.size:
                    data = download.fetch(offset, CHUNK)
                    if not data:
                        raise OSError(f"document {member.name!r} ended at {offset} of {download.size} bytes")
                    out.write(data)
                    yield sink.take()
                    download.served(offset, len(data))  # the server took it and asked for more: sent
                    offset += len(data)
            yield sink.take()
        except BaseException:
            download.close(aborted=True)
            raise
        download.close()
    zf.close()
    yield sink.take()
