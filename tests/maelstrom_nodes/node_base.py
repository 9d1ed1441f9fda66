"""A small runtime for Maelstrom nodes: newline-delimited JSON envelopes on stdin and
stdout, the ``init`` handshake, replies paired by ``msg_id``/``in_reply_to``, requests
with a timeout and periodic tasks. Standard library only; one lock serialises every
handler, timer and reply callback, so node code needs no locking of its own."""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

Body = dict[str, Any]
Message = dict[str, Any]

NOT_SUPPORTED = 10
TEMPORARILY_UNAVAILABLE = 11


class Node:
    def __init__(self) -> None:
        self.node_id = ""
        self.node_ids: list[str] = []
        self.lock = threading.RLock()
        self._out = threading.Lock()
        self._ids = itertools.count(1)
        self._handlers: dict[str, Callable[[Message], None]] = {}
        self._waiting: dict[int, tuple[float, Callable[[Body | None], None]]] = {}
        self._on_init: list[Callable[[], None]] = []
        self.on("init", self._init)

    @property
    def peers(self) -> list[str]:
        """Every other node of the cluster, whatever the topology says."""
        return [n for n in self.node_ids if n != self.node_id]

    def on(self, kind: str, handler: Callable[[Message], None]) -> None:
        self._handlers[kind] = handler

    def after_init(self, hook: Callable[[], None]) -> None:
        self._on_init.append(hook)

    def send(self, dest: str, body: Body) -> None:
        line = json.dumps({"src": self.node_id, "dest": dest, "body": body})
        with self._out:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def reply(self, request: Message, body: Body) -> None:
        msg_id = request["body"].get("msg_id")
        if msg_id is not None:
            body = {**body, "in_reply_to": msg_id}
        self.send(request["src"], body)

    def error(self, request: Message, code: int, text: str) -> None:
        self.reply(request, {"type": "error", "code": code, "text": text})

    def request(self, dest: str, body: Body, callback: Callable[[Body | None], None],
                timeout_s: float) -> None:
        """Send ``body`` with a fresh ``msg_id``; ``callback`` gets the reply body, or
        None once ``timeout_s`` passed without one."""
        msg_id = next(self._ids)
        with self.lock:
            self._waiting[msg_id] = (time.monotonic() + timeout_s, callback)
        self.send(dest, {**body, "msg_id": msg_id})

    def every(self, seconds: float, task: Callable[[], None]) -> None:
        def loop() -> None:
            while True:
                time.sleep(seconds)
                with self.lock:
                    task()

        threading.Thread(target=loop, daemon=True).start()

    def _init(self, message: Message) -> None:
        body = message["body"]
        self.node_id = body["node_id"]
        self.node_ids = list(body["node_ids"])
        self.reply(message, {"type": "init_ok"})
        for hook in self._on_init:
            hook()

    def _expire(self) -> None:
        now = time.monotonic()
        for msg_id, (deadline, callback) in list(self._waiting.items()):
            if deadline <= now:
                del self._waiting[msg_id]
                callback(None)

    def _handle(self, message: Message) -> None:
        body = message["body"]
        waiting = self._waiting.pop(body.get("in_reply_to"), None)
        if waiting is not None:
            waiting[1](body)
            return
        handler = self._handlers.get(body.get("type", ""))
        if handler is not None:
            handler(message)
        elif "in_reply_to" not in body:
            self.error(message, NOT_SUPPORTED, f"unknown message type {body.get('type')!r}")

    def run(self) -> None:
        self.every(0.05, self._expire)
        for line in sys.stdin:
            if not line.strip():
                continue
            message = json.loads(line)
            with self.lock:
                self._handle(message)
