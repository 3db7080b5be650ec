"""Encrypted blob store and keyring: round trips, ranged reads, visibility, tampering, key rotation.

The blob store contract runs against both stores, the local folder and S3 (SeaweedFS, started by the suite), with
the same assertions; what only one store has (file modes, multipart uploads) is tested on that store alone.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import random
import stat
import threading
import time
import uuid
from pathlib import Path

import pytest

from storage.blobs import reader as blobstore
from storage.blobs.chunks import HEADER_SIZE, TAG_SIZE
from storage.blobs.local import LocalBlobStore
from storage.blobs.s3 import S3BlobStore, S3Settings
from storage.blobs.store import BlobRef, BlobStore
from storage.errors import ConfigError, IntegrityFailure, NotFound
from storage.keyring import Keyring

CS = 1024  # small chunks keep multi-chunk cases cheap
PART = 5 * 1024 * 1024  # S3 parts of the smallest size S3 allows


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.from_keys({"k000001": bytes(range(32))}, "k000001")


@pytest.fixture(params=["local", "s3"])
def make_store(request, tmp_path: Path, keyring: Keyring):
    """``make_store(chunk_size=..., keyring=..., owner=..., shift=...)``: a store of the kind under test; every store
    one test makes shares one folder or one bucket prefix; ``shift`` seconds are added to the store's clock."""
    kind = request.param
    prefix = f"t{uuid.uuid4().hex[:12]}/"
    made: list[BlobStore] = []

    def make(chunk_size: int = CS, keyring: Keyring = keyring, owner: str = "node-a/0", shift: float = 0):
        def clock() -> float:
            return time.time() + shift

        if kind == "local":
            store = LocalBlobStore(tmp_path / "blobs", keyring, chunk_size=chunk_size, owner=owner, clock=clock)
        else:
            s3 = request.getfixturevalue("s3_server")
            settings = S3Settings(endpoint=s3.endpoint, bucket=s3.bucket, prefix=prefix, access_key=s3.access_key,
                                  secret_key=s3.secret_key, part_size=PART)
            store = S3BlobStore(settings, keyring, chunk_size, owner=owner, clock=clock)
        made.append(store)
        return store

    make.kind = kind
    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store) -> BlobStore:
    return make_store()


@pytest.fixture
def local_store(tmp_path: Path, keyring: Keyring) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs", keyring, chunk_size=CS)


def put(store: BlobStore, data: bytes, piece: int | None = None) -> BlobRef:
    with store.create() as writer:
        step = piece or max(1, len(data))
        for i in range(0, len(data), step):
            writer.write(data[i:i + step])
        ref = writer.finish()
        writer.commit()
    return ref


def read_all(store: BlobStore, ref: BlobRef, piece: int = -1, verify: bool = True) -> bytes:
    with store.open(ref, verify=verify) as reader:
        if piece < 0:
            return reader.read()
        parts = []
        while True:
            part = reader.read(piece)
            if not part:
                return b"".join(parts)
            parts.append(part)


def blob_path(store: LocalBlobStore, blob_id: str) -> Path:
    return store.root / blob_id[:2] / blob_id[2:4] / blob_id


def raw_read(store: BlobStore, blob_id: str) -> bytes:
    """The stored (encrypted) bytes of a committed blob, as the storage holds them."""
    if isinstance(store, LocalBlobStore):
        return blob_path(store, blob_id).read_bytes()
    r = store.call("get_object", Key=store.final_key(blob_id))
    return r["Body"].read()


def raw_write(store: BlobStore, blob_id: str, data: bytes) -> None:
    """Replace the stored bytes of a committed blob (someone with access to the storage tampering with it)."""
    if isinstance(store, LocalBlobStore):
        blob_path(store, blob_id).write_bytes(data)
    else:
        store.call("put_object", Key=store.final_key(blob_id), Body=data)


def temporaries(store: BlobStore, owner: str | None = None) -> list[str]:
    return sorted(t.blob_id for t in store.list_temporary(owner))


def chunk_span(index: int, cs: int = CS) -> tuple[int, int]:
    start = HEADER_SIZE + index * (cs + TAG_SIZE)
    return start, start + cs + TAG_SIZE


