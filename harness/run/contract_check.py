"""``gossipcert check-contract``: a small cluster of an implementation, every endpoint of
every capability it declares called once or twice (and one endpoint of each capability it
does not declare, which must answer 501), each response checked against the OpenAPI
document by :mod:`harness.drivers.contract`, the same validator ``certify`` applies.

The calls are harmless and few (a put/get/delete of one key, one broadcast, one operation
per CRDT type, one leave at the end), so the check takes seconds and tells a shim's author
what is wrong before a certification would bury it in checker failures.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossipcert.harness.drivers.cluster import Cluster
from gossipcert.harness.drivers.contract import (
    Deviation,
    check_reply,
    check_undeclared,
    endpoint_of,
    expected_501,
    request_of,
    undeclared_probes,
)
from gossipcert.harness.history import History
from gossipcert.harness.manifest import CRDT_TYPES, Manifest, load_manifest
from gossipcert.harness.run.preflight import check_backend

__all__ = ["ContractCheck", "check_contract", "deviation_table"]

# A harmless operation per CRDT type: (op, value).
_CRDT_OPS: dict[str, tuple[str, Any]] = {
    "g-counter": ("increment", 1),
    "pn-counter": ("decrement", 1),
    "or-set": ("add", "check-contract"),
    "lww-register": ("set", "check-contract"),
}


@dataclass
class ContractCheck:
    """What the check called and what broke the contract."""

    impl: str
    calls: int = 0
    deviations: list[Deviation] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.deviations else 0

    def as_json(self) -> dict[str, Any]:
        return {"impl": self.impl, "calls": self.calls,
                "deviations": [d.as_json() for d in self.deviations]}


class _Caller:
    """Calls one node and checks the answer: its schema, and the status the manifest
    implies (a success from a declared capability, 501 from an undeclared one)."""

    def __init__(self, cluster: Cluster, result: ContractCheck) -> None:
        self.cluster = cluster
        self.result = result
        self.capabilities = [c.partition(":")[0] for c in cluster.manifest.capabilities]

    def __call__(self, node: str, op: str, args: dict[str, Any],
                 allowed: Iterable[int] = ()) -> Any:
        """Call ``op`` on ``node``; the body when it succeeded. ``allowed``: error
        statuses that are a correct answer to this call (a get after a delete: 404)."""
        endpoint = endpoint_of(op)
        reply = self.cluster.client(node).request(*request_of(op, args))
        self.result.calls += 1
        found = check_reply(op, reply.status, reply.body, reply.is_json, node)
        if reply.status == 0:
            found = [Deviation(endpoint.name, "an answer", reply.error or "no answer",
                               node=node)]
        elif expected_501(op, self.capabilities):
            found = check_undeclared(op, reply.status, reply.body, reply.is_json, node)
        elif reply.status == 501:
            found.insert(0, Deviation(
                endpoint.name, f"a success (capability {endpoint.capability!r} is declared)",
                "status 501", node=node))
        elif not 200 <= reply.status < 300 and reply.status not in set(allowed):
            found.insert(0, Deviation(endpoint.name, "a success to a well-formed request",
                                      f"status {reply.status}: {reply.error}", node=node))
        self.result.deviations.extend(found)
        return reply.body if reply.ok else None


def _declared_calls(cluster: Cluster, call: _Caller) -> None:
    """Every endpoint of every declared capability, in an order that keeps each answer
    well-defined: writes before reads of them, the leave last."""
    manifest = cluster.manifest
    nodes = cluster.node_ids
    first, declared = nodes[0], set(call.capabilities)
    for node in nodes:
        call(node, "node", {})
    if declared & {"membership", "failure-detection"}:
        for node in nodes:
            call(node, "members", {})
    if "membership" in declared and len(nodes) > 1:
        call(nodes[1], "join", {"seeds": [cluster.nodes.dial(nodes[1], first)]})
    if "broadcast" in declared:
        rng = random.Random()
        msg_id = (str(rng.randrange(2**31)) if manifest.broadcast_ids == "integer"
                  else f"check-contract-{rng.randrange(2**31)}")
        call(first, "broadcast", {"id": msg_id, "payload": msg_id})
        for node in nodes:
            call(node, "broadcasts", {})
    if "kv" in declared:
        put = call(first, "put", {"key": "check-contract", "value": 1})
        call(first, "get", {"key": "check-contract"})
        call(first, "kv", {})
        context = put.get("context") if isinstance(put, dict) else None
        call(first, "delete", {"key": "check-contract", "context": context})
        call(first, "get", {"key": "check-contract"}, allowed=(404,))
        call(first, "get", {"key": "check-contract-never-written"}, allowed=(404,))
    if "crdt" in declared:
        for kind in manifest.crdt_types or CRDT_TYPES:
            op, value = _CRDT_OPS[kind]
            name = f"check-contract-{kind}"
            call(first, "crdt", {"name": name, "type": kind, "op": op, "value": value})
            call(first, "crdt_read", {"name": name})
    if "events" in declared:
        for node in nodes:
            call(node, "events", {"after": 0})
    if "metrics" in declared:
        for node in nodes:
            call(node, "metrics", {})
    if "encryption" in declared:
        call(first, "keyring", {})


def _undeclared_calls(cluster: Cluster, call: _Caller) -> None:
    """One harmless endpoint of each capability the manifest does not declare: it must
    answer 501. A leave goes last, on the last node."""
    first, last = cluster.node_ids[0], cluster.node_ids[-1]
    for op, args in undeclared_probes(call.capabilities):
        call(first, op, args)
    if "leave" not in call.capabilities:
        call(last, "leave", {})


def check_contract(impl: str, nodes: int = 3, backend: str = "process",
                   progress: Callable[[str], None] | None = None) -> ContractCheck:
    """Start ``nodes`` nodes of ``impl``, make the calls, stop everything."""
    say = progress or (lambda line: None)
    manifest: Manifest = load_manifest(impl)
    manifest.launch_for(backend)  # a missing launch section is bad input, before any start
    check_backend(backend)
    result = ContractCheck(str(manifest.path))
    # The nodes' logs stay when a node fails to start (the error names them); a check
    # that ran removes them.
    run_dir = Path(tempfile.mkdtemp(prefix="gossipcert-contract-"))
    history = History(run_dir / "history.jsonl")
    with Cluster(manifest, nodes, run_dir, backend=backend, history=history,
                 event_poll_s=3600.0, progress=say) as cluster:
        say(f"cluster up: {nodes} nodes of {manifest.name}")
        call = _Caller(cluster, result)
        _declared_calls(cluster, call)
        _undeclared_calls(cluster, call)
        if "leave" in call.capabilities:
            call(cluster.node_ids[-1], "leave", {})
    shutil.rmtree(run_dir, ignore_errors=True)
    return result


def deviation_table(deviations: list[Deviation]) -> list[str]:
    """The deviations as aligned text lines: node, endpoint, field, expected, got."""
    header = ("NODE", "ENDPOINT", "FIELD", "EXPECTED", "GOT")
    rows = [(d.node or "-", d.endpoint, d.field or "-", d.expected, d.got)
            for d in deviations]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True))
            + "  " + row[4] for row in [header, *rows]]
