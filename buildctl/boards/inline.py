"""The small part of BitBake's inline Python (`${@...}`) that machine configurations use.

Machine files choose values with `bb.utils.contains(...)`, `bb.utils.filter(...)`,
`d.getVar(...)` and conditional expressions. Those are evaluated here over the probe's
datastore by walking the expression's syntax tree: only the calls listed in FUNCTIONS and
plain literals are run, anything else leaves the text as written (and the probe reports the
value as not computable), so no code from a BSP is ever executed.
"""
from __future__ import annotations

import ast
from typing import Callable

from buildctl.layers.bbconf import Datastore


class NotEvaluable(Exception):
    """An inline expression outside the supported subset."""


def _words(d: Datastore, var: str) -> set[str]:
    return set((_getvar(d, var) or "").split())


def _contains(d: Datastore, var: str, checkvalues, truevalue, falsevalue, _d=None):
    val = _words(d, var)
    want = set(checkvalues.split()) if isinstance(checkvalues, str) else set(checkvalues)
    return truevalue if want <= val else falsevalue


def _contains_any(d: Datastore, var: str, checkvalues, truevalue, falsevalue, _d=None):
    val = _words(d, var)
    want = set(checkvalues.split()) if isinstance(checkvalues, str) else set(checkvalues)
    return truevalue if want & val else falsevalue


def _filter(d: Datastore, var: str, words: str, _d=None):
    val = _words(d, var)
    return " ".join(w for w in words.split() if w in val)


def _conditional(d: Datastore, var: str, checkvalue, truevalue, falsevalue, _d=None):
    return truevalue if (_getvar(d, var) or "") == checkvalue else falsevalue


def _getvar(d: Datastore, var: str, expand=True):
    if not expand:
        return d.get(var, expand_value=False)
    value = d.get(var)
    return expand_inline(value, d) if value is not None else None


# dotted name -> implementation taking the datastore first
FUNCTIONS: dict[str, Callable] = {
    "bb.utils.contains": _contains,
    "bb.utils.contains_any": _contains_any,
    "bb.utils.filter": _filter,
    "oe.utils.conditional": _conditional,
    "d.getVar": _getvar,
}


# string methods inline expressions apply to values (`d.getVar('X').replace('_', '-')`)
STR_METHODS = ("replace", "strip", "lower", "upper")


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    raise NotEvaluable(type(node).__name__)


def _eval(node: ast.AST, d: Datastore):
    if isinstance(node, ast.Expression):
        return _eval(node.body, d)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id == "d":
        return d
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e, d) for e in node.elts]
    if isinstance(node, ast.IfExp):
        return _eval(node.body, d) if _eval(node.test, d) else _eval(node.orelse, d)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _eval(node.left, d), _eval(node.right, d)
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        raise NotEvaluable("+ on non-strings")
    if isinstance(node, ast.BoolOp):
        vals = [_eval(v, d) for v in node.values]
        if isinstance(node.op, ast.And):
            out = True
            for v in vals:
                out = v
                if not v:
                    break
            return out
        out = False
        for v in vals:
            out = v
            if v:
                break
        return out
    if isinstance(node, ast.Subscript):
        seq, idx = _eval(node.value, d), _eval(node.slice, d)
        if isinstance(seq, (list, str)) and isinstance(idx, (int, bool)):
            return seq[int(idx)]
        raise NotEvaluable("subscript")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _eval(node.operand, d)
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right = _eval(node.left, d), _eval(node.comparators[0], d)
        op = node.ops[0]
        if isinstance(op, ast.Eq):
            return left == right
        if isinstance(op, ast.NotEq):
            return left != right
        if isinstance(op, ast.In):
            return left in right
        if isinstance(op, ast.NotIn):
            return left not in right
        raise NotEvaluable(type(op).__name__)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in STR_METHODS and not isinstance(node.func.value, ast.Name)):
        obj = _eval(node.func.value, d)
        if not isinstance(obj, str):
            raise NotEvaluable(f".{node.func.attr} on {type(obj).__name__}")
        args = [_eval(a, d) for a in node.args]
        if not all(isinstance(a, str) for a in args):
            raise NotEvaluable(f".{node.func.attr} arguments")
        return getattr(obj, node.func.attr)(*args)
    if isinstance(node, ast.Call):
        fn = FUNCTIONS.get(_dotted(node.func))
        if fn is None:
            raise NotEvaluable(_dotted(node.func))
        args = [_eval(a, d) for a in node.args]
        kwargs = {k.arg: _eval(k.value, d) for k in node.keywords if k.arg}
        if args and args[-1] is d and fn is not _getvar:
            args = args[:-1]
        return fn(d, *args, **kwargs)
    if isinstance(node, ast.Call) or isinstance(node, ast.Attribute):
        raise NotEvaluable(ast.dump(node)[:40])
    raise NotEvaluable(type(node).__name__)


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
    """Replace each `${@expr}` in text by its value; raises NotEvaluable if one cannot be computed."""
    if "${@" not in text:
        return text
    parts, pos = [], 0
    for start, end in _spans(text):
        expr = text[start + 3 : end - 1]
        inner = expand_inline(d.expand(expr), d) if "${" in expr else expr
        try:
            tree = ast.parse(inner.strip(), mode="eval")
        except SyntaxError as e:
            raise NotEvaluable(f"syntax: {e.msg}") from None
        val = _eval(tree, d)
        parts.append(text[pos:start])
        parts.append("" if val is None else str(val))
        pos = end
    parts.append(text[pos:])
    return "".join(parts)
