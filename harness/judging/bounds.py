"""Bounds as data: a tiny, safe arithmetic evaluator and the parameters bounds are written in.

A requirement's bound is an expression in ``specs/requirements.yaml`` such as
``(2*n - 1) * probe_interval_ms + suspicion_max_ms + slack_ms``. The catalogue is data
anyone may edit, so it is parsed with :mod:`ast` and only plain arithmetic is allowed:
no attribute access, no subscripts, no calls except a fixed set of math functions.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import yaml
from gossipcert.harness.profiles import default_timing
from gossipcert.specs import spec_path

__all__ = [
    "ALLOWED_FUNCTIONS",
    "BoundError",
    "catalogue_constants",
    "compile_bound",
    "derived_parameters",
    "evaluate",
]


class BoundError(ValueError):
    """A bound expression is malformed, unsafe, or names something unknown."""


def _log(x: float, base: float | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


ALLOWED_FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min,
    "max": max,
    "log": _log,
    "log10": math.log10,
    "log2": math.log2,
    "ceil": math.ceil,
    "floor": math.floor,
    "sqrt": math.sqrt,
}

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Pow: lambda a, b: a**b,
}

# Guard against expressions like 10 ** 10 ** 10 that would hang the checker.
_MAX_EXPONENT = 64


def compile_bound(expression: str) -> ast.Expression:
    """Parse and vet an expression once, so a bad catalogue fails at load, not mid-report."""
    if not isinstance(expression, str):
        raise BoundError(f"bound must be a string expression, got {type(expression).__name__}")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise BoundError(f"bound {expression!r} is not a valid expression: {exc.msg}") from None
    for node in ast.walk(tree):
        _vet(node, expression)
    return tree


def _vet(node: ast.AST, expression: str) -> None:
    allowed = (
        ast.Expression,
        ast.Constant,
        ast.Name,
        ast.Load,
        ast.BinOp,
        ast.UnaryOp,
        ast.USub,
        ast.UAdd,
        ast.Call,
        *_BINARY,
    )
    if not isinstance(node, allowed):
        raise BoundError(
            f"bound {expression!r} uses {type(node).__name__}, which is not allowed "
            "(only numbers, names, + - * / // **, parentheses and "
            f"{', '.join(sorted(ALLOWED_FUNCTIONS))} calls)"
        )
    if isinstance(node, ast.Constant) and (
        isinstance(node.value, bool) or not isinstance(node.value, int | float)
    ):
        raise BoundError(f"bound {expression!r} contains a non-numeric literal {node.value!r}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in ALLOWED_FUNCTIONS:
            shown = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise BoundError(
                f"bound {expression!r} calls {shown!r}; only "
                f"{', '.join(sorted(ALLOWED_FUNCTIONS))} may be called"
            )
        if node.keywords:
            raise BoundError(f"bound {expression!r} uses keyword arguments, which are not allowed")
    if isinstance(node, ast.Name) and node.id.startswith("_"):
        raise BoundError(f"bound {expression!r} names {node.id!r}; names may not start with '_'")


def evaluate(expression: str | ast.Expression, names: Mapping[str, float]) -> float:
    """Evaluate a bound expression with ``names`` as its only variables."""
    tree = compile_bound(expression) if isinstance(expression, str) else expression
    source = expression if isinstance(expression, str) else ast.unparse(expression)
    try:
        value = _eval(tree.body, names, source)
    except BoundError:
        raise
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise BoundError(f"bound {source!r} cannot be evaluated: {exc}") from None
    if isinstance(value, complex) or not math.isfinite(value):
        raise BoundError(f"bound {source!r} evaluates to {value!r}, not a finite number")
    return float(value)


def _eval(node: ast.AST, names: Mapping[str, float], source: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            known = ", ".join(sorted(names))
            raise BoundError(
                f"bound {source!r} names unknown parameter {node.id!r} (known: {known})"
            )
        return names[node.id]
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, names, source)
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        left = _eval(node.left, names, source)
        right = _eval(node.right, names, source)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise BoundError(f"bound {source!r} raises to a power above {_MAX_EXPONENT}")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        args = [_eval(arg, names, source) for arg in node.args]
        return ALLOWED_FUNCTIONS[node.func.id](*args)
    raise BoundError(f"bound {source!r} uses {type(node).__name__}, which is not allowed")


@lru_cache(maxsize=1)
def _shipped_constants() -> tuple[tuple[str, float], ...]:
    with spec_path("requirements.yaml").open(encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    raw = data.get("constants") or {}
    return tuple((str(k), float(v)) for k, v in raw.items())


def catalogue_constants() -> dict[str, float]:
    """The constants declared at the top of the shipped catalogue (e.g. ``slack_ms``)."""
    return dict(_shipped_constants())


def derived_parameters(
    timing: Mapping[str, Any], n: int, constants: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Every name a bound may use, from a manifest's timing parameters and the cluster size.

    ``constants`` (default: the shipped catalogue's, such as ``slack_ms``) are included so
    the result alone evaluates any catalogue bound.

    A parameter ``timing`` leaves out takes the default profile's value
    (:func:`harness.profiles.default_timing`), memberlist's LAN configuration.

    The formulas are memberlist's (docs/protocol-notes.md): suspicion timeouts scale with log10(n),
    piggybacked updates are retransmitted ``retransmit_mult * ceil(log10(n + 1))`` times.
    ``dissemination_ms`` is the time a rumor needs to reach everyone, plus one
    anti-entropy round to repair the residue rumor mongering always leaves.
    """
    params: dict[str, float] = {
        **(catalogue_constants() if constants is None else dict(constants)),
        **default_timing(),
    }
    for name, value in timing.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        params[name] = float(value)
    size = max(1, int(n))
    params["n"] = float(size)
    # memberlist suspicionTimeout: SuspicionMult * max(1, log10(max(1, n))) * ProbeInterval.
    suspicion_min = (
        params["suspicion_mult"] * max(1.0, math.log10(max(1, size))) * params["probe_interval_ms"]
    )
    params["suspicion_min_ms"] = suspicion_min
    # Lifeguard starts the suspicion timer at the maximum and shrinks it with confirmations.
    params["suspicion_max_ms"] = params["suspicion_max_timeout_mult"] * suspicion_min
    # memberlist retransmitLimit: RetransmitMult * ceil(log10(n + 1)).
    retransmit_limit = params["retransmit_mult"] * math.ceil(math.log10(size + 1))
    params["retransmit_limit"] = float(retransmit_limit)
    # Push gossip with fanout f grows the informed set at most (1 + f) times a round, so a
    # rumor needs at least ceil(log_(1+f) n) rounds; it then lives for retransmit_limit
    # more rounds, and the residue it never reaches is repaired by one push-pull exchange.
    # (the epsilon keeps float error in an exact power, e.g. log(16)/log(4), from adding one)
    rounds = math.ceil(math.log(size) / math.log(1 + params["fanout"]) - 1e-9) if size > 1 else 0
    params["gossip_rounds"] = float(rounds)
    params["dissemination_ms"] = (rounds + retransmit_limit) * params[
        "gossip_interval_ms"
    ] + params["push_pull_interval_ms"]
    # After a partition heals, the two sides first have to see each other again (up to
    # 2n - 1 probe rounds, as PARTITION-HEAL derives), and what rumor mongering retired
    # while they were apart then crosses only by anti-entropy: random push-pull reaches
    # every member within ceil(log2 n) exchanges (Demers et al.). KV-AFTER-PARTITION's
    # bound is this plus a dissemination; BCAST-DELIVERY defers a cut-off member by it.
    params["heal_repair_ms"] = (2 * size - 1) * params["probe_interval_ms"] + math.ceil(
        math.log2(size)
    ) * params["push_pull_interval_ms"]
    return params
