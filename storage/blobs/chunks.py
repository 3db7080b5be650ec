"""The encrypted blob format: every document encrypted under its own key, in authenticated chunks.

Blob format (version 1)
=======================

::

    header   16 bytes   magic b"IPGBLOB" | version u8 (=1) | chunk_size u32 BE | reserved u32 (=0)
    chunk 0  AES-256-GCM(dek, nonce=0, plaintext[0:cs], aad=header|u64 0|final) = ciphertext || 16-byte tag
    chunk 1  ...
    chunk n-1 (final, flag 1): 1..cs plaintext bytes + tag; an empty blob is one empty final chunk (tag only)

* ``dek`` is a fresh random 256-bit data key per blob.  It is stored only wrapped by a master key of the
  :class:`~storage.keyring.Keyring` (``BlobRef.key_id``/``BlobRef.wrapped_key``), with the blob id as associated
  data, so a wrapped key moved to another blob does not unwrap.
* The GCM nonce of chunk *i* is *i* as a 12-byte big-endian counter.  This is safe because GCM only requires that
  a (key, nonce) pair never encrypts two different messages: the key is random and used for exactly one blob,
  the writer encrypts each chunk index exactly once (it holds back a full chunk until it knows whether more data
  follows, so the final chunk is never re-encrypted), and a 96-bit counter cannot wrap.  Nothing is left for a
  random nonce to protect, and a counter costs no space.
* The associated data of every chunk is ``header || index (u64 BE) || final flag (1 byte)``.  The header binds
  format version and chunk size; the index detects swapped, dropped or duplicated chunks; the final flag detects
  truncation at a chunk border (the new last chunk was written as non-final) and extension (the old final chunk
  is no longer last).
* Every ciphertext chunk is ``chunk_size + 16`` bytes except the last (16..chunk_size+16), so the plaintext size
  follows from the stored size: ``n = ceil((stored_size - 16) / (chunk_size + 16))``,
  ``size = stored_size - 16 - 16 * n``.  A blob whose size fits no such layout, or disagrees with
  ``BlobRef.size``, is rejected before anything is decrypted.

The format says nothing about where the bytes live: :mod:`storage.blobs.writer` and :mod:`storage.blobs.reader`
apply it over any :class:`~storage.blobs.store.BlobSink` / :class:`~storage.blobs.store.BlobSource`.
"""
from __future__ import annotations

import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.errors import IntegrityFailure
from storage.keyring import Keyring

MAGIC = b"IPGBLOB"
FORMAT_VERSION = 1
DEFAULT_CHUNK_SIZE = 256 * 1024
MAX_CHUNK_SIZE = 64 * 1024 * 1024
TAG_SIZE = 16
_HEADER = struct.Struct(">7sBII")
HEADER_SIZE = _HEADER.size  # 16
_INDEX = struct.Struct(">Q")


def header(chunk_size: int) -> bytes:
    """The 16-byte header of a blob with chunks of ``chunk_size`` plaintext bytes."""
    return _HEADER.pack(MAGIC, FORMAT_VERSION, chunk_size, 0)


def parse_header(data: bytes) -> int:
    """The chunk size a header declares; IntegrityFailure when it is not a version-1 header."""
    if len(data) != HEADER_SIZE:
        raise IntegrityFailure()
    magic, version, chunk_size, reserved = _HEADER.unpack(data)
    if magic != MAGIC or version != FORMAT_VERSION or reserved != 0 or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise IntegrityFailure()
    return chunk_size


def layout(stored_size: int, chunk_size: int) -> tuple[int, int]:
    """``(number of chunks, plaintext size)`` of a blob of ``stored_size`` bytes; IntegrityFailure when no
    chunk sequence has that size."""
    body = stored_size - HEADER_SIZE
    stride = chunk_size + TAG_SIZE
    nchunks = -(-body // stride)
    last_ct = body - (nchunks - 1) * stride
    if body < TAG_SIZE or last_ct < TAG_SIZE or (nchunks > 1 and last_ct == TAG_SIZE):
        raise IntegrityFailure()
    return nchunks, body - TAG_SIZE * nchunks


def chunk_offset(index: int, chunk_size: int) -> int:
    """Where the ciphertext of chunk ``index`` starts in the stored blob."""
    return HEADER_SIZE + index * (chunk_size + TAG_SIZE)


def nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def aad(header_bytes: bytes, index: int, final: bool) -> bytes:
    return header_bytes + _INDEX.pack(index) + (b"\x01" if final else b"\x00")


def check_chunk_size(chunk_size: int) -> int:
    if not isinstance(chunk_size, int) or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE}")
    return chunk_size


def new_data_key(keyring: Keyring, blob_id: str) -> tuple[AESGCM, str, bytes]:
    """A fresh data key for blob ``blob_id``: its cipher, and the key wrapped by the keyring's current master key
    (``key_id``, ``wrapped_key``) with the blob id as context."""
    dek = AESGCM.generate_key(bit_length=256)
    key_id, wrapped = keyring.wrap(dek, blob_id.encode("ascii"))
    return AESGCM(dek), key_id, wrapped


def data_key(keyring: Keyring, blob_id: str, key_id: str, wrapped_key: bytes) -> AESGCM:
    """The cipher of a stored blob, from its wrapped data key."""
    return AESGCM(keyring.unwrap(key_id, wrapped_key, blob_id.encode("ascii")))
