"""The benchmark harness measures what it says: throughput of a server with a known service time."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.load import closed_loop, one_client


class _Slow(BaseHTTPRequestHandler):
    """Answers every POST after exactly `delay` seconds: a server whose true rate is concurrency / delay."""

    delay = 0.5

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def slow_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.mark.parametrize("concurrency", [1, 2])
def test_closed_loop_rate_is_not_biased_against_slow_servers(slow_server, concurrency):
    """Counting requests that start in the window, then waiting for the last one, reads 1.6 req/s here, not 2."""
    stats = closed_loop(slow_server, [b"{}"], concurrency, duration=2.0, warmup=0.25)
    expected = concurrency / _Slow.delay
    assert stats.errors == 0 and abs(stats.rps - expected) / expected < 0.1, stats.rps
    assert all(480 < ms < 700 for ms in stats.latencies_ms)


def test_one_client_measures_each_request_end_to_end(slow_server):
    stats = one_client(slow_server, [b"{}"], duration=1.6, warmup=0.25)
    assert stats.errors == 0 and stats.requests in (3, 4)
    assert all(480 < ms < 700 for ms in stats.latencies_ms)
