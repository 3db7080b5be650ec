"""The server process: one asyncio loop serving SFTP, cheroot serving HTTPS in its threads, a thread pool for
blocking work, crash recovery at start, housekeeping while running, trust material re-read on SIGHUP, a clean stop
on SIGTERM/SIGINT.

With ``--workers N`` (N > 1) this is one worker of :mod:`gateway.supervisor`: it serves listening sockets the
supervisor opened, recovery ran before it was forked, and only worker 0 runs the housekeeping and the
notifications (:func:`worker_main`)."""
from __future__ import annotations

import asyncio
import functools
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from gateway import supervisor
from gateway.config import Config
from gateway.loadboard import LoadBoard, Seat
from gateway.web import tls
from gateway.core.epochs import PINS, TRUST
from gateway.web.https import HTTPSFrontend
from gateway.services import Services, build, check_connection_budget
from gateway.sftp.server import SFTPFrontend

log = logging.getLogger("instpages.server")

HOUSEKEEPING_SECONDS = 3600
TRUST_REFRESH_SECONDS = 30  # revoked SSH keys; pinned TLS certificates: webdav.trust_refresh_seconds


class GatewayServer:
    """One serving process. ``listeners`` are sockets opened before a fork (else the ports are bound here);
    ``recover`` runs start-up recovery first; ``housekeeping`` runs the periodic expiry and the notifications
    (one process of a node does)."""

    def __init__(self, config: Config, services: Services | None = None, *,
                 listeners: supervisor.Listeners | None = None, recover: bool = True, housekeeping: bool = True,
                 seat: Seat | None = None):
        self.config = config
        self.services = services or build(config)
        self.listeners = listeners or supervisor.Listeners()
        self.recover, self.housekeeping = recover, housekeeping
        self.executor = ThreadPoolExecutor(max_workers=config.storage.workers, thread_name_prefix="instpages")
        self.sftp = SFTPFrontend(config, self.services.mailbox, self.executor, self.services.user_cas)
        self.https = (HTTPSFrontend(config, self.services.mailbox, self.services.keyring,
                                    self.services.administration, ready=self.services.ready,
                                    listener=self.listeners.https, seat=seat) if config.webdav.enabled else None)
        self._stop = asyncio.Event()
        epochs = self.services.mailbox.epochs  # changes announced by any process (gateway.core.epochs)
        epochs.on_change(TRUST, self.reload_trust)  # instpages reload, on any node
        if self.https is not None:
            epochs.on_change(PINS, self.https.refresh_trust)  # a certificate pinned by any process

    async def start(self) -> None:
        # a node's recovery runs where the node starts (here, or in the supervisor before the fork); a worker
        # started inside a running node clears only what its own predecessor left
        recover = self.services.mailbox.recover if self.recover else self.services.mailbox.recover_worker
        report = await asyncio.get_running_loop().run_in_executor(self.executor, recover)
        if any(report.values()):
            log.info("recovered after an unclean stop: %s", report)
        if self.config.sftp.enabled:
            port = await self.sftp.start(self.listeners.sftp)
            log.info("SFTP listening on %s:%d", self.config.sftp.host, port)
        if self.https is not None:
            port = await asyncio.get_running_loop().run_in_executor(None, self.https.start)
            log.info("WebDAV listening on %s://%s:%d/dav/", "http" if self.config.webdav.plain_http else "https",
                     self.config.webdav.host, port)

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        last_expiry = loop.time()
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), TRUST_REFRESH_SECONDS)
            except asyncio.TimeoutError:
                try:
                    await loop.run_in_executor(self.executor, self.sftp.reload_revoked)
                    if self.housekeeping and loop.time() - last_expiry >= HOUSEKEEPING_SECONDS:
                        last_expiry = loop.time()
                        await loop.run_in_executor(self.executor, self.services.mailbox.expire_staged)
                        await loop.run_in_executor(self.executor, self.services.mailbox.sweep_abandoned)
                except Exception:  # keep serving; the next round tries again
                    log.exception("housekeeping failed")

    async def _notifications(self) -> None:
        """Digests are queued and the outbox is sent every ``notifications.poll_seconds``; expired grants are
        removed on the same beat (they stop working at their end already: load_principal filters them)."""
        loop = asyncio.get_running_loop()
        notifier = self.services.mailbox.notifier
        admin = self.services.administration(actor="system:housekeeping", protocol="system")
        while not self._stop.is_set():
            try:
                await loop.run_in_executor(self.executor, admin.expire_grants)
                if notifier is not None and notifier.enabled:
                    await loop.run_in_executor(self.executor, notifier.queue_digests)
                    await loop.run_in_executor(self.executor, notifier.deliver_due)
            except Exception:  # keep serving; the next round tries again
                log.exception("notifications round failed")
            try:
                await asyncio.wait_for(self._stop.wait(), self.config.notifications.poll_seconds)
            except asyncio.TimeoutError:
                pass

    def request_stop(self) -> None:
        self._stop.set()

    def reload_trust(self) -> None:
        """SIGHUP (this process), or ``instpages reload`` on any node (the ``trust`` cache epoch): SSH user CAs,
        eID trust anchors and CRLs, revoked SSH keys and pinned TLS client certificates are read again, cached
        directory entries forgotten; new logins and handshakes use them."""
        self.services.reload_trust()
        revoked = self.sftp.reload_revoked()
        if self.https is not None:
            self.https.refresh_trust(force=True)
        log.info("trust material reloaded (SIGHUP): %d revoked SSH keys", revoked)

    def _reload_soon(self) -> None:
        future = asyncio.get_running_loop().run_in_executor(self.executor, self.reload_trust)
        future.add_done_callback(lambda f: f.exception() and log.error("reloading trust failed: %r", f.exception()))

    async def serve_forever(self, on_ready=None) -> None:
        loop = asyncio.get_running_loop()
        for sig, handler in ((signal.SIGTERM, self.request_stop), (signal.SIGINT, self.request_stop),
                             (signal.SIGHUP, self._reload_soon)):
            try:
                loop.add_signal_handler(sig, handler)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - not the main thread
                pass
        await self.start()
        self.services.mailbox.epochs.start()
        if on_ready:
            on_ready(self)
        keeper = asyncio.create_task(self._housekeeping())
        mailer = asyncio.create_task(self._notifications()) if self.housekeeping else None
        await self._stop.wait()
        log.info("stopping")
        keeper.cancel()
        if mailer is not None:
            mailer.cancel()
        if self.https is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.https.stop)
        await self.sftp.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.services.close()


