"""The HTTP side of the server: a Starlette app with the JSON API, the web page, and
one JSON error for every refusal (never a traceback, never a dead server).

Routes: GET / (the page), GET /health, GET /info, POST /translate, POST /generate.
Decoding goes through the `Batcher`; the engines know nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nmt.serving.batching import Batcher, QueueFull, ShuttingDown
from nmt.serving.engines import GenerationEngine, TranslationEngine
from nmt.serving.inputs import parse_generate, parse_translate
from nmt.serving.limits import Limits, RequestError, parse_json, read_body
from nmt.utils.text import one_line

log = logging.getLogger("nmt.serve")
Engine = TranslationEngine | GenerationEngine
Endpoint = Callable[[Request], Awaitable[Response]]
PAGE_FILES = {
    "/": ("index.html", "text/html"),
    "/page.js": ("page.js", "text/javascript"),
}


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def answers_errors(endpoint: Endpoint) -> Endpoint:
    """Every failure of `endpoint` as a JSON error; unexpected ones are logged in
    one line and answered 500, and the server goes on."""

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except RequestError as e:
            return error(e.status, e.message, e.headers)
        except QueueFull as e:
            return error(503, str(e), {"Retry-After": str(e.retry_after)})
        except ShuttingDown as e:
            return error(503, str(e))
        except (ClientGone, ClientDisconnect):
            return error(499, "client closed the connection")  # nobody reads it
        except Exception as e:
            log.error("%s %s failed: %s", request.method, request.url.path, one_line(e))
            return error(500, f"the server failed on this request: {one_line(e)}")

    return wrapped


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (the request body has been read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _decode(
    request: Request, key: Hashable, units: list[Any], limit: int | None = None
) -> list[Any]:
    """The batcher's outputs for `units`, or ClientGone (and the units leave the
    queue) if the client disconnects first."""
    batcher: Batcher = request.app.state.batcher
    work = asyncio.ensure_future(batcher.submit(key, units, limit=limit))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not work.done():  # the client is gone, or this handler was cancelled
            work.cancel()  # `submit` then takes the units off the queue
    if not work.done():
        raise ClientGone
    return work.result()


async def _body(request: Request) -> dict[str, Any]:
    limits: Limits = request.app.state.limits
    body = await read_body(
        request.stream(), request.headers.get("content-length"), limits.max_body_bytes
    )
    return parse_json(body)


def _engine(request: Request, kind: type) -> Any:
    engine: Engine = request.app.state.engine
    if not isinstance(engine, kind):
        other = "/generate" if isinstance(engine, GenerationEngine) else "/translate"
        what = "a character language model" if other == "/generate" else "a translator"
        raise RequestError(404, f"this server holds {what}: use POST {other}")
    return engine


@answers_errors
async def translate(request: Request) -> Response:
    engine = _engine(request, TranslationEngine)
    parsed = parse_translate(
        await _body(request), request.app.state.limits, engine.defaults
    )
    results = await _decode(request, parsed.key, parsed.texts)
    return JSONResponse({"results": results})


@answers_errors
async def generate(request: Request) -> Response:
    _engine(request, GenerationEngine)
    parsed = parse_generate(await _body(request), request.app.state.limits)
    (result,) = await _decode(request, "generate", [parsed], limit=1)
    return JSONResponse(result)


@answers_errors
async def health(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    stats = request.app.state.batcher.stats()
    return JSONResponse({"status": "ok", "kind": engine.kind, **stats})


@answers_errors
async def info(request: Request) -> Response:
    state = request.app.state
    return JSONResponse(
        {
            **state.engine.info(state.limits),
            "limits": dataclasses.asdict(state.limits),
            "batching": state.batching,
        }
    )


def _page(name: str, media_type: str) -> Endpoint:
    content = (
        resources.files("nmt.serving").joinpath("page").joinpath(name).read_bytes()
    )

    async def page(request: Request) -> Response:
        return Response(content, media_type=media_type)

    return page


async def _http_error(request: Request, exc: Exception) -> Response:
    """404 (no such route) and 405 (wrong method, with Allow) as JSON errors."""
    assert isinstance(exc, HTTPException)
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return error(exc.status_code, message, dict(exc.headers or {}))


def create_app(
    engine: Engine,
    limits: Limits,
    *,
    max_batch: int = 64,
    max_wait_ms: float = 10.0,
    workers: int = 1,
) -> Starlette:
    """The server's ASGI app; the batcher starts and stops with it (lifespan)."""
    batcher = Batcher(
        engine.run,
        max_batch=max_batch,
        max_wait=max_wait_ms / 1000,
        max_queue=limits.max_queue,
        workers=workers,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.close()

    routes = [
        Route(path, _page(*page), methods=["GET"]) for path, page in PAGE_FILES.items()
    ] + [
        Route("/health", health, methods=["GET"]),
        Route("/info", info, methods=["GET"]),
        Route("/translate", translate, methods=["POST"]),
        Route("/generate", generate, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.engine, app.state.limits, app.state.batcher = engine, limits, batcher
    app.state.batching = {
        "max_batch": max_batch,
        "max_wait_ms": max_wait_ms,
        "workers": workers,
    }
    return app
