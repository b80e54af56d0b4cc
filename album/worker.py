"""The Temporal worker: runs PhotoPipeline workflows and their activities (`python -m album.worker`).

Stateless: kill it at any point and start it again (or another one), and every workflow goes on
where its history says it was. Applies the database migrations at start, like the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from .activities import Activities
from .config import AlbumSettings
from .db import Database
from .gateway import Gateway
from .store import Store
from .workflow import PhotoPipeline

log = logging.getLogger("album.worker")
CONNECT_ATTEMPTS = 30  # one a second: Temporal may still be starting beside us


async def connect(settings: AlbumSettings, attempts: int = CONNECT_ATTEMPTS) -> Client:
    """A Temporal client, retrying while the server starts (bounded)."""
    for attempt in range(1, attempts + 1):
        try:
            return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
        except Exception as exc:  # the SDK raises RuntimeError for an unreachable server
            if attempt == attempts:
                raise RuntimeError(f"Temporal at {settings.temporal_address} unreachable: {exc}") from exc
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


async def run(settings: AlbumSettings) -> None:
    db = Database(settings.database_url, settings.db_pool_size).open()
    applied = db.migrate()
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    store = Store(settings.s3_endpoint, settings.s3_bucket, settings.s3_region)
    store.ensure_bucket()
    gateway = Gateway(settings)
    client = await connect(settings)
    activities = Activities(settings, db, store, gateway)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[PhotoPipeline],
        activities=activities.all(),
        max_concurrent_activities=settings.worker_concurrency,
        # The sandbox still guards determinism; our own modules are imported once instead of per workflow
        # run (album.workflow imports only the SDK and the standard library).
        workflow_runner=SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules("album")),
        graceful_shutdown_timeout=timedelta(seconds=5),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with worker:
            log.info("polling task queue %s on %s (pid %d)", settings.task_queue, settings.temporal_address, os.getpid())
            await stop.wait()
    finally:
        await gateway.close()
        db.close()


def main() -> int:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    for noisy in ("httpx", "botocore.credentials"):  # one line per function call or client: too much
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(run(AlbumSettings.from_env()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
