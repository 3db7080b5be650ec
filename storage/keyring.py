"""Master keys that wrap the per-blob data keys.

A :class:`Keyring` holds one or more 32-byte AES-256 master keys by key id; exactly one is *current* and is
used for all new wrapping.  Old keys stay available for unwrapping, so rotating the master key never touches a
stored document: a document is moved to the new key by :meth:`Keyring.rewrap`, which only rewrites the small
wrapped data key kept next to the document's metadata.

On disk (:meth:`Keyring.load_or_create`) a keyring is a directory (mode 0700) holding

* ``master-<id>.key`` -- 32 random bytes, mode 0600, one per key;
* ``current``         -- the id of the current key (ASCII, newline-terminated), mode 0600;
* ``.lock``           -- an empty file used with ``flock`` so that two processes never create keys at once.

Key ids are ``k000001``, ``k000002``, ...: stable, unique within the directory, and ordered both as strings and
as numbers.  All files are written atomically (temporary file, fsync, rename/link, fsync of the directory).

Wrapped key format: ``nonce (12 bytes) || AES-256-GCM(master, nonce, dek, aad) (len(dek) + 16 bytes)`` where
``aad = b"ipg-wrap-v1\\0" || key_id || b"\\0" || context``.  The caller passes the blob id as ``context``, so a
wrapped key copied to another blob, or relabelled with another key id, fails to unwrap.

Key material is never logged and never appears in ``repr()``.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import stat
import threading
from pathlib import Path
from typing import Iterator, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.errors import ConfigError, IntegrityFailure
from storage.fsio import fsync_dir, write_all

__all__ = ["Keyring", "KEY_SIZE"]

KEY_SIZE = 32
_NONCE_SIZE = 12
_TAG_SIZE = 16
_WRAP_LABEL = b"ipg-wrap-v1\0"
_KEY_FILE_RE = re.compile(r"^master-(k[0-9]{6,})\.key$")
_KEY_ID_RE = re.compile(r"^k[0-9]{6,}$")
_CURRENT_FILE = "current"
_LOCK_FILE = ".lock"


class Keyring:
    """Master keys by id; one of them is current.  Thread-safe (state is replaced, never mutated in place)."""

    __slots__ = ("_state", "_lock", "__weakref__")

    def __init__(self, keys: Mapping[str, bytes], current: str):
        self._lock = threading.Lock()
        self._state = _build_state(keys, current)

    # -- construction -------------------------------------------------------------------------------------

    @classmethod
    def from_keys(cls, keys: Mapping[str, bytes], current: str) -> "Keyring":
        """A keyring from key material held elsewhere (tests, configuration).  Keys must be 32 bytes."""
        return cls(keys, current)

    @classmethod
    def load_or_create(cls, directory: Path) -> "Keyring":
        """Load the keyring kept in ``directory``; create the directory and a first key if there is none."""
        directory = Path(directory)
        _ensure_private_dir(directory)
        with _dir_lock(directory):
            keys = _read_keys(directory)
            current = _read_current(directory)
            if not keys:
                if current is not None:
                    raise ConfigError(f"keyring {directory}: 'current' names {current!r} but no key files exist")
                current = _create_key_file(directory, keys)
                _write_current(directory, current)
            elif current is None:
                # A crash between writing the first key and writing 'current': the newest key is current.
                current = max(keys, key=_id_number)
                _write_current(directory, current)
            elif current not in keys:
                raise ConfigError(f"keyring {directory}: current key {current!r} has no key file")
            return cls(keys, current)

    # -- introspection -----------------------------------------------------------------------------------

    @property
    def current_id(self) -> str:
        return self._state[0]

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._state[1], key=_id_sort_key)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._state[1]

    def __repr__(self) -> str:
        current, keys = self._state[:2]
        return f"Keyring(current={current!r}, key_ids={sorted(keys, key=_id_sort_key)!r})"

    __str__ = __repr__

    def __reduce__(self):  # never let key material leak through pickling
        raise TypeError("Keyring cannot be pickled")

    def derive(self, label: bytes) -> bytes:
        """A 32-byte key for another purpose (e.g. signing session cookies), derived with HKDF from the oldest
        master key so that every gateway process sharing the keyring derives the same one, and rotation of the
        current key does not change it."""
        import hashlib

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        oldest = self.key_ids[0]
        # the keyring holds AES-GCM instances, not raw bytes: the master key's output for a label-specific
        # nonce is the secret input of HKDF (a distinct nonce per label keeps derived keys independent)
        nonce = hashlib.sha256(b"instpages-derive-v1|" + label).digest()[:12]
        material = self._state[1][oldest].encrypt(nonce, b"\0" * 32, b"instpages-derive-v1")
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                    info=b"instpages-derive-v1|" + label).derive(material)

    # -- wrapping ----------------------------------------------------------------------------------------

    def wrap(self, dek: bytes, context: bytes) -> tuple[str, bytes]:
        """Encrypt ``dek`` under the current master key; returns ``(key_id, wrapped)``."""
        current, keys = self._state[:2]
        nonce = secrets.token_bytes(_NONCE_SIZE)
        return current, nonce + keys[current].encrypt(nonce, bytes(dek), _aad(current, context))

    def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes:
        """Decrypt a wrapped key.  Unknown key id, wrong context or any tampering -> IntegrityFailure."""
        keys = self._state[1]
        aead = keys.get(key_id) if isinstance(key_id, str) else None
        if aead is None:
            raise IntegrityFailure("stored document key refers to an unknown master key")
        wrapped = bytes(wrapped)
        if len(wrapped) < _NONCE_SIZE + _TAG_SIZE:
            raise IntegrityFailure("stored document key is malformed")
        try:
            return aead.decrypt(wrapped[:_NONCE_SIZE], wrapped[_NONCE_SIZE:], _aad(key_id, context))
        except InvalidTag:
            raise IntegrityFailure("stored document key failed its integrity check") from None

    def rewrap(self, key_id: str, wrapped: bytes, context: bytes) -> tuple[str, bytes]:
        """Unwrap with the (old) key ``key_id`` and wrap again with the current key."""
        return self.wrap(self.unwrap(key_id, wrapped, context), context)

    # -- rotation ----------------------------------------------------------------------------------------

    def rotate(self, directory: Path) -> str:
        """Create a new master key in ``directory``, make it current (on disk and here); returns its id.

        Old keys are kept.  Keys that other processes added to the directory meanwhile are picked up too; keys
        this keyring was given by :meth:`from_keys` stay usable here but are not written to the directory.
        """
        directory = Path(directory)
        _ensure_private_dir(directory)
        with self._lock, _dir_lock(directory):
            keys = _read_keys(directory)
            for key_id, key in self._state[2].items():  # keys given to from_keys() stay usable
                if keys.setdefault(key_id, key) != key:
                    raise ConfigError(f"keyring {directory}: key {key_id!r} differs from the one in use")
            new_id = _create_key_file(directory, keys)
            _write_current(directory, new_id)
            self._state = _build_state(keys, new_id)
            return new_id


# -- helpers -----------------------------------------------------------------------------------------------


def _aad(key_id: str, context: bytes) -> bytes:
    return _WRAP_LABEL + key_id.encode("ascii") + b"\0" + bytes(context)


def _build_state(keys: Mapping[str, bytes], current: str) -> tuple[str, dict[str, AESGCM], dict[str, bytes]]:
    if not keys:
        raise ConfigError("keyring: no master keys")
    built: dict[str, AESGCM] = {}
    raw: dict[str, bytes] = {}
    for key_id, key in keys.items():
        if not isinstance(key_id, str) or not key_id or not key_id.isascii() or not key_id.isprintable():
            raise ConfigError("keyring: key ids must be non-empty printable ASCII strings")
        if not isinstance(key, (bytes, bytearray, memoryview)) or len(key) != KEY_SIZE:
            raise ConfigError(f"keyring: master key {key_id!r} must be {KEY_SIZE} bytes")
        raw[key_id] = bytes(key)
        built[key_id] = AESGCM(raw[key_id])
    if current not in built:
        raise ConfigError(f"keyring: current key {current!r} is not among the keys")
    return current, built, raw


def _id_number(key_id: str) -> int:
    return int(key_id[1:])


def _id_sort_key(key_id: str) -> tuple[int, int, str]:
    if _KEY_ID_RE.match(key_id):
        return (0, _id_number(key_id), key_id)
    return (1, 0, key_id)


def _ensure_private_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"keyring {directory}: cannot create directory ({exc.strerror})") from None
    st = directory.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"keyring {directory}: not a directory")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(directory, 0o700)


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    fd = os.open(directory / _LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_keys(directory: Path) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for entry in os.scandir(directory):
        match = _KEY_FILE_RE.match(entry.name)
        if not match:
            continue
        st = entry.stat(follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"keyring {directory}: {entry.name} is not a regular file")
        if st.st_mode & 0o077:
            raise ConfigError(f"keyring {directory}: {entry.name} is accessible by other users (must be 0600)")
        with open(entry.path, "rb") as fh:
            key = fh.read(KEY_SIZE + 1)
        if len(key) != KEY_SIZE:
            raise ConfigError(f"keyring {directory}: {entry.name} does not hold a {KEY_SIZE}-byte key")
        keys[match.group(1)] = key
    return keys


def _read_current(directory: Path) -> str | None:
    try:
        text = (directory / _CURRENT_FILE).read_text("ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"keyring {directory}: cannot read '{_CURRENT_FILE}'") from None
    if not _KEY_ID_RE.match(text):
        raise ConfigError(f"keyring {directory}: '{_CURRENT_FILE}' does not name a key id")
    return text


def _create_key_file(directory: Path, keys: dict[str, bytes]) -> str:
    """Write a fresh random key under the next free id, never overwriting; adds it to ``keys``."""
    number = max((_id_number(k) for k in keys if _KEY_ID_RE.match(k)), default=0) + 1
    key = secrets.token_bytes(KEY_SIZE)
    tmp = _write_temp(directory, key)
    try:
        while True:
            key_id = f"k{number:06d}"
            try:
                os.link(tmp, directory / f"master-{key_id}.key")  # atomic and refuses to overwrite
                break
            except FileExistsError:
                number += 1
    finally:
        os.unlink(tmp)
    fsync_dir(directory)
    keys[key_id] = key
    return key_id


def _write_current(directory: Path, key_id: str) -> None:
    tmp = _write_temp(directory, key_id.encode("ascii") + b"\n")
    try:
        os.replace(tmp, directory / _CURRENT_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def _write_temp(directory: Path, data: bytes) -> Path:
    tmp = directory / f".tmp-{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # regardless of umask
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    return tmp
