"""Run one function (the entry point of each function image): `cloudpose-serve pose-json`."""

from __future__ import annotations

import argparse
import ctypes
import logging
import os

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
    """uvicorn with its fastest loop and parser where installed; our own request log replaces its access log."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, access_log=False, log_config=None, timeout_keep_alive=75)


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