# -- round trips -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CS - 1, CS, CS + 1, 2 * CS, 3 * CS + 7])
def test_round_trip(store: BlobStore, size: int):
    data = random.Random(size).randbytes(size)
    ref = put(store, data)
    assert ref.size == size
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert read_all(store, ref) == data
    assert read_all(store, ref, piece=100) == data
    # the file size is exactly header + plaintext + one tag per chunk (an empty blob has one empty chunk)
    nchunks = max(1, -(-size // CS))
    assert len(raw_read(store, ref.blob_id)) == HEADER_SIZE + size + TAG_SIZE * nchunks


def test_round_trip_several_megabytes_default_chunks(make_store):
    store = make_store(chunk_size=256 * 1024)  # the default chunks
    data = os.urandom(5 * 1024 * 1024 + 12345)
    rng = random.Random(1)
    with store.create() as writer:
        pos = 0
        while pos < len(data):  # odd piece sizes, some far larger than a chunk, mixed buffer types
            n = rng.choice([1, 7, 32768, 262144, 262145, 1_000_000])
            piece = data[pos:pos + n]
            writer.write(rng.choice([bytes, bytearray, memoryview])(piece))
            pos += n
        assert writer.size == len(data)
        ref = writer.finish()
        writer.commit()
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert read_all(store, ref) == data
    assert read_all(store, ref, piece=32768) == data
    with store.open(ref) as reader:
        buf = bytearray(len(data) + 10)
        assert reader.readinto(buf) == len(data)
        assert bytes(buf[:len(data)]) == data


def test_write_accepts_non_byte_memoryviews(store: BlobStore):
    import array

    numbers = array.array("I", range(1000))
    ref = put(store, memoryview(numbers))  # type: ignore[arg-type]
    assert read_all(store, ref) == numbers.tobytes()


# -- ranged and sequential reads ---------------------------------------------------------------------------


def test_random_ranges_match_plaintext(store: BlobStore):
    data = os.urandom(10 * CS + 333)
    ref = put(store, data)
    rng = random.Random(42)
    with store.open(ref) as reader:
        assert reader.size == len(data)
        cases = [(CS - 1, 2), (CS, CS), (CS - 5, CS + 10), (0, len(data)), (len(data) - 1, 5),
                 (len(data), 10), (len(data) + 100, 10), (5 * CS, 0)]
        cases += [(rng.randrange(len(data)), rng.choice([1, 15, CS - 1, CS, CS + 1, 3 * CS + 2]))
                  for _ in range(400)]
        for offset, length in cases:
            assert reader.read_range(offset, length) == data[offset:offset + length], (offset, length)
        assert reader.tell() == 0  # read_range does not move the position
        # random seeks + readinto through the io interface
        for _ in range(200):
            offset, length = rng.randrange(len(data) + 10), rng.randrange(1, 4 * CS)
            assert reader.seek(offset) == offset
            buf = bytearray(length)
            n = reader.readinto(buf)
            assert bytes(buf[:n]) == data[offset:offset + length]
            assert reader.tell() == offset + n


def test_seek_whence_and_io_wrappers(store: BlobStore):
    data = os.urandom(3 * CS + 10)
    ref = put(store, data)
    with store.open(ref) as reader:
        assert reader.readable() and reader.seekable() and not reader.writable()
        assert reader.seek(-10, io.SEEK_END) == len(data) - 10
        assert reader.read() == data[-10:]
        assert reader.read() == b""
        reader.seek(CS)
        reader.seek(5, io.SEEK_CUR)
        assert reader.read(7) == data[CS + 5:CS + 12]
        with pytest.raises(OSError):
            reader.seek(-1)
        reader.seek(0)
        assert io.BufferedReader(reader, buffer_size=100).read() == data
    assert reader.closed
    with pytest.raises(ValueError):
        reader.read(1)


def test_sequential_small_reads_decrypt_each_chunk_once(make_store, monkeypatch):
    store = make_store(chunk_size=256 * 1024)
    data = os.urandom(4 * 256 * 1024 + 5000)
    ref = put(store, data)
    decrypted: list[int] = []
    original = blobstore.BlobReader._decrypt_chunk

    def counting(self, index, dst):
        decrypted.append(index)
        return original(self, index, dst)

    monkeypatch.setattr(blobstore.BlobReader, "_decrypt_chunk", counting)
    with store.open(ref) as reader:
        parts = []
        offset = 0
        while offset < len(data):  # the SFTP pattern: positional 32 KiB reads
            parts.append(reader.read_range(offset, 32768))
            offset += 32768
    assert b"".join(parts) == data
    assert decrypted == [0, 1, 2, 3, 4]


def test_on_disk_file_does_not_contain_plaintext(store: BlobStore):
    data = (b"CONFIDENTIAL social welfare file 0123456789 " * 200)[:5000]
    ref = put(store, data)
    raw = raw_read(store, ref.blob_id)
    assert b"CONFIDENTIAL" not in raw
    for start in range(0, len(data) - 16, 97):
        assert data[start:start + 16] not in raw
    assert raw[:7] == b"IPGBLOB"
    assert read_all(store, ref) == data


def test_each_blob_has_its_own_key(store: BlobStore):
    data = b"same content" * 100
    a, b = put(store, data), put(store, data)
    assert a.blob_id != b.blob_id and a.wrapped_key != b.wrapped_key
    raw_a = raw_read(store, a.blob_id)
    raw_b = raw_read(store, b.blob_id)
    assert raw_a[:HEADER_SIZE] == raw_b[:HEADER_SIZE]
    assert raw_a[HEADER_SIZE:] != raw_b[HEADER_SIZE:]


# -- visibility, commit, abort, sweep, delete ------------------------------------------------------------------


def test_temporary_blob_invisible_until_commit(store: BlobStore):
    data = os.urandom(2 * CS + 1)
    writer = store.create()
    writer.write(data)
    ref = writer.finish()
    assert ref.blob_id == writer.blob_id
    assert list(store.list_ids()) == []
    assert not store.exists(ref.blob_id)
    with pytest.raises(NotFound):
        store.open(ref)
    with writer.open_reader() as reader:  # the caller validates the content before committing
        assert reader.read() == data
    writer.commit()
    assert list(store.list_ids()) == [ref.blob_id]
    assert store.exists(ref.blob_id)
    assert read_all(store, ref) == data
    assert temporaries(store) == []


def test_local_files_and_folders_are_private(local_store: LocalBlobStore):
    store = local_store
    ref = put(store, os.urandom(2 * CS + 1))
    path = blob_path(store, ref.blob_id)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (store.root, store.root / "tmp", path.parent, path.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    writer = store.create()
    writer.write(b"being written")
    temp = store.root / "tmp" / store.owner.split("/")[0] / "0" / f"{writer.blob_id}.tmp"
    assert stat.S_IMODE(temp.stat().st_mode) == 0o600
    for directory in (temp.parent, temp.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    writer.abort()


def test_writer_state_machine(store: BlobStore):
    writer = store.create()
    with pytest.raises(ValueError):
        writer.open_reader()
    with pytest.raises(ValueError):
        writer.commit()
    writer.write(b"abc")
    ref = writer.finish()
    assert writer.finish() == ref  # idempotent
    with pytest.raises(ValueError):
        writer.write(b"more")
    writer.commit()
    writer.commit()
    assert read_all(store, ref) == b"abc"


def test_abort_removes_temporary_blob(store: BlobStore):
    writer = store.create()
    writer.write(os.urandom(6 * 1024 * 1024 + 5))  # past one S3 part: the upload has reached the storage
    assert temporaries(store) == [writer.blob_id]
    writer.abort()
    writer.abort()  # idempotent
    assert temporaries(store) == []
    with pytest.raises(ValueError):
        writer.write(b"x")

    finished = store.create()
    finished.write(b"hello")
    finished.finish()
    assert temporaries(store) == [finished.blob_id]
    finished.abort()
    assert temporaries(store) == []
    assert list(store.list_ids()) == []


def test_context_manager_aborts_unless_committed(store: BlobStore):
    with pytest.raises(RuntimeError):
        with store.create() as writer:
            writer.write(b"partial")
            writer.finish()
            raise RuntimeError("upload interrupted")
    assert temporaries(store) == []

    with store.create() as writer:
        writer.write(b"kept")
        ref = writer.finish()
        writer.commit()
    writer.abort()  # after commit: a no-op, never deletes
    assert read_all(store, ref) == b"kept"
    assert list(store.list_ids()) == [ref.blob_id]


def leftover(store: BlobStore) -> str:
    """A temporary blob left behind by a crash between finishing and committing; its id."""
    writer = store.create()
    writer.write(b"left behind")
    writer.finish()
    return writer.blob_id


def test_sweep_temporary_by_owner_and_age(make_store):
    mine, sibling, other = make_store(owner="node-a/0"), make_store(owner="node-a/1"), make_store(owner="node-b/0")
    later = make_store(owner="node-c/0", shift=7200)  # a node whose sweep runs two hours from now
    a0, a1, b0 = leftover(mine), leftover(sibling), leftover(other)
    assert temporaries(mine) == sorted([a0, a1, b0])
    assert temporaries(mine, "node-a") == sorted([a0, a1])
    assert temporaries(mine, "node-a/1") == [a1]
    assert {t.owner for t in mine.list_temporary()} == {"node-a/0", "node-a/1", "node-b/0"}
    # the periodic sweep: young temporaries of anybody survive
    assert mine.sweep_temporary(owner=None, older_than=3600) == 0
    assert later.sweep_temporary(owner=None, older_than=3 * 3600) == 0
    # start-up recovery of node a: its own, of every worker, at any age -- never node b's upload in progress
    assert mine.sweep_temporary(owner="node-a", older_than=0) == 2
    assert temporaries(mine) == [b0]
    # node b's temporary, two hours old, past a one-hour bound: provably abandoned
    assert later.sweep_temporary(owner=None, older_than=3600) == 1
    assert temporaries(mine) == []
    assert mine.sweep_temporary(owner=None, older_than=0) == 0


def test_local_sweep_by_modification_time_and_old_leftovers(local_store: LocalBlobStore):
    store = local_store
    crashed = [store.create() for _ in range(2)]
    for writer in crashed:
        writer.write(b"left behind")
    fresh = store.create()
    fresh.write(b"being written")
    old = time.time() - 7200
    own = store.root / "tmp" / store.owner.split("/")[0] / "0"
    for writer in crashed:
        os.utime(own / f"{writer.blob_id}.tmp", (old, old))
    # a leftover of a version that named no owner: only the sweep of anybody's takes it
    untagged = store.root / "tmp" / f"{uuid.uuid4().hex}.tmp"
    untagged.write_bytes(b"x")
    os.utime(untagged, (old, old))
    assert store.sweep_temporary(owner=store.owner, older_than=3600) == 2
    assert temporaries(store) == sorted([fresh.blob_id, untagged.name[:-4]])
    assert store.sweep_temporary(owner=store.owner, older_than=0) == 1
    assert temporaries(store) == [untagged.name[:-4]]
    assert store.sweep_temporary(owner=None, older_than=3600) == 1
    assert temporaries(store) == []
    assert store.sweep_temporary(owner=None, older_than=0) == 0


def test_delete_and_list(store: BlobStore):
    refs = [put(store, bytes([i]) * (i * 300)) for i in range(5)]
    assert sorted(store.list_ids()) == sorted(r.blob_id for r in refs)
    store.delete(refs[0].blob_id)
    store.delete(refs[0].blob_id)  # idempotent
    store.delete("../../etc/passwd")  # malformed ids are simply absent
    assert not store.exists(refs[0].blob_id)
    assert not store.exists("../tmp")
    assert sorted(store.list_ids()) == sorted(r.blob_id for r in refs[1:])
    with pytest.raises(NotFound):
        store.open(refs[0])
    assert read_all(store, refs[3]) == bytes([3]) * 900


def test_store_satisfies_protocol(store: BlobStore):
    assert isinstance(store, BlobStore)
    store.ping()


# -- tampering -------------------------------------------------------------------------------------------------


@pytest.fixture
def victim(store: BlobStore):
    data = os.urandom(4 * CS + 100)  # chunks 0..3 full, chunk 4 holds 100 bytes
    ref = put(store, data)
    assert read_all(store, ref) == data
    return ref, ref.blob_id, data


def assert_unreadable(store: BlobStore, ref: BlobRef, verify: bool = True):
    with pytest.raises(IntegrityFailure):
        with store.open(ref, verify=verify) as reader:
            reader.read()


@pytest.mark.parametrize("where", ["header", "chunk-start", "chunk-middle", "tag", "last-chunk"])
def test_flipped_byte_detected(store, victim, where):
    ref, blob_id, _ = victim
    raw = bytearray(raw_read(store, blob_id))
    start, end = chunk_span(1)
    pos = {"header": 10, "chunk-start": start, "chunk-middle": start + CS // 2, "tag": end - 1,
           "last-chunk": len(raw) - 30}[where]
    raw[pos] ^= 0x01
    raw_write(store, blob_id, raw)
    assert_unreadable(store, ref, verify=False)  # the AEAD, not the hash, catches it


def test_flipped_byte_detected_by_ranged_read(store, victim):
    ref, blob_id, data = victim
    raw = bytearray(raw_read(store, blob_id))
    raw[chunk_span(2)[0] + 3] ^= 0x80
    raw_write(store, blob_id, raw)
    with store.open(ref) as reader:
        assert reader.read_range(0, CS) == data[:CS]  # untouched chunks still read
        with pytest.raises(IntegrityFailure):
            reader.read_range(2 * CS + 10, 5)


def test_header_is_authenticated(store):
    # A one-chunk blob has the same layout under any larger chunk size: only the header's place in the
    # associated data tells the edit apart.
    data = os.urandom(100)
    ref = put(store, data)
    blob_id = ref.blob_id
    raw = bytearray(raw_read(store, blob_id))
    assert int.from_bytes(raw[8:12], "big") == CS
    raw[8:12] = (2 * CS).to_bytes(4, "big")
    raw_write(store, blob_id, raw)
    assert_unreadable(store, ref, verify=False)


def test_truncated_last_chunk_detected(store, victim):
    ref, blob_id, _ = victim
    raw = raw_read(store, blob_id)
    raw_write(store, blob_id, raw[:-10])
    assert_unreadable(store, ref)
    # even if the recorded size is made to agree, the shortened chunk fails its tag
    assert_unreadable(store, dataclasses.replace(ref, size=ref.size - 10), verify=False)


def test_dropped_final_chunk_detected(store, victim):
    ref, blob_id, _ = victim
    raw = raw_read(store, blob_id)
    raw_write(store, blob_id, raw[:chunk_span(4)[0]])  # cut exactly at a chunk border
    assert_unreadable(store, ref)
    # with a matching recorded size, the "final" flag in the associated data still catches it
    assert_unreadable(store, dataclasses.replace(ref, size=4 * CS), verify=False)


def test_dropped_middle_chunk_detected(store, victim):
    ref, blob_id, _ = victim
    raw = raw_read(store, blob_id)
    s, e = chunk_span(1)
    raw_write(store, blob_id, raw[:s] + raw[e:])
    assert_unreadable(store, ref)
    assert_unreadable(store, dataclasses.replace(ref, size=ref.size - CS), verify=False)


def test_swapped_chunks_detected(store, victim):
    ref, blob_id, _ = victim
    raw = raw_read(store, blob_id)
    (s1, e1), (s2, e2) = chunk_span(1), chunk_span(2)
    raw_write(store, blob_id, raw[:s1] + raw[s2:e2] + raw[s1:e1] + raw[e2:])
    assert_unreadable(store, ref, verify=False)


@pytest.mark.parametrize("extra", [1, 15, 16, CS + TAG_SIZE, 3 * (CS + TAG_SIZE)])
def test_appended_garbage_detected(store, victim, extra):
    ref, blob_id, _ = victim
    raw_write(store, blob_id, raw_read(store, blob_id) + os.urandom(extra))
    assert_unreadable(store, ref)
    grown = dataclasses.replace(ref, size=ref.size + max(0, extra - TAG_SIZE))
    assert_unreadable(store, grown, verify=False)


def test_appended_copy_of_final_chunk_detected(store, victim):
    ref, blob_id, _ = victim
    raw = raw_read(store, blob_id)
    last = raw[chunk_span(4)[0]:]
    raw_write(store, blob_id, raw + last)  # a perfectly authentic-looking chunk
    assert_unreadable(store, dataclasses.replace(ref, size=ref.size + 100), verify=False)


@pytest.mark.parametrize("delta", [-1, 1, CS])
def test_recorded_size_must_match_file(store, victim, delta):
    ref, _, _ = victim
    with pytest.raises(IntegrityFailure):
        store.open(dataclasses.replace(ref, size=ref.size + delta), verify=False)


def test_empty_blob_tampering_detected(store):
    ref = put(store, b"")
    assert read_all(store, ref) == b""
    blob_id = ref.blob_id
    raw = bytearray(raw_read(store, blob_id))
    raw[-1] ^= 1
    raw_write(store, blob_id, raw)
    assert_unreadable(store, ref, verify=False)
    raw_write(store, blob_id, raw[:HEADER_SIZE])  # no chunk at all
    assert_unreadable(store, ref, verify=False)


def test_wrapped_key_moved_to_other_blob_fails(store):
    data_a, data_b = os.urandom(3000), os.urandom(3000)
    a, b = put(store, data_a), put(store, data_b)
    assert_unreadable(store, dataclasses.replace(b, wrapped_key=a.wrapped_key), verify=False)
    # nor can blob a's file be passed off as blob b, even with its whole ref copied over
    raw_write(store, b.blob_id, raw_read(store, a.blob_id))
    assert_unreadable(store, dataclasses.replace(a, blob_id=b.blob_id), verify=False)
    assert_unreadable(store, b, verify=False)
    assert read_all(store, a) == data_a


def test_wrong_recorded_sha256_detected_on_full_read(store):
    data = os.urandom(3 * CS + 50)
    ref = put(store, data)
    bad = dataclasses.replace(ref, sha256=hashlib.sha256(b"something else").hexdigest())
    assert_unreadable(store, bad)
    # sequential reads hand out every piece but the last, which is withheld
    with store.open(bad) as reader:
        got = b""
        with pytest.raises(IntegrityFailure):
            while True:
                part = reader.read(1000)
                if not part:
                    break
                got += part
        assert got == data[:3000]
        with pytest.raises(IntegrityFailure):  # and the reader stays failed
            reader.read_range(0, 10)
    # the same through readinto: the caller's buffer is not left holding the last bytes
    with store.open(bad) as reader:
        buf = bytearray(len(data))
        with pytest.raises(IntegrityFailure):
            reader.readinto(buf)
        assert bytes(buf) != data
    # partial reads and unverified reads are not affected
    with store.open(bad) as reader:
        assert reader.read_range(10, 2 * CS) == data[10:10 + 2 * CS]
    assert read_all(store, bad, verify=False) == data


def test_wrong_recorded_sha256_of_empty_blob_detected(store):
    ref = put(store, b"")
    assert_unreadable(store, dataclasses.replace(ref, sha256="00" * 32))


def test_hash_not_checked_when_reading_skips_ahead(store):
    data = os.urandom(3 * CS)
    ref = put(store, data)
    bad = dataclasses.replace(ref, sha256="00" * 32)
    with store.open(bad) as reader:  # skipping chunk 1 means no full in-order read happened
        assert reader.read_range(0, 100) == data[:100]
        assert reader.read_range(2 * CS, CS) == data[2 * CS:]
    with store.open(bad) as reader:  # re-reading from 0 is an in-order read and is verified
        assert reader.read(CS + 5) == data[:CS + 5]
        reader.seek(0)
        with pytest.raises(IntegrityFailure):
            reader.read()


def test_prefetched_stream_is_exact_and_decrypted_on_the_store_s_threads(store: BlobStore):
    data = os.urandom(7 * CS + 123)
    ref = put(store, data)
    block = 2 * CS + 5  # not a multiple of the chunk size
    threads = set()
    with store.open(ref) as reader:
        original = reader._read_bytes

        def spy(offset, length):
            threads.add(threading.get_ident())
            return original(offset, length)

        reader._read_bytes = spy
        got, offset = [], 0
        while offset < len(data):
            part = reader.read_range(offset, block)
            assert part == data[offset:offset + block], offset
            got.append(part)
            offset += len(part)
            assert reader.prefetch(offset, block) == (offset < len(data))
        assert b"".join(got) == data
        assert threading.get_ident() in threads and len(threads) >= 2  # the first block here, the rest ahead
        # a read of another range than the prefetched one: the prefetch is dropped, the read is exact
        assert reader.prefetch(CS, block)
        assert reader.read_range(3, 10) == data[3:13]
        assert reader.prefetch(CS, block)
        assert reader.read_range(CS + 7, 10) == data[CS + 7:CS + 17]  # inside the prefetched range
        assert reader.prefetch(0, block)  # closing with a prefetch under way waits for it
    assert reader.closed


def test_prefetch_never_hands_out_a_corrupted_chunk_or_the_last_bytes_of_a_wrong_hash(store: BlobStore):
    data = os.urandom(4 * CS + 100)
    ref = put(store, data)
    raw = bytearray(raw_read(store, ref.blob_id))
    raw[chunk_span(2)[0] + 3] ^= 0x80
    raw_write(store, ref.blob_id, raw)
    with store.open(ref) as reader:
        assert reader.read_range(0, 2 * CS) == data[:2 * CS]
        assert reader.prefetch(2 * CS, 2 * CS)  # the corrupted chunk is decrypted ahead...
        with pytest.raises(IntegrityFailure):  # ... and refused by the read that asks for it
            reader.read_range(2 * CS, 2 * CS)
        with pytest.raises(IntegrityFailure):
            reader.read_range(0, 10)
        assert not reader.prefetch(0, CS)  # a failed reader starts nothing
    good = put(store, data)
    bad = dataclasses.replace(good, sha256="00" * 32)
    with store.open(bad) as reader:
        assert reader.read_range(0, 3 * CS) == data[:3 * CS]
        assert reader.prefetch(3 * CS, 3 * CS)  # the rest, up to the end: the hash is checked ahead
        with pytest.raises(IntegrityFailure):
            reader.read_range(3 * CS, 3 * CS)
    with store.open(good) as reader:  # the same with the right hash
        assert reader.read_range(0, 3 * CS) == data[:3 * CS]
        assert reader.prefetch(3 * CS, 3 * CS)
        assert reader.read_range(3 * CS, 3 * CS) == data[3 * CS:]


# -- keyring -----------------------------------------------------------------------------------------------


def test_keyring_wrap_unwrap_and_failures():
    keyring = Keyring.from_keys({"a": os.urandom(32), "b": os.urandom(32)}, "b")
    dek = os.urandom(32)
    key_id, wrapped = keyring.wrap(dek, b"blob-1")
    assert key_id == "b" and dek not in wrapped
    assert keyring.unwrap(key_id, wrapped, b"blob-1") == dek
    with pytest.raises(IntegrityFailure):
        keyring.unwrap(key_id, wrapped, b"blob-2")  # other context
    with pytest.raises(IntegrityFailure):
        keyring.unwrap("a", wrapped, b"blob-1")  # other (existing) key id
    with pytest.raises(IntegrityFailure):
        keyring.unwrap("zz", wrapped, b"blob-1")  # unknown key id
    tampered = bytearray(wrapped)
    tampered[-1] ^= 1
    with pytest.raises(IntegrityFailure):
        keyring.unwrap(key_id, bytes(tampered), b"blob-1")
    with pytest.raises(IntegrityFailure):
        keyring.unwrap(key_id, wrapped[:20], b"blob-1")


def test_keyring_repr_shows_ids_only():
    keys = {"k000001": os.urandom(32), "k000002": os.urandom(32)}
    keyring = Keyring.from_keys(keys, "k000002")
    text = repr(keyring) + str(keyring)
    assert "k000001" in text and "k000002" in text
    for key in keys.values():
        assert key.hex() not in text and repr(key) not in text and key.hex()[:8] not in text


def test_keyring_persists_and_files_are_private(tmp_path: Path):
    directory = tmp_path / "keys"
    first = Keyring.load_or_create(directory)
    key_id, wrapped = first.wrap(b"k" * 32, b"ctx")
    second = Keyring.load_or_create(directory)
    assert second.current_id == first.current_id == key_id
    assert second.unwrap(key_id, wrapped, b"ctx") == b"k" * 32
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    key_files = sorted(directory.glob("master-*.key"))
    assert [p.name for p in key_files] == [f"master-{key_id}.key"]
    for path in key_files + [directory / "current"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key_files[0].read_bytes()) == 32
    assert (directory / "current").read_text().strip() == key_id
    assert not [p for p in directory.iterdir() if p.name.startswith(".tmp")]


def test_keyring_refuses_bad_key_material(tmp_path: Path):
    with pytest.raises(ConfigError):
        Keyring.from_keys({"a": b"short"}, "a")
    with pytest.raises(ConfigError):
        Keyring.from_keys({"a": os.urandom(32)}, "b")
    directory = tmp_path / "keys"
    key_id = Keyring.load_or_create(directory).current_id
    key_file = directory / f"master-{key_id}.key"
    key_file.chmod(0o644)  # readable by others: refuse rather than use a leaked key silently
    with pytest.raises(ConfigError):
        Keyring.load_or_create(directory)
    key_file.chmod(0o600)
    key_file.write_bytes(os.urandom(31))
    with pytest.raises(ConfigError):
        Keyring.load_or_create(directory)


def test_rotation_keeps_old_blobs_readable_and_rewrap(tmp_path: Path, make_store):
    keys_dir = tmp_path / "keys"
    keyring = Keyring.load_or_create(keys_dir)
    store = make_store(keyring=keyring)
    old_data = os.urandom(5 * CS + 1)
    old_ref = put(store, old_data)
    old_id = old_ref.key_id

    new_id = keyring.rotate(keys_dir)
    assert new_id != old_id and new_id > old_id
    assert keyring.current_id == new_id
    assert read_all(store, old_ref) == old_data  # old blob still readable

    new_data = os.urandom(100)
    new_ref = put(store, new_data)
    assert new_ref.key_id == new_id

    file_before = raw_read(store, old_ref.blob_id)
    key_id, wrapped = keyring.rewrap(old_ref.key_id, old_ref.wrapped_key, old_ref.blob_id.encode())
    assert key_id == new_id and wrapped != old_ref.wrapped_key
    rewrapped = dataclasses.replace(old_ref, key_id=key_id, wrapped_key=wrapped)
    assert read_all(store, rewrapped) == old_data
    assert raw_read(store, old_ref.blob_id) == file_before  # the document is not rewritten

    # a fresh process sees both keys and the new current one
    reloaded = Keyring.load_or_create(keys_dir)
    assert reloaded.current_id == new_id and reloaded.key_ids == [old_id, new_id]
    store2 = make_store(keyring=reloaded)
    assert read_all(store2, old_ref) == old_data and read_all(store2, rewrapped) == old_data
    for path in keys_dir.glob("master-*.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    # a keyring without the old key cannot read the old wrapping
    only_new = Keyring.from_keys({new_id: (keys_dir / f"master-{new_id}.key").read_bytes()}, new_id)
    with pytest.raises(IntegrityFailure):
        make_store(keyring=only_new).open(old_ref)


# -- concurrency -----------------------------------------------------------------------------------------


def test_concurrent_readers_of_one_blob(make_store):
    store = make_store(chunk_size=64 * 1024)
    data = os.urandom(3 * 1024 * 1024 + 777)
    ref = put(store, data)
    errors: list[BaseException] = []
    checked = [0, 0]

    def work(slot: int) -> None:
        try:
            rng = random.Random(slot)
            with store.open(ref) as reader:
                for _ in range(150):
                    offset, length = rng.randrange(len(data)), rng.randrange(1, 200_000)
                    if reader.read_range(offset, length) != data[offset:offset + length]:
                        raise AssertionError(f"wrong bytes at {offset}+{length}")
                    checked[slot] += 1
            for _ in range(2):
                if read_all(store, ref, piece=32768) != data:
                    raise AssertionError("wrong full read")
                checked[slot] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert checked == [152, 152]
