"""Running the server: `serve()` for the CLI, `BackgroundServer` for tests and in-process use."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from types import TracebackType

from aiohttp import web
from gossipcert.chaos.toxiproxy.api import build_app
from gossipcert.chaos.toxiproxy.link import bind_socket, socket_address
from gossipcert.chaos.toxiproxy.proxy import ProxyCollection
from gossipcert.chaos.toxiproxy.udp import UdpProxyCollection

READY_LINE = "toxiproxy-compatible server listening on http://{address}"


class ToxiproxyServer:
    """The HTTP API and every proxy it made, on the running event loop."""

    def __init__(self) -> None:
        self.collection = ProxyCollection()
        self.udp = UdpProxyCollection()
        self._runner: web.AppRunner | None = None
        self.address = ""

    async def start(self, listen: str) -> str:
        """Listen for the API on ``listen`` (port 0 allowed); returns the real HOST:PORT.

        Raises ValueError for a malformed address and OSError when it cannot be bound.
        """
        sock = bind_socket(listen)
        app = build_app(self.collection, self.udp)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.SockSite(runner, sock)
        await site.start()
        self._runner = runner
        self.address = socket_address(sock)
        return self.address

    async def close(self) -> None:
        self.collection.close()
        self.udp.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)


async def _serve(listen: str) -> int:
    server = ToxiproxyServer()
    try:
        address = await server.start(listen)
    except (OSError, ValueError) as exc:
        await server.close()
        print(f"gossipcert toxiproxy: cannot listen on {listen}: {_describe(exc)}", file=sys.stderr)
        return 2
    print(READY_LINE.format(address=address), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await server.close()
    return 0


def serve(listen: str = "127.0.0.1:8474") -> int:
    """Serve the API until SIGINT or SIGTERM; 0 on a clean stop, 2 if ``listen`` is unusable."""
    try:
        return asyncio.run(_serve(listen))
    except KeyboardInterrupt:
        return 0


class BackgroundServer:
    """The server on its own event loop in a daemon thread, for tests and in-process runs.

    ``with BackgroundServer() as srv: ToxiproxyClient(srv.url)...``
    """

    def __init__(self, listen: str = "127.0.0.1:0") -> None:
        self.listen = listen
        self.address = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    def start(self, timeout_s: float = 10.0) -> BackgroundServer:
        self._thread = threading.Thread(target=self._run, name="toxiproxy-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("the Toxiproxy-compatible server did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = ToxiproxyServer()
        try:
            self.address = await server.start(self.listen)
        except BaseException as exc:  # handed to the starting thread
            self._error = exc
            self._ready.set()
            await server.close()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
