"""Group commit of the record: the record writes of many request threads of one process, in one transaction.

A caller hands :meth:`RecordBatcher.run` its work (a function of a write connection: append an event, update a
receipt) and waits. One committer thread takes whatever is queued (up to ``max_batch`` pieces), runs every piece
in one write transaction (:meth:`~storage.repo.base.RepositoryBase.write`) and commits, then wakes the callers.
A burst of N downloads finishing costs one commit (and one sealing of the audit chain: the events of a group
are sealed together just before the commit) instead of N; while one group commits, the next one gathers. An
idle process pays one thread hop: a lone piece is committed at once, never held back to wait for company.

The rules it keeps:
- Durable before done: :meth:`run` returns only once the transaction holding its work has committed (with the
  durability of any other write transaction), and raises if it did not. A client that drops its connection
  changes nothing: the request thread hands its work over and waits whatever happens to the client.
- All or nothing: a group is one transaction. The transaction failing (BEGIN, sealing, COMMIT: the database
  down, or busy for too long) gives every caller of the group that exception, and nothing of the group is
  written. A piece of work that raises rolls the group back too; then every piece of the group runs again in a
  transaction of its own, so each caller gets its own outcome (the failing one its exception).
- Bounded: at most ``max_queue`` pieces wait; a caller waits at most ``wait`` seconds for room and as long for
  its commit, then gets :class:`~storage.errors.ServiceUnavailable` ("try again"). A piece whose caller gave up
  may still commit later: the record may hold an operation its caller was told failed, never the reverse.
- Clean stop: :meth:`close` lets the committer commit everything queued, then stops it; work handed in after
  that is written in its caller's own thread. The committer starts on first use, in the process using it (a
  forked child starts its own).
- Without a thread to wait in: :meth:`submit` queues the work and returns a future that completes the same way
  (for an event loop, which must not block); it refuses, rather than waits, when the queue is full or the
  batcher stopped, and the caller then uses :meth:`run` from a thread.

Work must not open a write transaction of its own (it runs inside one) and must not wait for other threads.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from contextlib import AbstractContextManager

from sqlalchemy.engine import Connection

from storage.errors import ServiceUnavailable

log = logging.getLogger(__name__)

#: set in ``Connection.info`` while a group's pieces run: the audit record defers sealing to the group's end
GROUPED = "instpages.grouped"

Work = Callable[[Connection], object]


class _Piece:
    __slots__ = ("done", "error", "future", "result", "work")

    def __init__(self, work: Work, future: Future | None = None):
        self.work = work
        self.done = threading.Event()
        self.result: object = None
        self.error: BaseException | None = None
        self.future = future

    def finish(self, result: object = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()
        if self.future is not None:
            try:
                if error is not None:
                    self.future.set_exception(error)
                else:
                    self.future.set_result(result)
            except InvalidStateError:  # its caller gave up waiting (cancelled)
                pass


class _PieceFailed(Exception):
    def __init__(self, piece: _Piece, error: Exception):
        super().__init__(repr(error))
        self.piece, self.error = piece, error


class RecordBatcher:
    """Commits the work of concurrent callers in shared write transactions (see the module docstring)."""

    def __init__(self, write: Callable[[], AbstractContextManager[Connection]], *, max_batch: int = 256,
                 max_queue: int = 4096, wait: float = 60.0):
        self._write = write
        self.max_batch, self.max_queue, self.wait = max_batch, max_queue, wait
        self._cond = threading.Condition()
        self._queue: collections.deque[_Piece] = collections.deque()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closed = False
        #: groups committed and pieces they held (for tests and benchmarks)
        self.groups = self.pieces = 0

    def run(self, work: Work) -> object:
        """``work(c)`` in a write transaction shared with other callers' work; returns its result once that
        transaction has committed, or raises (see the module docstring)."""
        piece = _Piece(work)
        with self._cond:
            queued = not self._closed
            if queued:
                self._enqueue(piece)
        if not queued:  # stopped: the caller writes its own transaction
            with self._write() as c:
                return work(c)
        if not piece.done.wait(self.wait):
            raise ServiceUnavailable(f"the record did not commit within {self.wait:g} s; try again")
        if piece.error is not None:
            raise piece.error
        return piece.result

    def submit(self, work: Work) -> Future | None:
        """``work(c)`` queued for the next group, without waiting: a future that gets its result or exception once
        the group's transaction committed or failed (see the module docstring), or None, at once, when it cannot
        be queued now (the queue full, the batcher stopped): then :meth:`run` it from a thread."""
        future: Future = Future()
        with self._cond:
            if self._closed or len(self._queue) >= self.max_queue:
                return None
            self._enqueue(_Piece(work, future))
        return future

    def _enqueue(self, piece: _Piece) -> None:
        """Under the condition: wait for room, start the committer if this process has none, queue ``piece``."""
        deadline = time.monotonic() + self.wait
        while len(self._queue) >= self.max_queue:
            left = deadline - time.monotonic()
            if left <= 0 or self._closed:
                raise ServiceUnavailable("too many record writes waiting; try again")
            self._cond.wait(left)
        if self._pid != os.getpid():  # first use, or a forked child: the parent's queue and thread are not ours
            self._pid, self._thread = os.getpid(), None
            self._queue.clear()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="record-committer", daemon=True)
            self._thread.start()
        self._queue.append(piece)
        self._cond.notify_all()

    def close(self) -> None:
        """Commit what is queued, then stop the committer (idempotent)."""
        with self._cond:
            self._closed = True
            thread = self._thread if self._pid == os.getpid() else None
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    # -- the committer thread -----------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                group = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                self._cond.notify_all()  # room for callers waiting to queue
            try:
                self._commit(group)
            except BaseException as exc:  # noqa: BLE001 - _commit answers every piece; never leave one waiting
                for p in group:
                    if not p.done.is_set():
                        p.finish(error=exc)

    def _commit(self, group: list[_Piece]) -> None:
        results: list[object] = []
        try:
            with self._write() as c:
                c.info[GROUPED] = True
                try:
                    for p in group:
                        try:
                            results.append(p.work(c))
                        except Exception as exc:
                            raise _PieceFailed(p, exc) from exc
                finally:
                    c.info.pop(GROUPED, None)
        except _PieceFailed as failed:  # rolled back: each piece on its own, so only the failing one fails
            if len(group) == 1:
                group[0].finish(error=failed.error)
                return
            log.info("a record write failed in a group of %d (%r): writing them one by one", len(group),
                     failed.error)
            for p in group:
                self._commit_alone(p)
            return
        except Exception as exc:  # noqa: BLE001 - the transaction failed: nothing of the group written, all told
            for p in group:
                p.finish(error=exc)
            return
        self.groups += 1
        self.pieces += len(group)
        for p, r in zip(group, results):
            p.finish(r)

    def _commit_alone(self, p: _Piece) -> None:
        try:
            with self._write() as c:
                result = p.work(c)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting caller, who raises it
            p.finish(error=exc)
        else:
            p.finish(result)
