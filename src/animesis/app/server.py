"""The paint app's HTTP side: a Starlette app around one Painter, and `serve` to run it with uvicorn.

Requests carry maps as bytes (base64 in JSON, or a PNG body); nothing a request sends names a path
on disk: the page's files and the example maps are read once at start-up and looked up by name.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from animesis.app.examples import BLANK, Example, load_examples
from animesis.app.painting import (
    MAX_VARIATIONS,
    Engine,
    PaintJob,
    as_int,
    band_template,
    character_swatches,
    paint_job,
    parse_job,
    read_map,
)
from animesis.app.uploads import (
    Limits,
    UploadError,
    display_name,
    encode_png,
    label_from_image,
    open_png,
    read_capped,
)
from animesis.errors import UserError
from animesis.inference import Painter

STATIC_DIR = Path(__file__).with_name("static")
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'",
    "Cache-Control": "no-store",
}
CLIENT_GONE = 499  # the page dropped a stale request before its turn came


@dataclass
class AppState:
    """What the handlers share: the painter, the caps, and what start-up computed once."""

    painter: Painter
    engine: Engine | None  # paints instead of the painter's torch generator when set (onnxruntime)
    limits: Limits
    examples: dict[str, Example]
    info: dict[str, Any]
    static: dict[str, tuple[bytes, str]]
    _lock: asyncio.Lock | None = field(default=None, repr=False)
    _lock_loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    def lock(self) -> asyncio.Lock:
        """One painting at a time; a lock per event loop (a test client may start several loops)."""
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        assert self._lock is not None
        return self._lock


def create_app(
    painter: Painter,
    *,
    engine: Engine | None = None,
    max_upload_bytes: int = Limits.max_upload_bytes,
    max_pixels: int = Limits.max_pixels,
) -> Starlette:
    """The app for one painter (and the engine that paints for it, if not its own torch generator);
    paints the character swatches once, here."""
    limits = Limits(max_upload_bytes=max_upload_bytes, max_pixels=max_pixels)
    examples = load_examples(painter.card.palette, painter.card.image_size)
    template = (
        examples[BLANK].label
        if BLANK in examples
        else band_template(painter.num_classes, painter.card.image_size)
    )
    state = AppState(
        painter=painter,
        engine=engine,
        limits=limits,
        examples=examples,
        info=model_info(painter, character_swatches(painter, template), limits)
        | {"engine": "torch" if engine is None else "onnxruntime"},
        static={
            route: ((STATIC_DIR / name).read_bytes(), kind) for route, (name, kind) in STATIC_FILES.items()
        },
    )
    routes = [Route(path, static_endpoint(*state.static[path])) for path in STATIC_FILES]
    routes += [
        Route("/api/model", get_model),
        Route("/api/examples", list_examples),
        Route("/api/examples/{name}", get_example),
        Route("/api/label", open_label, methods=["POST"]),
        Route("/api/encode", encode_label, methods=["POST"]),
        Route("/api/paint", paint, methods=["POST"]),
        Route("/api/variations", variations, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={UserError: user_error})
    app.state.paint = state
    return app


def model_info(painter: Painter, swatches: list[list[int]], limits: Limits) -> dict[str, Any]:
    palette = painter.card.palette
    background = palette.index("background")
    return {
        "classes": [
            {"id": i, "name": n, "color": list(c)}
            for i, (n, c) in enumerate(zip(palette.names, palette.colors, strict=True))
        ],
        "background": 0 if background is None else background,
        "characters": [
            {"id": i, "name": n, "swatch": s}
            for i, (n, s) in enumerate(zip(painter.card.character_names, swatches, strict=True))
        ],
        "size": list(painter.card.image_size),
        "z": bool(painter.card.generator.z_dim),
        "step": painter.card.step,
        "device": str(painter.device),
        "torch_threads": torch.get_num_threads(),
        "max_upload_bytes": limits.max_upload_bytes,
        "max_pixels": limits.max_pixels,
        "max_variations": MAX_VARIATIONS,
    }


# --- handlers ------------------------------------------------------------------------------------


def _state(request: Request) -> AppState:
    return request.app.state.paint


async def user_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400, headers=SECURITY_HEADERS)


def static_endpoint(body: bytes, kind: str):
    async def endpoint(request: Request) -> Response:
        return Response(body, media_type=kind, headers=SECURITY_HEADERS)

    return endpoint


async def get_model(request: Request) -> Response:
    return JSONResponse(_state(request).info, headers=SECURITY_HEADERS)


async def list_examples(request: Request) -> Response:
    items = [{"name": e.name, "title": e.title} for e in _state(request).examples.values()]
    return JSONResponse({"examples": items}, headers=SECURITY_HEADERS)


async def get_example(request: Request) -> Response:
    example = _state(request).examples.get(request.path_params["name"])
    if example is None:
        return JSONResponse({"error": "no such example"}, status_code=404, headers=SECURITY_HEADERS)
    return map_response(example.label, name=example.name, title=example.title)


def map_response(label: np.ndarray, **extra: Any) -> Response:
    """An index map as JSON: base64 of its H*W bytes, row by row."""
    body = {"label": base64.b64encode(label.tobytes()).decode("ascii"), "size": list(label.shape), **extra}
    return JSONResponse(body, headers=SECURITY_HEADERS)


async def open_label(request: Request) -> Response:
    """A label PNG sent as the body (index values or palette colours) -> its map at the model size."""
    state = _state(request)
    name = display_name(request.query_params.get("name"), "upload")
    data = await read_capped(
        request.stream(), request.headers.get("content-length"), state.limits.max_upload_bytes, name
    )
    painter = state.painter

    def decode() -> tuple[np.ndarray, tuple[int, int]]:
        img = open_png(data, name, state.limits)
        label = label_from_image(img, painter.card.palette, painter.num_classes, name)
        return painter.resize_label(label), label.shape

    label, source = await run_in_threadpool(decode)
    return map_response(label, name=name, source_size=list(source))


async def read_json(request: Request, limits: Limits) -> dict[str, Any]:
    data = await read_capped(
        request.stream(), request.headers.get("content-length"), limits.max_body_bytes, "request"
    )
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UploadError("request: not valid JSON") from None
    if not isinstance(body, dict):
        raise UploadError("request: expected a JSON object")
    return body


async def encode_label(request: Request) -> Response:
    """{"label": base64 of H*W bytes} -> the map as an index PNG, for the page's Save button."""
    state = _state(request)
    body = await read_json(request, state.limits)
    label = read_map({"label": body.get("label")}, "label", state.painter, state.limits)
    headers = {**SECURITY_HEADERS, "Content-Disposition": 'attachment; filename="label.png"'}
    return Response(encode_png(label), media_type="image/png", headers=headers)


