"""The manifest JSON Schema (shipped as data) and its translation into one-line errors."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from buildctl.errors import ManifestError
from buildctl.manifest.yamlsrc import SourceMap, dotted


@lru_cache(maxsize=None)
def schema_document() -> dict:
    text = resources.files("buildctl.manifest").joinpath("schema/manifests.schema.json").read_text()
    return json.loads(text)


@lru_cache(maxsize=None)
def _validator(kind: str) -> jsonschema.protocols.Validator:
    doc = dict(schema_document())
    doc["$ref"] = f"#/$defs/{kind}"
    cls = jsonschema.validators.validator_for(doc)
    return cls(doc)


def _message(err: jsonschema.ValidationError) -> tuple[tuple, str]:
    """A short message for a schema error, and the key path it is about."""
    path = tuple(err.absolute_path)
    v = err.validator
    if "propertyNames" in err.absolute_schema_path and isinstance(err.instance, str):
        return path + (err.instance,), f"invalid name {err.instance!r}"
    if v == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        if extra:
            allowed = ", ".join(sorted(err.schema.get("properties", {})))
            return path + (extra[0],), f"unknown field (allowed here: {allowed})"
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return path + (missing,), "required field is missing"
    if v == "propertyNames":
        bad = [k for k in err.instance if k not in err.schema.get("properties", {})]
        for ctx in err.context:
            if isinstance(ctx.instance, str):
                return path + (ctx.instance,), f"invalid name {ctx.instance!r}"
        return path, f"invalid name {bad[0]!r}" if bad else "invalid name"
    if v == "type":
        want = err.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return path, f"must be {_article(want)} {want}, not {_typename(err.instance)}"
    if v == "enum":
        return path, f"{err.instance!r} is not one of: {', '.join(map(str, err.validator_value))}"
    if v == "pattern":
        hint = _PATTERN_HINTS.get(err.validator_value, f"must match {err.validator_value}")
        if err.validator_value == _SECRET_PATTERN:  # what was written may be the secret itself
            return path, f"the value {hint}"
        return path, f"{err.instance!r} {hint}"
    if v in ("minItems", "minProperties"):
        return path, "must not be empty"
    if v == "uniqueItems":
        return path, "has duplicate entries"
    if v in ("minimum", "exclusiveMinimum"):
        return path, f"must be at least {err.validator_value}"
    if v == "minLength":
        return path, "must not be empty"
    if v == "oneOf" and err.schema.get("oneOf") and isinstance(err.instance, dict):
        if "url" in err.instance and "path" in err.instance:
            return path, "give either url (with refs) or path, not both"
        if "url" in err.instance and "refs" not in err.instance:
            return path + ("refs",), "a remote repo needs refs (series: {branch, commit})"
        if "url" not in err.instance and "path" not in err.instance:
            return path, "a repo needs url (with refs) or path"
    if v == "anyOf" and isinstance(err.instance, dict) and not err.instance:
        return path, "a ref needs branch, tag or commit"
    if v == "anyOf" and isinstance(err.instance, dict):
        return path, "a ref needs branch, tag or commit"
    return path, err.message


_SECRET_PATTERN = "^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$"
_PATTERN_HINTS = {
    "^[0-9a-f]{40}$": "is not a full 40-character lowercase commit id",
    "^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$":
        "is not a secret reference: write env:NAME or file:PATH, never the secret itself",
    "^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|pkcs11:.+)$":
        "is not a secret reference: write env:NAME, file:PATH or a pkcs11: URI, never the key itself",
    "^https?://": "is not an http(s) URL",
    "^[a-z][a-z0-9]*$": "is not a release series name (e.g. scarthgap)",
    "^(/dev/[A-Za-z0-9/_.-]+|ubi[0-9]+)$": "is not a device path under /dev (or a UBI device: ubi0)",
    "^(\\.|[A-Za-z0-9_+-][A-Za-z0-9_.+-]*(/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)*)$":
        "is not a layer directory inside the repository (e.g. meta-foo, sub/meta-bar or .)",
}


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _typename(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "empty"}.get(type(value), type(value).__name__)


def validate(data: Any, kind: str, smap: SourceMap) -> None:
    """Raise ManifestError (file:line: field: message) for the first schema problem."""
    errors = list(_validator(kind).iter_errors(data))
    if not errors:
        return
    # report the deepest, then earliest-in-file problem: the most specific one
    best = jsonschema.exceptions.best_match(errors)
    # best_match prefers shallow errors; for oneOf/anyOf descend into the most relevant branch
    while best.context and best.validator not in ("propertyNames",) and not (
            best.validator == "anyOf" and all(set(b) == {"required"} for b in best.validator_value)):
        inner = jsonschema.exceptions.best_match(best.context)
        if best.validator == "oneOf" and isinstance(best.instance, dict) and (
                ("url" in best.instance) == ("path" in best.instance)
                or ("url" in best.instance and "refs" not in best.instance)):
            break
        best = inner
    keypath, message = _message(best)
    raise ManifestError(smap.path, message, line=smap.line(keypath), field=dotted(keypath) or None)
