"""A real HTTP backend in its own process, standing in for a function instance.

``python -m tests.activator.backend_process START_S PORT``: waits START_S seconds (the function's
start time: image pulled, runtime booted), then serves ``/work`` (200, the path back) and ``/sse``
(three events, streamed) on 127.0.0.1:PORT until killed.
"""

from __future__ import annotations

import sys
import time

from aiohttp import web


async def work(request: web.Request) -> web.Response:
    return web.Response(text=f"done {request.path_qs}")


async def sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for i in range(3):
        await response.write(f"data: {i}\n\n".encode())
    await response.write_eof()
    return response


def main() -> None:
    start_s, port = float(sys.argv[1]), int(sys.argv[2])
    time.sleep(start_s)  # the modelled cold start of the instance, not synchronisation
    app = web.Application()
    app.router.add_get("/work", work)
    app.router.add_get("/sse", sse)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=2048)


if __name__ == "__main__":
    main()
