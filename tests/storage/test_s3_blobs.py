"""What only the S3 blob store has: multipart uploads, conditional creates, ranged GETs, incomplete uploads swept
by owner and age, and an unreachable service or wrong keys told apart.  Runs against SeaweedFS (tests/s3server.py).
The contract both stores share is tested in test_blobs.py."""
from __future__ import annotations

import hashlib
import os
import time
import uuid

import pytest

from storage.blobs.s3 import S3BlobStore, S3Settings
from storage.errors import Conflict, NotFound, ServiceUnavailable
from storage.keyring import Keyring
from tests.conftest import free_port
from tests.storage.test_blobs import put

PART = 5 * 1024 * 1024
CS = 64 * 1024


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.from_keys({"k000001": bytes(range(32))}, "k000001")


@pytest.fixture
def make_s3(s3_server, keyring):
    prefix = f"s{uuid.uuid4().hex[:12]}/"
    made: list[S3BlobStore] = []

    def make(owner: str = "node-a/0", shift: float = 0, **overrides) -> S3BlobStore:
        kw = dict(endpoint=s3_server.endpoint, bucket=s3_server.bucket, prefix=prefix,
                  access_key=s3_server.access_key, secret_key=s3_server.secret_key, part_size=PART)
        kw.update(overrides)
        store = S3BlobStore(S3Settings(**kw), keyring, CS, owner=owner, clock=lambda: time.time() + shift)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def uploads(store: S3BlobStore) -> list[str]:
    """Keys of the incomplete multipart uploads under the store's prefix."""
    r = store.call("list_multipart_uploads", Prefix=store.settings.prefix)
    return sorted(u["Key"] for u in r.get("Uploads") or ())


def objects(store: S3BlobStore) -> list[str]:
    r = store.call("list_objects_v2", Prefix=store.settings.prefix)
    return sorted(o["Key"] for o in r.get("Contents") or ())


def test_multipart_upload_with_a_range_read_across_the_part_boundary(make_s3):
    store = make_s3()
    data = os.urandom(2 * PART + 12345)  # three parts of ciphertext
    writer = store.create()
    for i in range(0, len(data), 1_000_000):
        writer.write(data[i:i + 1_000_000])
    assert uploads(store) == [store.temp_key(writer.blob_id)], "the parts went out while the document was written"
    ref = writer.finish()
    assert uploads(store) == [] and objects(store) == [store.temp_key(ref.blob_id)]
    writer.commit()
    assert objects(store) == [store.final_key(ref.blob_id)]
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    with store.open(ref) as reader:
        for boundary in (PART, 2 * PART):  # ciphertext part boundaries, in plaintext terms a little earlier
            for offset in (boundary - 3 * CS, boundary - 100, boundary - 16, boundary):
                assert reader.read_range(offset, 2 * CS) == data[offset:offset + 2 * CS], offset
        assert reader.read() == data  # and in order to the end, SHA-256 checked


def test_conditional_create_never_overwrites(make_s3):
    store = make_s3()
    ref = put(store, b"first")
    # another writer that drew the same id (two nodes racing) cannot replace the committed object...
    second = store.create()
    second.blob_id = ref.blob_id
    second._sink._final_key = store.final_key(ref.blob_id)
    second.write(b"second")
    second.finish()
    with pytest.raises(Conflict):
        second.commit()
    # ... nor can a direct create of an existing key
    with pytest.raises(Conflict):
        store.call("put_object", Key=store.final_key(ref.blob_id), Body=b"x", IfNoneMatch="*")
    with store.open(ref) as reader:
        assert reader.read() == b"first"


def test_abort_leaves_no_object_and_no_multipart_upload(make_s3):
    store = make_s3()
    writer = store.create()
    writer.write(os.urandom(PART + 1000))
    assert len(uploads(store)) == 1
    writer.abort()
    assert uploads(store) == [] and objects(store) == []
    small = store.create()
    small.write(b"small")
    small.finish()
    assert len(objects(store)) == 1
    small.abort()
    assert uploads(store) == [] and objects(store) == []


def test_incomplete_multipart_uploads_swept_by_owner_and_age(make_s3):
    mine, other = make_s3(owner="node-a/0"), make_s3(owner="node-b/3")
    later = make_s3(owner="node-c/0", shift=7200)
    in_flight = []
    for store in (mine, other):
        w = store.create()
        w.write(os.urandom(PART + 1))  # an upload in progress: one part sent, never completed
        in_flight.append(w)
    assert sorted(t.owner for t in mine.list_temporary()) == ["node-a/0", "node-b/3"]
    assert mine.sweep_temporary(owner=None, older_than=3600) == 0  # young: survives the periodic sweep
    assert mine.sweep_temporary(owner="node-a", older_than=0) == 1  # start-up recovery: only node a's own
    assert uploads(mine) == [other.temp_key(in_flight[1].blob_id)]
    assert later.sweep_temporary(owner=None, older_than=3600) == 1  # two hours on: abandoned
    assert uploads(mine) == [] and objects(mine) == []


def test_reads_of_missing_objects_are_not_found(make_s3):
    store = make_s3()
    ref = put(store, b"gone soon")
    store.delete(ref.blob_id)
    with pytest.raises(NotFound):
        store.open(ref)
    assert not store.exists(ref.blob_id)


def test_unreachable_endpoint_and_wrong_keys_are_told_apart(make_s3, s3_server):
    dead = make_s3(endpoint=f"http://127.0.0.1:{free_port()}", connect_timeout=1)
    with pytest.raises(ServiceUnavailable) as info:
        dead.ping()
    assert info.value.setting == "endpoint" and "connection refused" in info.value.detail
    with pytest.raises(ServiceUnavailable) as info:
        make_s3(secret_key="not-the-secret").ping()
    assert info.value.setting == "secret_key"
    with pytest.raises(ServiceUnavailable) as info:
        make_s3(access_key="nobody").ping()
    assert info.value.setting == "access_key"
    with pytest.raises(ServiceUnavailable) as info:
        make_s3(bucket="no-such-bucket").ping()
    assert info.value.setting == "bucket"
    make_s3().ping()


def test_secrets_never_in_a_repr(make_s3, s3_server):
    store = make_s3()
    for text in (repr(store), repr(store.settings), str(store.settings)):
        assert s3_server.secret_key not in text and s3_server.access_key not in text
