"""Running the app: on a loopback port in a thread (tests), or in the foreground (CLI)."""

from __future__ import annotations

import contextlib
import gc
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

import uvicorn

from .app import MonitorSim, build_app
from .config import Config


def _socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _server(app: MonitorSim) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        http="h11",
        timeout_keep_alive=30,
    )
    return uvicorn.Server(config)


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _settle() -> None:
    """The world is built and lives until the process exits: keep the cyclic GC off it."""
    gc.collect()
    gc.freeze()


def run_in_thread(
    config: Config | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    app: MonitorSim | None = None,
) -> tuple[str, Callable[[], None], MonitorSim]:
    """Start a server in a daemon thread. Returns (base url, stop, app)."""
    app = app or build_app(config)
    sock = _socket(host, port)
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("monitorsim server failed to start")
        thread.join(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)
        sock.close()

    return _url(sock), stop, app


@contextlib.contextmanager
def running(config: Config | None = None, **kwargs) -> Iterator[tuple[str, MonitorSim]]:
    """``with running(Config(...)) as (url, app): ...``"""
    url, stop, app = run_in_thread(config, **kwargs)
    try:
        yield url, app
    finally:
        stop()


class _AnnouncingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, announce: str):
        super().__init__(config)
        self.announce = announce

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            print(self.announce, flush=True)


def serve(
    config: Config, host: str = "127.0.0.1", port: int = 8765, pregenerate: bool = False
) -> None:
    """Generate, then serve in the foreground until interrupted."""
    t = time.perf_counter()
    app = build_app(config)
    if pregenerate:
        app.feed.pregenerate()
    took = time.perf_counter() - t
    w = app.world
    print(
        f"monitorsim: scenario {w.config.scenario}, seed {w.config.seed}: {len(w.companies)} "
        f"companies, {len(w.wells)} wells, {len(w.datastreams)} datastreams, {len(w):,} "
        f"observations in {took:.1f} s; now {app.scenario()['now']} ({app.scenario()['clock']})",
        file=sys.stderr,
        flush=True,
    )
    _settle()
    sock = _socket(host, port)
    server = _AnnouncingServer(_server(app).config, f"monitorsim serving {_url(sock)}")
    server.run(sockets=[sock])