def run(config: Config, services: Services | None = None, on_ready=None) -> None:
    server = GatewayServer(config, services)
    asyncio.run(server.serve_forever(on_ready))


def run_workers(config: Config, services: Services, on_ready=None) -> None:
    """``--workers N``: recovery once, here, before any worker serves (a worker never aborts its siblings'
    uploads); the shared files and the listening sockets made; then the supervisor forks the workers, each
    building its own services. ``on_ready(sftp_port, https_port)`` once all of them serve."""
    report = services.mailbox.recover()
    if any(report.values()):
        log.info("recovered after an unclean stop: %s", report)
    check_connection_budget(services, config.server.workers)
    services.close()  # nothing of the database crosses the fork
    prepare_shared_files(config)
    listeners = supervisor.open_listeners(config)
    try:
        ports = tuple(s.getsockname()[1] if s is not None else None for s in (listeners.sftp, listeners.https))
        board = LoadBoard(config.server.workers)
        sup = supervisor.Supervisor(config.server.workers, functools.partial(worker_main, config, listeners, board),
                                    board=board)
        sup.run(functools.partial(on_ready, *ports) if on_ready else None)
    finally:
        listeners.close()


def prepare_shared_files(config: Config) -> None:
    """What every worker reads and the first start creates (host key, self-signed TLS pair): created once, before
    the workers are forked, so that they do not race to create different ones."""
    if config.sftp.enabled:
        SFTPFrontend.load_or_create_host_key(config.host_key_path)
    if config.webdav.enabled and not config.webdav.plain_http:
        tls.ensure_self_signed(config.tls_cert_path, config.tls_key_path, [config.webdav.host])


def worker_main(config: Config, listeners: supervisor.Listeners, board: LoadBoard, slot: int, ready) -> None:
    """One worker process (forked by the supervisor): its own services (database engine, keyring, ...) built
    here, after the fork; recovery already ran in the supervisor; worker 0 runs the housekeeping; it accepts
    HTTPS connections in its turn on ``board``."""
    services = build(config, initialize=False, worker=str(slot))
    server = GatewayServer(config, services, listeners=listeners, recover=False, housekeeping=slot == 0,
                           seat=board.seat(slot))
    asyncio.run(server.serve_forever(lambda _srv: ready()))
