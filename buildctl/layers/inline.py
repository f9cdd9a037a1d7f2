"""The part of BitBake's inline Python (`${@...}`) that layer and machine configurations use,
evaluated over our datastore without running any code.

Layers choose values with `bb.utils.contains(...)`, `bb.utils.filter(...)`, `d.getVar(...)`,
`oe.utils.conditional(...)`, meta-mender's `mender_features(d)`, conditional expressions, a few
builtins and string methods. The expression's syntax tree is walked: only the calls in
FUNCTIONS, BUILTINS and STR_METHODS and plain literals are evaluated; anything else is
NotEvaluable, so no code from a layer is ever executed. Results follow BitBake's: the helpers
behave as bb.utils' (set semantics, `filter` sorted) and the value of `${@...}` is `str()` of
the expression's value (None gives "None", as in BitBake).

Two entry points, one evaluator:
- `inline_value(code, d)`: the Datastore's inline callback (`Datastore(inline=inline_value)`):
  the value, or None to keep `${@code}` verbatim (pre-flight's board configuration);
- `expand_inline(text, d)`: every `${@...}` of a value replaced, NotEvaluable when one cannot be
  computed (new-board's probe says the value is not computable).
"""
from __future__ import annotations

import ast
import threading
from typing import Callable

from buildctl.layers.bbconf import Datastore


class NotEvaluable(Exception):
    """An inline expression outside the supported subset."""


# how deep each variable's value is being computed (per thread). Computing a value may need it
# again legitimately (the datastore resolves OVERRIDES, whose inline Python reads variables,
# while it reads those variables), so a few levels are allowed; a variable whose inline Python
# really reads itself is NotEvaluable then (BitBake stops on it too), not a recursion to the
# stack limit.
_reading = threading.local()
MAX_REENTRY = 4


def _getvar(d: Datastore, var: str, expand=True, *_):
    """d.getVar: the expanded value, its inline parts evaluated (NotEvaluable if one cannot)."""
    if not expand:
        return d.get(var, expand_value=False)
    depth = _reading.__dict__.setdefault("depth", {})
    key = (id(d), var)
    if depth.get(key, 0) >= MAX_REENTRY:
        raise NotEvaluable(f"{var} refers to itself")
    depth[key] = depth.get(key, 0) + 1
    try:
        value = d.get(var)
        return expand_inline(value, d) if value is not None and "${@" in value else value
    finally:
        depth[key] -= 1
        if not depth[key]:
            del depth[key]


def _set(values) -> set[str]:
    return set(values.split() if isinstance(values, str) else values)


def _contains(d: Datastore, var: str, checkvalues, truevalue, falsevalue, *_):
    val = _getvar(d, var)
    return truevalue if val and _set(checkvalues) <= set(val.split()) else falsevalue


def _contains_any(d: Datastore, var: str, checkvalues, truevalue, falsevalue, *_):
    val = _getvar(d, var)
    return truevalue if val and _set(checkvalues) & set(val.split()) else falsevalue


def _filter(d: Datastore, var: str, checkvalues, *_):
    val = _getvar(d, var)
    return " ".join(sorted(_set(checkvalues) & set(val.split()))) if val else ""


def _conditional(d: Datastore, var: str, checkvalue, truevalue, falsevalue, *_):
    return truevalue if _getvar(d, var) == checkvalue else falsevalue


def mender_features(d: Datastore, *_, separator=" "):
    """meta-mender's mender_features(): MENDER_FEATURES_ENABLE minus MENDER_FEATURES_DISABLE."""
    disabled = set((_getvar(d, "MENDER_FEATURES_DISABLE") or "").split())
    return separator.join(f for f in (_getvar(d, "MENDER_FEATURES_ENABLE") or "").split()
                          if f not in disabled)


# BitBake's, OE's and meta-mender's helpers whose meaning is plain data:
# dotted name -> function(d, *arguments without the datastore).
FUNCTIONS: dict[str, Callable] = {
    "bb.utils.contains": _contains,
    "bb.utils.contains_any": _contains_any,
    "bb.utils.filter": _filter,
    "oe.utils.conditional": _conditional,
    "mender_features": mender_features,
    "d.getVar": _getvar,
}
BUILTINS: dict[str, Callable] = {"max": max, "min": min, "int": int, "str": str, "len": len}
# string methods applied to values (`d.getVar('X').replace('_', '-')`)
STR_METHODS = frozenset({"replace", "strip", "lower", "upper", "split", "startswith", "endswith",
                         "join"})
