"""A scripted stand-in for ComfyUI's websocket and /history, on 127.0.0.1, for the client's unit tests.

Each websocket connection plays the next script in ``Script.connections`` (a list of
frames: dicts go as JSON text, bytes as binary previews, ``DROP`` closes the socket),
then stays open until the client leaves. ``/history/<id>`` answers ``Script.history``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DROP = object()  # in a frame list: close the socket here


@dataclass
class Script:
    connections: list[list[Any]] = field(default_factory=list)  # frames per websocket connection, in order
    history: dict[str, Any] = field(default_factory=dict)  # the body of GET /history/<prompt id>
    connected: int = 0  # websocket connections so far
    base_url: str = ""


def message(event: str, prompt_id: str = "p1", **data: Any) -> dict[str, Any]:
    return {"type": event, "data": {"prompt_id": prompt_id, **data}}


@contextmanager
def fake_comfyui(script: Script) -> Iterator[Script]:
    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        index = script.connected
        script.connected += 1
        frames = script.connections[index] if index < len(script.connections) else []
        for frame in frames:
            if frame is DROP:
                await ws.close()
                return ws
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(json.dumps(frame))
        async for _ in ws:
            pass
        return ws

    async def history(request: web.Request) -> web.Response:
        return web.json_response(script.history)

    app = web.Application()
    app.add_routes([web.get("/ws", ws_handler), web.get("/history/{prompt_id}", history)])
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    script.base_url = f"http://127.0.0.1:{port}"
    thread = threading.Thread(target=loop.run_forever, name="fake-comfyui", daemon=True)
    thread.start()
    try:
        yield script
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
