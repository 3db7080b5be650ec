"""Password hashing is memory-hard (64 MiB per verification): concurrent verifications are bounded so that a
burst of logins cannot take the process's memory (200 expiring WebDAV logins once reached 2.1 GB)."""
from __future__ import annotations

import threading
import time

from auth import authenticator


def test_concurrent_verifications_are_bounded(monkeypatch):
    active = peak = 0
    lock = threading.Lock()

    class SlowHasher:
        def verify(self, stored, given):
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.02)
            with lock:
                active -= 1
            return True

    monkeypatch.setattr(authenticator, "_HASHER", SlowHasher())
    monkeypatch.setattr(authenticator, "_dummy_hash", "x")
    threads = [threading.Thread(target=authenticator._verify, args=("stored", "pw")) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    slots = authenticator.HASH_SLOTS._initial_value
    assert 1 < peak <= slots