_COMPARE = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
            ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    raise NotEvaluable(type(node).__name__)


def _is_d(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "d"


def _eval(node: ast.AST, d: Datastore):
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool,
                                                                  type(None))):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e, d) for e in node.elts]
    if isinstance(node, ast.IfExp):
        return _eval(node.body, d) if _eval(node.test, d) else _eval(node.orelse, d)
    if isinstance(node, ast.BoolOp):
        value = None
        for v in node.values:
            value = _eval(v, d)
            if isinstance(node.op, ast.Or) == bool(value):
                return value
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _eval(node.operand, d)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _eval(node.left, d), _eval(node.right, d)
        if type(left) is type(right) and isinstance(left, (str, int, list)):
            return left + right
        raise NotEvaluable("+ on mixed types")
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        seq = _eval(node.value, d)
        bounds = [None if b is None else _eval(b, d)
                  for b in (node.slice.lower, node.slice.upper, node.slice.step)]
        if isinstance(seq, (list, str)) and all(b is None or type(b) is int for b in bounds) \
                and bounds[2] != 0:
            return seq[slice(*bounds)]
        raise NotEvaluable("slice")
    if isinstance(node, ast.Subscript):
        seq, idx = _eval(node.value, d), _eval(node.slice, d)
        if isinstance(seq, (list, str)) and isinstance(idx, (int, bool)):
            try:
                return seq[int(idx)]
            except IndexError:
                raise NotEvaluable("index out of range") from None
        raise NotEvaluable("subscript")
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        left, right = _eval(node.left, d), _eval(node.comparators[0], d)
        try:
            return _COMPARE[type(node.ops[0])](left, right)
        except TypeError:
            raise NotEvaluable("comparison") from None
    if isinstance(node, ast.Call):
        args = [_eval(a, d) for a in node.args if not _is_d(a)]
        kwargs = {k.arg: _eval(k.value, d) for k in node.keywords if k.arg}
        if isinstance(node.func, ast.Attribute) and node.func.attr in STR_METHODS \
                and not _is_d(node.func.value):
            try:
                name = _dotted(node.func)
            except NotEvaluable:
                name = ""
            if name not in FUNCTIONS:
                target = _eval(node.func.value, d)
                if not isinstance(target, str):
                    raise NotEvaluable(f".{node.func.attr} on {type(target).__name__}")
                try:
                    return getattr(target, node.func.attr)(*args, **kwargs)
                except (TypeError, ValueError):
                    raise NotEvaluable(f".{node.func.attr} arguments") from None
        name = _dotted(node.func)
        try:
            if name in FUNCTIONS:
                return FUNCTIONS[name](d, *args, **kwargs)
            if name in BUILTINS:
                return BUILTINS[name](*args, **kwargs)
        except (TypeError, ValueError, AttributeError):
            raise NotEvaluable(f"{name}: arguments") from None
        raise NotEvaluable(name)
    raise NotEvaluable(type(node).__name__)


def evaluate(code: str, d: Datastore) -> str:
    """The value of `${@code}` as BitBake gives it (str() of the expression's value)."""
    if "${" in code:  # BitBake does not run code with unexpanded references either
        raise NotEvaluable("unexpanded reference")
    try:
        tree = ast.parse(code.strip(), mode="eval")
    except SyntaxError as e:
        raise NotEvaluable(f"syntax: {e.msg}") from None
    try:
        return str(_eval(tree.body, d))
    except RecursionError:
        raise NotEvaluable("too deep") from None


def inline_value(code: str, d: Datastore) -> str | None:
    """Datastore callback: the value of `${@code}`, or None to keep it verbatim."""
    try:
        return evaluate(code, d)
    except NotEvaluable:
        return None


def _spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level `${@...}` in text, braces balanced."""
    out = []
    i = text.find("${@")
    while i >= 0:
        depth, j = 0, i + 1
        while j < len(text):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if j >= len(text):
            break
        out.append((i, j + 1))
        i = text.find("${@", j + 1)
    return out


def expand_inline(text: str, d: Datastore) -> str:
    """Replace each `${@expr}` in text by its value; NotEvaluable if one cannot be computed."""
    if "${@" not in text:
        return text
    parts, pos = [], 0
    for start, end in _spans(text):
        expr = text[start + 3 : end - 1]
        if "${" in expr:
            expr = expand_inline(d.expand(expr), d)
        parts.append(text[pos:start])
        parts.append(evaluate(expr, d))
        pos = end
    parts.append(text[pos:])
    return "".join(parts)
