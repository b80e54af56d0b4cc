"""make_app: the HTTP service every function runs — routes, limits, health, errors, timing, logging.

Task-independent: a function (functions.py) names its task and renderer; the service loads each
task's runner once (backends.load) and runs body → images → runner → renderer for any of them.
The OpenFaaS/Knative contract: `GET /_/health` (alive), `GET /_/ready` (every model loaded), the
function on `POST /`. Requests are read on the event loop (with a size limit) and processed on a
worker thread; a capacity limiter keeps at most `inflight` of them on the CPU at once and queues
the rest, so a 0.5-CPU pod never thrashes. Every error leaves as one JSON shape (errors.py).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import anyio
import orjson
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .codec import parse_body
from .config import Settings
from .errors import BodyTooLarge, InferenceFailed, MethodNotAllowed, ModelNotReady, NotFound, Overloaded, ApiError
from .backends import load
from .functions import Function
from .imaging import decode, header_only
from .metrics import REJECTED_STATUSES, Metrics
from .page import mount_page
from .schema import BatchRequest, ErrorResponse, ImageRequest, batch_of
from .tasks import Task

log = logging.getLogger("cloudpose.service")
HOST = socket.gethostname()  # in a pod: the pod name, so responses and logs show who served them
DRAIN_LIMIT = 64 * 1024 * 1024  # read (and drop) this much of an oversized body so the client sees the 413


@dataclass
class State:
    settings: Settings
    tasks: list[Task] = field(default_factory=list)  # every task a served function needs, loaded in this order
    runners: dict = field(default_factory=dict)  # task name → its loaded runner (a Model, or a FunctionRunner)
    load_errors: dict = field(default_factory=dict)  # task name → why its model failed to load
    limiter: anyio.CapacityLimiter | None = None
    in_system: int = 0  # requests admitted and not yet answered (running + queued)
    held_bytes: int = 0  # request bodies being read or waiting: bounded, so a burst of uploads cannot OOM a pod
    served: int = 0
    abandoned: int = 0  # requests whose client left while they queued: never computed
    draining: bool = False  # after SIGTERM: not ready, still finishing (and taking) requests until the server stops
    started: float = field(default_factory=time.monotonic)
    metrics: Metrics = field(default_factory=Metrics)

    def runner(self, task: Task):
        """The task's runner once loaded, else None."""
        runner = self.runners.get(task.name)
        return runner if runner is not None and runner.ready else None

    @property
    def ready(self) -> bool:
        return all(self.runner(t) is not None for t in self.tasks)

    @property
    def load_error(self) -> str | None:
        return "; ".join(f"{name}: {err}" for name, err in self.load_errors.items()) or None

    def load(self) -> None:
        for task in self.tasks:
            if task.name in self.runners:
                continue
            try:
                self.runners[task.name] = load(task, self.settings)
                self.metrics.model_loaded(task.name, self.runners[task.name].describe())
            except Exception as exc:  # reported by /_/health and /_/ready, and in the log with its traceback
                log.exception("%s model failed to load", task.name)
                self.load_errors[task.name] = f"{type(exc).__name__}: {exc}"


def make_app(
    functions: list[Function],
    *,
    settings: Settings | None = None,
    runners: dict | None = None,
    root_post: bool = True,
    title: str = "CloudPose",
) -> FastAPI:
    """The app for `functions`; `runners` (task name → loaded runner) are used instead of loading those tasks."""
    settings = settings or Settings.from_env()
    tasks = list({fn.task.name: fn.task for fn in functions}.values())
    state = State(settings, tasks=tasks, runners=dict(runners or {}))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.limiter = anyio.CapacityLimiter(settings.inflight)
        if not state.ready:
            threading.Thread(target=state.load, name="model-load", daemon=True).start()
        log.info("%s on %s: %d inference(s) in flight, %d thread(s) each", title, HOST, settings.inflight, settings.threads)
        yield

    app = FastAPI(title=title, version=__version__, lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.cloudpose = state
    by_path = {path: fn.name for fn in functions for path in _paths(fn, functions, root_post)}
    _add_error_handlers(app, state, by_path)
    _add_metrics(app, state)
    _add_health(app, state, functions)
    _add_page(app)
    for fn in functions:
        endpoint = partial(_endpoint, fn=fn, state=state)
        for path in _paths(fn, functions, root_post):
            app.add_api_route(
                path,
                _named(endpoint, fn, path),
                methods=["POST"],
                summary=fn.summary,
                tags=[fn.name],
                response_class=Response,
                responses=_responses(fn),
                openapi_extra=_REQUEST_BODY,
                include_in_schema=path != "/" or len(functions) == 1,
            )
    app.openapi = partial(_openapi, app)
    app.add_middleware(_CountRequests, metrics=state.metrics, by_path=by_path)
    if settings.cors_origin_list:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
            expose_headers=["Server-Timing", "X-Served-By", "X-Model"],
        )
    return app


