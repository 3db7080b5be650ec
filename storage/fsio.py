"""Small file-system helpers shared by the blob store and the keyring (and the content check's stream view).

- :func:`write_all` writes every byte to a file descriptor (``os.write`` may write fewer);
- :func:`fsync_dir` makes a rename, link or new entry in a directory durable;
- :class:`ReadOnlyStream` is the ``io.RawIOBase`` base of a readable, seekable, never writable stream.
"""
from __future__ import annotations

import io
import os
from pathlib import Path


def write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ReadOnlyStream(io.RawIOBase):
    """Readable and seekable, never writable; subclasses give ``readinto``, ``seek`` and ``tell``."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False
