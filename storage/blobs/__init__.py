"""Encrypted document storage ("blobs"): every document encrypted at rest under its own key, readable at any
byte range, wherever its bytes live.

- :mod:`storage.blobs.store`  -- :class:`BlobRef` and the :class:`BlobStore` protocol the core and recovery use,
  with the byte-level :class:`BlobSink` / :class:`BlobSource` a store implements;
- :mod:`storage.blobs.chunks` -- the on-storage format: header, AES-256-GCM per chunk, nonce/tag layout, data keys;
- :mod:`storage.blobs.writer` / :mod:`storage.blobs.reader` -- that format applied over any sink / source
  (SHA-256 of the plaintext, range reads, the hash check on full reads);
- :mod:`storage.blobs.local`  -- the local-folder store (temporary files, fsync, atomic rename on commit).
"""