def _paths(fn: Function, functions: list[Function], root_post: bool = True) -> list[str]:
    """Where `fn` answers: the course's path, the gateway path, and `/` when it is the only function."""
    return [fn.course_path, fn.gateway_path] + (["/"] if root_post and len(functions) == 1 else [])


def _named(endpoint, fn: Function, path: str):
    async def run(request: Request) -> Response:
        return await endpoint(request)

    run.__name__ = fn.name.replace("-", "_")  # FastAPI adds the path to make operation ids unique
    return run


async def _endpoint(request: Request, *, fn: Function, state: State) -> Response:
    arrived = time.perf_counter()
    runner = state.runner(fn.task)
    if runner is None:
        error = state.load_errors.get(fn.task.name)
        raise ModelNotReady(error or f"the {fn.task.name} model is still loading; retry in a moment")
    settings = state.settings
    if settings.max_queue and state.in_system >= settings.inflight + settings.max_queue:
        raise Overloaded(f"{state.in_system} requests in progress; retry shortly")
    declared = request.headers.get("content-length", "")
    reserve = min(int(declared), settings.max_body_bytes) if declared.isdigit() else settings.max_body_bytes
    if state.held_bytes and state.held_bytes + reserve > settings.max_held_bytes:
        raise Overloaded(f"{state.held_bytes >> 20} MiB of requests already waiting; retry shortly")
    state.in_system += 1
    state.held_bytes += reserve
    try:
        body = await _read_body(request, settings.max_body_bytes)
        # A client that gives up while its request queues (its timeout, a closed tab) gets nothing:
        # computing it anyway would spend the CPU the requests behind it wait for, and under overload
        # that turns a queue into a collapse.
        if await _acquire_watching(state.limiter, request.receive):
            state.limiter.release()
            state.abandoned += 1
            log.info("%s %s skipped: the client left after %.0f ms in the queue", request.method,
                     request.url.path, (time.perf_counter() - arrived) * 1e3)  # fmt: skip
            return Response(status_code=499)
        try:
            content, timing, summary = await anyio.to_thread.run_sync(partial(_process, body, fn, runner, state, arrived))
        finally:
            state.limiter.release()
    finally:
        state.in_system -= 1
        state.held_bytes -= reserve
    state.served += 1
    state.metrics.observe(fn.name, timing)
    log.info("%s %s 200 %s host=%s", request.method, request.url.path, summary, HOST)
    return Response(content, media_type="application/json", headers=_headers(runner, timing))


async def _acquire_watching(limiter: anyio.CapacityLimiter, receive) -> bool:
    """Take an inference slot, listening for the client meanwhile; True if it disconnected.

    Listening matters: once the body is read the server stops reading the socket, and would not see a
    closed connection until it answers."""
    try:
        limiter.acquire_nowait()  # a free slot: nothing to wait for, nothing to watch
        return False
    except anyio.WouldBlock:
        pass
    gone = anyio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        await limiter.acquire()
        group.cancel_scope.cancel()
    return gone.is_set()


