"""The control contract as the harness enforces it: every response checked against the
OpenAPI document (specs/control-api.yaml), by ``certify`` on each call it records and by
``gossipcert check-contract`` on a small cluster.

Each operation of the document gets its validators compiled once (``$ref`` resolved
through a :mod:`referencing` registry holding the whole document), so checking a response
costs one schema walk. A response breaks the contract when its status is not one the
operation documents for a success (a 2xx other than the documented one), or its body does
not match the schema of its status (``default``, the ``Error`` body, for any status not
listed). A 501 is checked like any error here; whether a 501 is allowed depends on the
manifest, which :func:`expected_501` and the checkers decide.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import jsonschema
import yaml
from gossipcert.specs import spec_path
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "CAPABILITY_OPS",
    "ENDPOINTS",
    "Deviation",
    "Endpoint",
    "check_reply",
    "check_response",
    "check_undeclared",
    "request_of",
    "undeclared_probes",
    "endpoint_of",
    "expected_501",
]

_URI = "urn:gossipcert:control-api"
# How many problems of one response are named: the first few say what is wrong.
_MAX_ERRORS = 3


@dataclass(frozen=True)
class Endpoint:
    """One operation of the contract, by the history's name of the call."""

    method: str
    path: str  # the OpenAPI path template
    capability: str | None  # None: always served (GET /v1/node)

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


# The history's call names (harness.drivers.interface) and the contract operation each is.
ENDPOINTS: dict[str, Endpoint] = {
    "node": Endpoint("GET", "/v1/node", None),
    "members": Endpoint("GET", "/v1/members", "membership"),
    "join": Endpoint("POST", "/v1/join", "membership"),
    "leave": Endpoint("POST", "/v1/leave", "leave"),
    "broadcast": Endpoint("POST", "/v1/broadcast", "broadcast"),
    "broadcasts": Endpoint("GET", "/v1/broadcasts", "broadcast"),
    "put": Endpoint("PUT", "/v1/kv/{key}", "kv"),
    "get": Endpoint("GET", "/v1/kv/{key}", "kv"),
    "delete": Endpoint("DELETE", "/v1/kv/{key}", "kv"),
    "kv": Endpoint("GET", "/v1/kv", "kv"),
    "crdt": Endpoint("POST", "/v1/crdt/{name}", "crdt"),
    "crdt_read": Endpoint("GET", "/v1/crdt/{name}", "crdt"),
    "events": Endpoint("GET", "/v1/events", "events"),
    "metrics": Endpoint("GET", "/v1/metrics", "metrics"),
    "keyring": Endpoint("GET", "/v1/keyring", "encryption"),
    "keyring_change": Endpoint("POST", "/v1/keyring", "encryption"),
}

# Per capability, the calls that serve it (docs/contract.md, "Capabilities").
CAPABILITY_OPS: dict[str, tuple[str, ...]] = {
    "membership": ("members", "join"),
    "failure-detection": ("members",),
    "leave": ("leave",),
    "broadcast": ("broadcast", "broadcasts"),
    "kv": ("put", "get", "delete", "kv"),
    "crdt": ("crdt", "crdt_read"),
    "events": ("events",),
    "metrics": ("metrics",),
    "encryption": ("keyring",),
}


# One harmless read per capability, the call an undeclared capability is probed with: it
# must answer 501 (the leave, not harmless, is probed by check-contract alone, last).
UNDECLARED_PROBES: dict[str, tuple[str, dict[str, Any]]] = {
    "membership": ("members", {}),
    "failure-detection": ("members", {}),
    "broadcast": ("broadcasts", {}),
    "kv": ("kv", {}),
    "crdt": ("crdt_read", {"name": "contract-probe"}),
    "events": ("events", {}),
    "metrics": ("metrics", {}),
    "encryption": ("keyring", {}),
}


@dataclass(frozen=True)
class Deviation:
    """One way a response broke the contract."""

    endpoint: str  # "GET /v1/members"
    expected: str  # what the contract says
    got: str  # what came back
    field: str | None = None  # JSON path of the bad part of the body ("$.members[0]...")
    node: str | None = None

    def describe(self) -> str:
        where = f" at {self.field}" if self.field else ""
        return f"{self.endpoint}{where}: expected {self.expected}, got {self.got}"

    def as_json(self) -> dict[str, Any]:
        return {"node": self.node, "endpoint": self.endpoint, "field": self.field,
                "expected": self.expected, "got": self.got}


def endpoint_of(op: str) -> Endpoint:
    try:
        return ENDPOINTS[op]
    except KeyError:
        raise ValueError(f"no control-API call named {op!r}") from None


