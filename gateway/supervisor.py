"""The supervisor of ``instpages serve --workers N``: N identical worker processes on one SFTP and one HTTPS port.

The listening sockets are opened once, here, before the workers are forked, and every worker accepts from them:
one accept queue per port, so connections the kernel queued for a worker that died are taken by the others
instead of being reset (each worker binding its own ``SO_REUSEPORT`` socket would split the queue per process).
A worker that exits is started again after a delay that doubles with each quick failure of its slot (0.5 s up to
30 s; a worker that ran a minute starts its slot afresh); the others keep serving meanwhile. SIGTERM/SIGINT stop
every worker (SIGTERM, then SIGKILL after a grace period); SIGHUP is passed to every worker, which re-reads its
trust material. The supervisor itself holds no database connection, thread or cache: it only forks, waits and
forwards signals (``sigtimedwait`` on blocked signals, so nothing runs in a signal handler).

What runs in a worker is the caller's ``target(slot, ready)``; it calls ``ready()`` once it serves. A
:class:`~gateway.loadboard.LoadBoard` handed in (made before the fork, shared by the workers: whose turn it is
to accept a connection) has the slot of a worker that ended marked absent.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.loadboard import LoadBoard

log = logging.getLogger("instpages.supervisor")

#: connections the kernel queues per port before a worker accepts them
BACKLOG = 1024
#: seconds the workers get to finish after SIGTERM before they are killed
STOP_GRACE_SECONDS = 30.0
#: restart delays of a slot whose worker keeps failing: first, doubling up to max
BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS = 0.5, 30.0
#: a worker that ran this long clears its slot's failure count
STABLE_SECONDS = 60.0
#: a worker tells the supervisor it serves (a real-time signal: several at once are all delivered)
READY_SIGNAL = signal.SIGRTMIN + 1
_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, READY_SIGNAL}
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Listeners:
    """Listening sockets opened before the fork; None = the server binds its port itself."""
    sftp: socket.socket | None = None
    https: socket.socket | None = None

    def close(self) -> None:
        for s in (self.sftp, self.https):
            if s is not None:
                s.close()


def listen(host: str, port: int, key: str) -> socket.socket:
    """A listening TCP socket; an OSError names the address and the configuration ``key`` it comes from."""
    try:
        family, type_, proto, _, addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0,
                                                           socket.AI_PASSIVE)[0]
        sock = socket.socket(family, type_, proto)
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror or exc}: {host}:{port} ({key})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"{exc.strerror or exc}: {host}:{port} ({key})") from None
    return sock


def open_listeners(config) -> Listeners:
    """The SFTP and HTTPS ports of ``config`` (those enabled), bound and listening."""
    sftp = listen(config.sftp.host, config.sftp.port, "sftp.port") if config.sftp.enabled else None
    try:
        https = listen(config.webdav.host, config.webdav.port, "webdav.port") if config.webdav.enabled else None
    except BaseException:
        if sftp is not None:
            sftp.close()
        raise
    return Listeners(sftp, https)


@dataclass
class _Slot:
    index: int
    pid: int = 0
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    ready: bool = False


class Supervisor:
    def __init__(self, workers: int, target: Callable[[int, Callable[[], None]], None], *,
                 stop_grace: float = STOP_GRACE_SECONDS, clock: Callable[[], float] = time.monotonic,
                 board: LoadBoard | None = None):
        if workers < 1:
            raise ValueError("at least one worker")
        self.slots = [_Slot(i) for i in range(workers)]
        self.target, self.stop_grace, self.clock, self.board = target, stop_grace, clock, board
        self._stopping = False

    def run(self, on_ready: Callable[[], None] | None = None) -> int:
        """Start the workers and look after them until SIGTERM or SIGINT; then stop them all. ``on_ready`` is
        called once every worker has said it serves."""
        if threading.active_count() > 1:  # a fork copies only the calling thread: locks held elsewhere stay held
            log.warning("forking workers from a process with %d threads", threading.active_count())
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            for slot in self.slots:
                self._spawn(slot)
            announced = False
            while True:
                info = signal.sigtimedwait(_SIGNALS, self._wait())
                if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                    log.info("stopping %d workers (%s)", len(self.slots), signal.Signals(info.si_signo).name)
                    break
                if info is not None and info.si_signo == signal.SIGHUP:
                    self._forward(signal.SIGHUP)
                elif info is not None and info.si_signo == READY_SIGNAL:
                    self._mark_ready(info.si_pid)
                self._reap()
                self._restart_due()
                if not announced and all(s.ready for s in self.slots):
                    announced = True
                    if on_ready is not None:
                        on_ready()
            self._stop_all()
        finally:
            while signal.sigtimedwait(_SIGNALS, 0) is not None:  # nothing pending may act once unblocked
                pass
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        return 0

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in self.slots if s.pid]

    # -- the worker side of a fork --------------------------------------------------------------------------
    def _spawn(self, slot: _Slot) -> None:
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            slot.pid, slot.started, slot.restart_at, slot.ready = pid, self.clock(), None, False
            log.info("worker %d started (pid %d)", slot.index, pid)
            return
        code = 1
        try:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker's loop handles it: no death by reload
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            _die_with(parent)
            self.target(slot.index, lambda: os.kill(parent, READY_SIGNAL))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            log.exception("worker %d failed", slot.index)
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    # -- the supervisor side --------------------------------------------------------------------------------
    def _wait(self) -> float:
        due = [s.restart_at for s in self.slots if s.restart_at is not None]
        return max(0.0, min([1.0] + [t - self.clock() for t in due]))

    def _mark_ready(self, pid: int) -> None:
        for slot in self.slots:
            if slot.pid == pid and not slot.ready:
                slot.ready = True
                log.info("worker %d (pid %d) serving", slot.index, pid)

    def _forward(self, sig: int) -> None:
        log.info("passing %s to %d workers", signal.Signals(sig).name, len(self.pids))
        for pid in self.pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _reap(self) -> None:
        """Collect exited workers; their slots get a restart time (unless stopping)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            if self.board is not None:
                self.board.clear(slot.index)  # its connections died with it
            now = self.clock()
            lived = now - slot.started
            if self._stopping:
                slot.pid = 0
                log.info("worker %d (pid %d) stopped (%s)", slot.index, pid, _how(status))
                continue
            slot.failures = 0 if lived >= STABLE_SECONDS else slot.failures + 1
            delay = min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** max(0, slot.failures - 1))
            slot.pid, slot.restart_at = 0, now + delay
            log.warning("worker %d (pid %d) ended (%s) after %.1f s; starting it again in %.1f s", slot.index, pid,
                        _how(status), lived, delay)

    def _restart_due(self) -> None:
        now = self.clock()
        for slot in self.slots:
            if slot.restart_at is not None and slot.restart_at <= now:
                self._spawn(slot)

    def _stop_all(self) -> None:
        self._stopping = True
        self._forward(signal.SIGTERM)
        deadline = self.clock() + self.stop_grace
        while self.pids and self.clock() < deadline:
            signal.sigtimedwait({signal.SIGCHLD}, min(0.2, max(0.0, deadline - self.clock())))
            self._reap()
        for pid in self.pids:
            log.warning("worker pid %d did not stop within %.0f s: killed", pid, self.stop_grace)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for slot in self.slots:
            slot.pid, slot.restart_at = 0, None


def _how(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"


def _die_with(parent: int) -> None:
    """The worker gets SIGTERM when the supervisor dies (even by SIGKILL): no orphans keep serving the port."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the worker still stops when told
        pass
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        os._exit(0)