async def paint(request: Request) -> Response:
    """A paint request (see painting.parse_job) -> the picture as a PNG."""
    state = _state(request)
    body = await read_json(request, state.limits)
    job = await run_in_threadpool(parse_job, body, state.painter, state.limits)
    images = await _paint(request, job, [job.seed])
    if images is None:
        return Response(status_code=CLIENT_GONE)
    return Response(encode_png(images[0]), media_type="image/png", headers=SECURITY_HEADERS)


async def variations(request: Request) -> Response:
    """A paint request plus n (1..8): the pictures of seeds seed+1 .. seed+n, as base64 PNGs."""
    state = _state(request)
    if not state.info["z"]:
        raise UploadError("variations: this model has no noise input, so every seed paints the same picture")
    body = await read_json(request, state.limits)
    n = as_int(body.get("n", 4), "n", 1, MAX_VARIATIONS)
    job = await run_in_threadpool(parse_job, body, state.painter, state.limits)
    seeds = [job.seed + i for i in range(1, n + 1)]
    images = await _paint(request, job, seeds)
    if images is None:
        return Response(status_code=CLIENT_GONE)
    pngs = [base64.b64encode(encode_png(img)).decode("ascii") for img in images]
    return JSONResponse({"seeds": seeds, "images": pngs}, headers=SECURITY_HEADERS)


async def _paint(request: Request, job: PaintJob, seeds: list[int]) -> np.ndarray | None:
    """Wait for the painter, then paint; None when the page went away while this waited."""
    state = _state(request)
    async with state.lock():
        if await request.is_disconnected():
            return None
        return await run_in_threadpool(paint_job, state.painter, job, seeds, state.engine)


# --- serving -------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind here, not inside uvicorn: a busy port becomes one clear message, port 0 works, and
    the printed URL answers as soon as it is printed."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError):
        raise UserError(f"--host {host}: not an address this machine can listen on") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)  # connections wait in the backlog until uvicorn starts accepting
    except OSError as e:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror} (pick another --port)") from None
    return sock


def url_of(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def make_server(app: Starlette) -> uvicorn.Server:
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


def serve(
    painter: Painter, host: str = "127.0.0.1", port: int = 7860, *, note: str = "torch", **app_options: Any
) -> None:
    """Run the app until Ctrl-C: print its URL and `note` (what paints), and warn when others on the
    network can reach it."""
    app = create_app(painter, **app_options)
    sock = bind_socket(host, port)
    print(f"animesis paint: {url_of(host, sock.getsockname()[1])}  (Ctrl-C stops)", flush=True)
    print(f"painting with {note}", flush=True)
    if not is_loopback(host):
        print(
            f"warning: listening on {host}: anyone who can reach this machine can use the app (no login)",
            file=sys.stderr,
            flush=True,
        )
    try:
        make_server(app).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down, then re-raises the signal it caught
        pass
    finally:
        sock.close()
    print("stopped", flush=True)
