"""The server process: one asyncio loop serving SFTP (WebDAV joins in its own issue), a worker pool for blocking
work, crash recovery at start, housekeeping while running, a clean stop on SIGTERM/SIGINT."""
from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from gateway.config import Config
from gateway.web.https import HTTPSFrontend
from gateway.services import Services, build
from gateway.sftp.server import SFTPFrontend

log = logging.getLogger("instpages.server")

HOUSEKEEPING_SECONDS = 3600
TRUST_REFRESH_SECONDS = 30  # revoked SSH keys; pinned TLS certificates: webdav.trust_refresh_seconds


class GatewayServer:
    def __init__(self, config: Config, services: Services | None = None):
        self.config = config
        self.services = services or build(config)
        self.executor = ThreadPoolExecutor(max_workers=config.storage.workers, thread_name_prefix="instpages")
        self.sftp = SFTPFrontend(config, self.services.mailbox, self.executor, self.services.user_cas)
        self.https = (HTTPSFrontend(config, self.services.mailbox, self.services.keyring,
                                    self.services.administration) if config.webdav.enabled else None)
        self._stop = asyncio.Event()

    async def start(self) -> None:
        report = await asyncio.get_running_loop().run_in_executor(self.executor, self.services.mailbox.recover)
        if any(report.values()):
            log.info("recovered after an unclean stop: %s", report)
        if self.config.sftp.enabled:
            port = await self.sftp.start()
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
                    if loop.time() - last_expiry >= HOUSEKEEPING_SECONDS:
                        last_expiry = loop.time()
                        await loop.run_in_executor(self.executor, self.services.mailbox.expire_staged)
                        await loop.run_in_executor(self.executor, self.services.sweep_abandoned)
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

    async def serve_forever(self, on_ready=None) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
                pass
        await self.start()
        if on_ready:
            on_ready(self)
        keeper = asyncio.create_task(self._housekeeping())
        mailer = asyncio.create_task(self._notifications())
        await self._stop.wait()
        log.info("stopping")
        keeper.cancel()
        mailer.cancel()
        if self.https is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.https.stop)
        await self.sftp.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.services.close()


def run(config: Config, services: Services | None = None, on_ready=None) -> None:
    server = GatewayServer(config, services)
    asyncio.run(server.serve_forever(on_ready))
