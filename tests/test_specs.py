"""The shipped specs: the control API covers the contract, the catalogue is complete."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from gossipcert.harness.judging.bounds import derived_parameters, evaluate
from gossipcert.harness.judging.verdict import CatalogueError, load_catalogue
from gossipcert.harness.workloads.capabilities import CHECKERS, resolve_checker
from gossipcert.specs import spec_path

REPO = Path(__file__).resolve().parents[1]
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

# The control API v1 without its extensions (docs/contract.md): path -> methods.
DESIGN_PATHS = {
    "/v1/node": {"get"},
    "/v1/members": {"get"},
    "/v1/join": {"post"},
    "/v1/leave": {"post"},
    "/v1/broadcast": {"post"},
    "/v1/broadcasts": {"get"},
    "/v1/kv/{key}": {"put", "get", "delete"},
    "/v1/kv": {"get"},
    "/v1/crdt/{name}": {"post", "get"},
    "/v1/events": {"get"},
    "/v1/metrics": {"get"},
}
REQUIRED_IDS = {
    "MEM-JOIN",
    "FD-DETECT",
    "FD-NO-FALSE-POSITIVE",
    "BCAST-DELIVERY",
    "KV-CONVERGENCE",
    "KV-LWW",
    "PARTITION-HEAL",
    # issue 5's full catalogue
    "MEM-LEAVE",
    "MEM-REJOIN",
    "FD-DEAD-STAYS-DEAD",
    "FD-NO-FP-LATENCY",
    "FD-NO-FP-LOSS",
    "FD-NO-FP-PAUSE",
    "BCAST-LATENCY",
    "BCAST-MSGS-PER-OP",
    "KV-AFTER-PARTITION",
    "KV-AFTER-RESTART",
    "KV-MV",
    "CRDT-G-COUNTER",
    "CRDT-PN-COUNTER",
    "CRDT-OR-SET",
    "CRDT-LWW-REGISTER",
    "KV-NO-LOST-WRITE",
    "KV-DELETE-STAYS",
    "SEC-WRONG-KEY",
}
# Scenario names the catalogue may use: the shipped scenario files (chaos/scenarios/).
SCENARIOS = {
    "default", "partitions", "flapping", "latency-storm", "crash-restart", "paused-node",
    "lossy", "security", "crdt", "mv", "churn", "broadcast-partitions",
}


@pytest.fixture(scope="module")
def api() -> dict[str, Any]:
    with spec_path("control-api.yaml").open(encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_control_api_is_an_openapi_31_document(api: dict[str, Any]) -> None:
    assert str(api["openapi"]).startswith("3.1")
    assert {"title", "version"} <= set(api["info"])
    assert isinstance(api["paths"], dict)
    for schema in api["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_control_api_has_every_design_path(api: dict[str, Any]) -> None:
    for path, methods in DESIGN_PATHS.items():
        assert path in api["paths"], path
        assert methods <= set(api["paths"][path]), (path, methods)


def test_every_operation_is_well_formed(api: dict[str, Any]) -> None:
    operation_ids: list[str] = []
    for path, item in api["paths"].items():
        params_in_path = set(re.findall(r"{([^}]+)}", path))
        declared = {p["name"] for p in item.get("parameters", []) if p.get("in") == "path"}
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            operation_ids.append(operation["operationId"])
            responses = operation["responses"]
            assert responses, (path, method)
            assert "default" in responses, (path, method)
            for code in responses:
                assert code == "default" or re.fullmatch(r"[1-5][0-9X]{2}", str(code)), code
            if path != "/v1/node":
                assert "501" in responses, (path, method)
            op_params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert params_in_path == declared | op_params, (path, method)
    assert len(operation_ids) == len(set(operation_ids))


def test_every_ref_resolves(api: dict[str, Any]) -> None:
    refs = _refs(api)
    assert refs
    for ref in refs:
        _resolve(api, ref)


def test_errors_are_error_and_message(api: dict[str, Any]) -> None:
    error = api["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "message"}
    not_implemented = api["components"]["responses"]["NotImplemented"]
    schema = not_implemented["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Error"}


def test_put_may_report_an_hlc_timestamp(api: dict[str, Any]) -> None:
    body = api["paths"]["/v1/kv/{key}"]["put"]["responses"]["200"]["content"]
    props = body["application/json"]["schema"]["properties"]
    stamp = _resolve(api, props["timestamp"]["$ref"])
    validator = jsonschema.Draft202012Validator(stamp)
    assert validator.is_valid([1700000000000, 3])
    assert not validator.is_valid([1700000000000])
    assert not validator.is_valid("late")


def test_event_shapes_validate(api: dict[str, Any]) -> None:
    schemas = api["components"]["schemas"]
    registry_schema = {"$defs": schemas, **schemas["Event"]}
    text = yaml.safe_dump(registry_schema).replace("#/components/schemas/", "#/$defs/")
    validator = jsonschema.Draft202012Validator(yaml.safe_load(text))
    member = {
        "seq": 1,
        "at_ms": 1.5,
        "kind": "member",
        "member": "n2",
        "status": "dead",
        "incarnation": 0,
    }
    assert validator.is_valid(member)
    assert validator.is_valid({"seq": 2, "at_ms": 2, "kind": "broadcast", "id": "b1"})
    assert not validator.is_valid({**member, "status": "gone"})


# ---------------------------------------------------------------- requirements.yaml

FIELDS = (
    "id",
    "level",
    "title",
    "capability",
    "measures",
    "unit",
    "bound",
    "derivation",
    "checker",
)


def test_catalogue_has_every_field_and_required_id() -> None:
    raw = yaml.safe_load(spec_path("requirements.yaml").read_text(encoding="utf-8"))
    assert raw["constants"]["slack_ms"] > 0
    for entry in raw["requirements"]:
        for name in FIELDS:
            assert entry.get(name) not in (None, ""), (entry.get("id"), name)
        assert entry["level"] in ("MUST", "SHOULD")
        assert entry["capability"] in (
            "membership", "failure-detection", "broadcast", "kv", "crdt", "encryption", "leave"
        )
        assert "scenario" not in entry, entry["id"]  # one field: scenarios, its own first
        assert entry["scenarios"] and set(entry["scenarios"]) <= set(SCENARIOS), entry["id"]
    catalogue = load_catalogue()
    assert {r.id for r in catalogue} >= REQUIRED_IDS


def test_every_bound_evaluates_for_the_reference_timing() -> None:
    manifest = yaml.safe_load((REPO / "reference_node" / "manifest.yaml").read_text())
    for n in (1, 3, 5, 50):
        params = derived_parameters(manifest["timing"], n)
        for requirement in load_catalogue():
            value = evaluate(requirement.bound, {**params, **requirement.constants})
            if requirement.unit == "ms":
                assert value > params["slack_ms"], (requirement.id, n, value)
            elif requirement.unit == "messages":
                assert value >= params["fanout"], (requirement.id, value)
            else:
                assert value == 0, (requirement.id, value)


def test_bounds_are_honest_for_five_reference_nodes() -> None:
    """Detection must allow a full Lifeguard suspicion, yet stay far below 'never'."""
    manifest = yaml.safe_load((REPO / "reference_node" / "manifest.yaml").read_text())
    params = derived_parameters(manifest["timing"], 5)
    bounds = {r.id: evaluate(r.bound, {**params, **r.constants}) for r in load_catalogue()}
    assert bounds["FD-DETECT"] > params["suspicion_max_ms"] + params["probe_interval_ms"]
    assert bounds["FD-DETECT"] < 60_000
    assert bounds["BCAST-DELIVERY"] >= params["dissemination_ms"]
    assert bounds["KV-CONVERGENCE"] >= params["push_pull_interval_ms"]


def test_every_requirement_has_a_distinct_checker_and_every_checker_is_used() -> None:
    catalogue = load_catalogue()
    names = [r.checker for r in catalogue]
    assert len(names) == len(set(names))
    assert set(names) == set(CHECKERS)


def test_every_checker_name_resolves() -> None:
    for requirement in load_catalogue():
        assert resolve_checker(requirement.checker) is CHECKERS[requirement.checker]
    with pytest.raises(KeyError):
        resolve_checker("check_nothing")


def test_malformed_catalogues_are_refused(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    missing.write_text("requirements:\n  - {id: X, level: MUST, title: t}\n")
    with pytest.raises(CatalogueError, match="lacks"):
        load_catalogue(missing)
    level = tmp_path / "level.yaml"
    entry = {name: "x" for name in FIELDS} | {"level": "MAY"}
    level.write_text(yaml.safe_dump({"requirements": [entry]}))
    with pytest.raises(CatalogueError, match="level"):
        load_catalogue(level)
    dup = tmp_path / "dup.yaml"
    good = {name: "x" for name in FIELDS} | {"level": "MUST", "id": "A"}
    dup.write_text(yaml.safe_dump({"requirements": [good, good]}))
    with pytest.raises(CatalogueError, match="duplicate"):
        load_catalogue(dup)
