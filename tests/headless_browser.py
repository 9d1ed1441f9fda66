"""Open report pages in one headless Chromium, over the DevTools protocol.

A report is read in a browser, so its links are checked the way a browser follows them:
each page is loaded once, and what it references (links, images, anchors) is collected
from the DOM Chromium built, with the page's failed loads and script errors. One browser
serves every page, so a tree of reports is opened in seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

# Every reference a page makes, resolved by the browser; and the ids it defines.
_COLLECT = """(() => {
  const refs = [];
  for (const el of document.querySelectorAll('[href],[src],[data]')) {
    for (const attr of ['href', 'src', 'data']) {
      const raw = el.getAttribute(attr);
      if (raw === null) continue;
      let url = raw;
      try { url = new URL(raw, document.baseURI).href; } catch (e) {}
      refs.push({tag: el.tagName.toLowerCase(), raw: raw, url: url});
    }
  }
  const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id);
  return JSON.stringify({refs: refs, ids: ids,
                         svgs: document.querySelectorAll('svg').length,
                         title: document.title});
})()"""


@dataclass
class Page:
    """What the browser made of one page."""

    path: Path
    refs: list[dict[str, str]]
    ids: set[str]
    svgs: int
    title: str
    errors: list[str] = field(default_factory=list)

    def dangling(self) -> list[str]:
        """References that lead nowhere: a local file that does not exist, or an anchor
        that names no element of its page."""
        found = []
        for ref in self.refs:
            parts = urlsplit(ref["url"])
            if parts.scheme in ("http", "https", "mailto", "data"):
                continue
            if parts.scheme != "file":
                found.append(f"{ref['raw']} (scheme {parts.scheme!r})")
                continue
            target = Path(unquote(parts.path))
            if not target.exists():
                found.append(f"{ref['raw']} -> {target} (no such file)")
                continue
            if parts.fragment and target == self.path and parts.fragment not in self.ids:
                found.append(f"{ref['raw']} (no element with id {parts.fragment!r})")
        return found


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Session:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, params: dict[str, Any] | None = None,
                   timeout: float = 30.0) -> dict[str, Any]:
        msg_id = next(self.ids)
        await self.ws.send_str(json.dumps({"id": msg_id, "method": method,
                                           "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.ws.receive(timeout=max(0.1, deadline - time.monotonic()))
            data = json.loads(msg.data)
            if data.get("id") == msg_id:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                result: dict[str, Any] = data.get("result", {})
                return result
            self.events.append(data)

    async def wait_event(self, method: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            msg = await self.ws.receive(timeout=max(0.1, deadline - time.monotonic()))
            self.events.append(json.loads(msg.data))


async def _open_pages(port: int, paths: Sequence[Path]) -> list[Page]:
    async with aiohttp.ClientSession() as http:
        async with http.put(f"http://127.0.0.1:{port}/json/new?about:blank") as resp:
            target = await resp.json(content_type=None)
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            session = _Session(ws)
            for method in ("Page.enable", "Network.enable", "Runtime.enable", "Log.enable"):
                await session.call(method)
            pages = []
            for path in paths:
                session.events.clear()
                await session.call("Page.navigate", {"url": path.resolve().as_uri()})
                await session.wait_event("Page.loadEventFired")
                found = await session.call("Runtime.evaluate",
                                           {"expression": _COLLECT, "returnByValue": True})
                data = json.loads(found["result"]["value"])
                errors = [_event_text(e) for e in session.events if _is_error(e)]
                pages.append(Page(path.resolve(), data["refs"], set(data["ids"]),
                                  int(data["svgs"]), str(data["title"]), errors))
            return pages


def _is_error(event: dict[str, Any]) -> bool:
    method = event.get("method")
    if method in ("Network.loadingFailed", "Runtime.exceptionThrown"):
        return True
    if method == "Log.entryAdded":
        return event["params"]["entry"].get("level") == "error"
    return method == "Runtime.consoleAPICalled" and event["params"].get("type") == "error"


def _event_text(event: dict[str, Any]) -> str:
    return f"{event.get('method')}: {json.dumps(event.get('params'), sort_keys=True)[:400]}"


@contextmanager
def headless(profile: Path) -> Iterator[int]:
    """A headless Chromium for the duration; yields its DevTools port."""
    browser = chromium()
    if browser is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    proc = subprocess.Popen(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={profile}",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        yield int(port_file.read_text().split()[0])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def open_pages(paths: Sequence[Path], profile: Path) -> list[Page]:
    """Load every page in one headless Chromium and return what each references."""
    with headless(profile) as port:
        return asyncio.run(_open_pages(port, paths))
