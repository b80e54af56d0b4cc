"""Run one function (the entry point of each function image): `cloudpose-serve pose-json`."""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import threading

from .functions import FUNCTIONS


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena; a server's worker threads then hold
    tens of MiB of free-but-unreturned memory. Two arenas keep peak RSS under 256 MiB (measured)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX; must run before the threads start
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        pass


def configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run(app, host: str, port: int) -> None:
    """uvicorn with its fastest loop and parser where installed; our own request log replaces its access log.

    SIGTERM drains instead of stopping at once (see `DrainingServer`); a second SIGTERM or SIGINT stops now.
    """
    import uvicorn

    settings = app.state.cloudpose.settings
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_config=None, timeout_keep_alive=75,
                            timeout_graceful_shutdown=settings.shutdown_timeout)  # fmt: skip
    _draining_server()(config, app.state.cloudpose, settings.drain_seconds).run()


def _draining_server():
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """On the first SIGTERM: /_/ready answers 503 at once while requests keep being served for
        `drain_seconds` (a load balancer has that long to notice), then the listener closes and the
        requests already accepted (running, queued, still uploading) finish within the shutdown timeout.
        The whole stop is bounded by drain + shutdown timeout, below every platform's grace period."""

        def __init__(self, config, state, drain_seconds: float) -> None:
            super().__init__(config)
            self.state, self.drain_seconds, self.drain_timer = state, drain_seconds, None

        def handle_exit(self, sig, frame) -> None:
            if sig == signal.SIGTERM and self.drain_timer is None and self.drain_seconds > 0 and not self.should_exit:
                self.state.draining = True
                logging.getLogger("cloudpose.serve").info(
                    "SIGTERM: draining for %.1f s, then finishing what is in flight", self.drain_seconds)
                self.drain_timer = threading.Timer(self.drain_seconds, self.stop_after_drain)
                self.drain_timer.daemon = True
                self.drain_timer.start()
                return
            self.state.draining = True
            super().handle_exit(sig, frame)

        def stop_after_drain(self) -> None:
            """Close the listener and finish what is held; the drain was the signal's answer, so exit 0."""
            self.should_exit = True

    return DrainingServer




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("function", choices=sorted(FUNCTIONS), nargs="?", default=os.environ.get("FUNCTION_NAME"))
    parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))
    args = parser.parse_args(argv)
    if not args.function:
        parser.error("name the function (or set FUNCTION_NAME)")
    configure_logging()
    limit_malloc_arenas()
    from .config import Settings
    from .service import make_app

    settings = Settings.from_env()
    run(make_app([FUNCTIONS[args.function]], settings=settings, title=f"CloudPose {args.function}"), args.host, settings.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