def _process(body: bytes, fn: Function, runner, state: State, arrived: float) -> tuple[bytes, dict, str]:
    """Everything CPU-bound, on a worker thread: parse → decode → model → render → encode."""
    started = time.perf_counter()
    settings = state.settings
    parsed = parse_body(body, max_batch=settings.max_batch)
    parse_ms = (time.perf_counter() - started) * 1e3 / len(parsed.items)
    timing = {"queue": (started - arrived) * 1e3, "decode": 0.0, "preprocess": 0.0, "inference": 0.0,
              "postprocess": 0.0, "render": 0.0}  # fmt: skip
    answers, found = [], 0
    for position, item in enumerate(parsed.items):
        t0 = time.perf_counter()
        try:
            if fn.task.pixels:
                image = decode(item.data, max_pixels=settings.max_pixels, min_side=runner.min_side)
            else:
                image = header_only(item.data, max_pixels=settings.max_pixels)
        except ApiError as exc:
            exc.request_id = item.id
            if parsed.batch:
                exc.message = f"images[{position}]: {exc.message}"
            raise
        decode_ms = (time.perf_counter() - t0) * 1e3 + parse_ms
        try:
            result = runner(image)
        except ApiError as exc:  # a task that checks its input further (photo functions) raises these itself
            exc.request_id = item.id
            if parsed.batch:
                exc.message = f"images[{position}]: {exc.message}"
            raise
        except Exception as exc:
            log.exception("inference failed for id=%s", item.id)
            raise InferenceFailed(f"inference failed: {type(exc).__name__}", request_id=item.id) from exc
        result.speed["preprocess"] = result.speed.get("preprocess", 0.0) + decode_ms
        t1 = time.perf_counter()
        answers.append(fn.render(item.id, image, result, settings))
        timing["render"] += (time.perf_counter() - t1) * 1e3
        timing["decode"] += decode_ms
        for stage in ("preprocess", "inference", "postprocess"):
            timing[stage] += result.speed.get(stage, 0.0)
        found += result.count
    timing["preprocess"] -= timing["decode"]  # Server-Timing lists decode on its own
    t2 = time.perf_counter()
    content = orjson.dumps({"results": answers} if parsed.batch else answers[0])
    timing["encode"] = (time.perf_counter() - t2) * 1e3
    timing["total"] = (time.perf_counter() - arrived) * 1e3
    ids = ",".join(i.id for i in parsed.items[:3]) + ("…" if len(parsed.items) > 3 else "")
    summary = f"fn={fn.name} id={ids} images={len(parsed.items)} found={found} total_ms={timing['total']:.1f}"
    return content, timing, summary


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        await _drain(request, int(declared))
        raise BodyTooLarge(f"body is {int(declared)} bytes, the limit is {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            await _drain(request, size)
            raise BodyTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _drain(request: Request, already: int) -> None:
    """Consume the rest of an oversized upload (up to a cap) so the client can read our 413."""
    if already > DRAIN_LIMIT:
        return
    try:
        async for chunk in request.stream():
            already += len(chunk)
            if already > DRAIN_LIMIT:
                return
    except Exception:  # the client went away: nothing left to answer
        return


def _headers(runner, timing: dict[str, float]) -> dict[str, str]:
    return {
        "Server-Timing": ", ".join(f"{k};dur={v:.2f}" for k, v in timing.items()),
        "X-Served-By": HOST,
        "X-Model": runner.name,
    }


def _error_response(exc: ApiError) -> Response:
    headers = {"X-Served-By": HOST}
    if isinstance(exc, (Overloaded, ModelNotReady)):
        headers["Retry-After"] = "1"
    return Response(orjson.dumps(exc.body()), status_code=exc.status, media_type="application/json", headers=headers)


def _add_error_handlers(app: FastAPI, state: State, by_path: dict[str, str]) -> None:
    async def pose_error(request: Request, exc: ApiError) -> Response:
        log.info("%s %s %d %s id=%s: %s", request.method, request.url.path, exc.status, exc.code, exc.request_id, exc.message)
        if exc.status in REJECTED_STATUSES:
            state.metrics.rejected.labels(by_path.get(request.url.path, ""), exc.code).inc()
        return _error_response(exc)

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            err: ApiError = NotFound(f"no route {request.method} {request.url.path}; see /docs")
        elif exc.status_code == 405:
            err = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
        else:
            err = ApiError(str(exc.detail))
            err.status, err.code = exc.status_code, "http_error"
        response = _error_response(err)
        response.headers.update(exc.headers or {})
        return response

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error_response(InferenceFailed(f"internal error: {type(exc).__name__}"))

    app.add_exception_handler(ApiError, pose_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _add_health(app: FastAPI, state: State, functions: list[Function]) -> None:
    @app.get("/_/health", tags=["health"], summary="Alive (the process answers; 500 if the model failed to load)")
    def health() -> Response:
        status = 500 if state.load_error else 200
        body = {"status": "failed" if state.load_error else "ok", "error": state.load_error}
        return Response(orjson.dumps(body), status_code=status, media_type="application/json")

    @app.get("/_/ready", tags=["health"], summary="Ready (every model is loaded); also each function's model and the limits")
    def ready() -> Response:
        s = state.settings
        runners = {t.name: state.runner(t) for t in state.tasks}  # read once: a model may turn ready while this runs
        loaded = all(r is not None for r in runners.values())
        ready = loaded and not state.draining
        models = {name: r.describe() if r is not None else None for name, r in runners.items()}
        status = "draining" if state.draining else "ready" if loaded else "failed" if state.load_error else "loading"
        body = {
            "status": status,
            "error": state.load_error,
            "host": HOST,
            "functions": {
                fn.name: {"task": fn.task.name, "paths": _paths(fn, functions), "model": (models[fn.task.name] or {}).get("variant")}
                for fn in functions
            },
            "models": models,
            # The first function's model: what a single-function image serves (and older clients read).
            "model": models[functions[0].task.name] if loaded else None,
            "limits": {"max_body_bytes": s.max_body_bytes, "max_pixels": s.max_pixels, "max_batch": s.max_batch},
            "inflight": s.inflight,
            "threads": s.threads,
            "requests": {"served": state.served, "abandoned": state.abandoned, "in_progress": state.in_system},
            "uptime_s": round(time.monotonic() - state.started, 3),
        }
        return Response(orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json")


class _CountRequests:
    """ASGI middleware: every answer counted by function, path and status (errors included, as they leave).

    Paths outside the served routes are counted as "other", so a scan of random URLs cannot grow the
    number of series without bound."""

    KNOWN = ("/", "/_/health", "/_/ready", "/metrics", "/docs", "/openapi.json")

    def __init__(self, app, *, metrics: Metrics, by_path: dict[str, str]) -> None:
        self.app, self.metrics, self.by_path = app, metrics, by_path

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = scope["path"]
            label = path if path in self.by_path or path in self.KNOWN else "/static" if path.startswith("/static/") else "other"
            self.metrics.requests.labels(self.by_path.get(path, ""), label, str(status)).inc()


def _add_metrics(app: FastAPI, state: State) -> None:
    def running() -> float:
        return state.limiter.borrowed_tokens if state.limiter else 0

    def queued() -> float:
        return state.limiter.statistics().tasks_waiting if state.limiter else 0

    state.metrics.gauges(lambda: state.in_system, running, queued, lambda: state.held_bytes, lambda: float(state.draining))

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics: requests, latency per stage, queue, model, memory, CPU")
    async def metrics() -> Response:  # on the event loop: a millisecond of formatting, never behind the inference threads
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)


def _responses(fn: Function) -> dict:
    return {
        200: {"model": fn.response | batch_of(fn.response), "description": "one answer, or {results: [...]} for a batch"},
        400: {"model": ErrorResponse, "description": "bad input: the error's code and message say which"},
        413: {"model": ErrorResponse, "description": "body, image or batch over its limit"},
        503: {"model": ErrorResponse, "description": "model not loaded yet, or queue full (Retry-After)"},
    }


_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/ImageRequest"},
                        {"$ref": "#/components/schemas/BatchRequest"},
                        {"type": "string", "description": "the same JSON object, double-encoded as a JSON string"},
                    ]
                }
            }
        },
    }
}


def _openapi(app: FastAPI) -> dict:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes, description=__doc__.split("\n\n")[0])
        _, defs = models_json_schema(
            [(ImageRequest, "validation"), (BatchRequest, "validation")], ref_template="#/components/schemas/{model}"
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        app.openapi_schema = schema
    return app.openapi_schema


def static_dir() -> Path:
    return Path(__file__).with_name("static")


def _add_page(app: FastAPI) -> None:
    """GET / and /static/*: the try-it page (plain HTML, CSS and one JS module; no CDN)."""
    if (static_dir() / "index.html").exists():
        mount_page(app, static_dir())