@cache
def _document() -> dict[str, Any]:
    with spec_path("control-api.yaml").open(encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


@cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(_document(), default_specification=DRAFT202012)
    return Registry().with_resource(_URI, resource)


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _response_object(responses: Mapping[str, Any], key: str) -> tuple[str, Mapping[str, Any]]:
    """The response object under ``key`` and its JSON pointer, an OpenAPI ``$ref`` to
    ``#/components/responses/...`` followed (those are not schemas)."""
    response = responses[key]
    if isinstance(response, Mapping) and "$ref" in response:
        ref = str(response["$ref"])
        target: Any = _document()
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        return ref[1:], target
    return "", response


@cache
def _validator(method: str, path: str, status_key: str) -> jsonschema.protocols.Validator | None:
    """The compiled validator of one documented response (None: it has no JSON body)."""
    operation = _document()["paths"][path][method.lower()]
    pointer, response = _response_object(operation["responses"], status_key)
    if not pointer:
        pointer = "/" + _pointer("paths", path, method.lower(), "responses", status_key)
    if "content" not in response:
        return None
    ref = f"{_URI}#{pointer}/content/application~1json/schema"
    cls = jsonschema.validators.validator_for({}, default=jsonschema.Draft202012Validator)
    validator: jsonschema.protocols.Validator = cls(
        {"$ref": ref}, registry=_registry(),
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return validator


@cache
def _statuses(method: str, path: str) -> tuple[str, ...]:
    return tuple(_document()["paths"][path][method.lower()]["responses"])


def _json_path(parts: Iterator[Any] | Any) -> str:
    text = "$"
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(error: jsonschema.ValidationError) -> str:
    """What the failing keyword asked for, in words."""
    keyword, want = error.validator, cast(Any, error.validator_value)
    if keyword == "type":
        return " or ".join(want) if isinstance(want, list) else str(want)
    if keyword == "enum":
        return "one of " + ", ".join(str(v) for v in want)
    if keyword == "const":
        return f"the constant {_shown(want)}"
    if keyword == "required":
        missing = [name for name in want if isinstance(error.instance, Mapping)
                   and name not in error.instance]
        return "the field(s) " + ", ".join(missing or want)
    if keyword in ("minimum", "maximum", "minLength", "minItems", "maxItems"):
        return f"{keyword} {want}"
    return f"{keyword} {_shown(want)}"


def _got(error: jsonschema.ValidationError) -> str:
    if error.validator == "required":
        return "an object without them"
    return f"{_type_name(error.instance)} {_shown(error.instance)}"


def check_response(op: str, status: int, body: Any, *, is_json: bool = True,
                   node: str | None = None) -> list[Deviation]:
    """How one response (``status``, ``body``) to the call ``op`` breaks the contract."""
    endpoint = endpoint_of(op)
    documented = _statuses(endpoint.method, endpoint.path)
    name = endpoint.name
    if 200 <= status < 300 and str(status) not in documented:
        wanted = [s for s in documented if s.startswith("2")]
        return [Deviation(name, f"status {' or '.join(wanted)}", f"status {status}",
                          node=node)]
    key = str(status) if str(status) in documented else "default"
    if key not in documented:
        return [Deviation(name, f"a status in {', '.join(documented)}", f"status {status}",
                          node=node)]
    validator = _validator(endpoint.method, endpoint.path, key)
    if validator is None:
        return []
    if not is_json:
        return [Deviation(name, "a JSON body", f"status {status} with a body that is not JSON",
                          node=node)]
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    deviations = []
    for error in errors[:_MAX_ERRORS]:
        best = error
        if best.context:
            # One branch of a oneOf (an event's kind) failed on its own ``kind``: the
            # branch the body meant is the one whose failure lies elsewhere.
            wrong_kind = {e.relative_schema_path[0] for e in best.context
                          if e.validator == "const"}
            meant = [e for e in best.context
                     if e.relative_schema_path[0] not in wrong_kind] or best.context
            best = jsonschema.exceptions.best_match(meant)
        deviations.append(Deviation(name, _expected(best), _got(best),
                                    _json_path(best.absolute_path), node))
    return deviations


def check_reply(op: str, status: int, body: Any, is_json: bool = True,
                node: str | None = None) -> list[Deviation]:
    """:func:`check_response` for a reply the client received (status 0, no response,
    is never a contract matter: the transport failed)."""
    if status == 0:
        return []
    return check_response(op, status, body, is_json=is_json, node=node)


def request_of(op: str, args: dict[str, Any]) -> tuple[str, str, Any]:
    """The HTTP request of ``op``: the history's calls, and the keyring read."""
    if op == "keyring":
        return ("GET", "/v1/keyring", None)
    from gossipcert.harness.drivers.interface import request_for

    return request_for(op, args)


def undeclared_probes(capabilities: Any) -> list[tuple[str, dict[str, Any]]]:
    """The calls that probe each capability ``capabilities`` leave out (each once)."""
    probes: dict[str, dict[str, Any]] = {}
    for capability, (op, args) in UNDECLARED_PROBES.items():
        if capability not in set(capabilities) and expected_501(op, capabilities):
            probes.setdefault(op, args)
    return list(probes.items())


def check_undeclared(op: str, status: int, body: Any, is_json: bool = True,
                     node: str | None = None) -> list[Deviation]:
    """How the answer to a probe of an undeclared capability breaks the contract: any
    status but 501, or a 501 without an error body."""
    if status == 0:
        return []
    endpoint = endpoint_of(op)
    found = check_response(op, status, body, is_json=is_json, node=node)
    if status != 501:
        found.insert(0, Deviation(
            endpoint.name, f"status 501 (capability {endpoint.capability!r} is not declared)",
            f"status {status}", node=node))
    return found


def expected_501(op: str, capabilities: Any) -> bool:
    """Whether the contract wants a 501 for ``op`` from an IUT that declares
    ``capabilities`` (a capability it does not declare answers 501)."""
    if endpoint_of(op).capability is None:
        return False
    declared = set(capabilities)
    return not any(op in ops for cap, ops in CAPABILITY_OPS.items() if cap in declared)
