"""YAML loading that remembers where every value came from.

``load(path)`` returns plain data plus a ``SourceMap`` from key paths (tuples of keys and
indices) to 1-based line numbers, so that schema and semantic errors can say ``file:line``.
Duplicate mapping keys are an error (plain YAML silently keeps the last one).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from buildctl.errors import ManifestError

KeyPath = tuple


@dataclass
class SourceMap:
    path: Path
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, keypath: KeyPath) -> int | None:
        """Line of the value at keypath, or of its nearest known parent."""
        keypath = tuple(keypath)
        while keypath not in self.lines and keypath:
            keypath = keypath[:-1]
        return self.lines.get(keypath)

    def error(self, keypath: KeyPath, message: str) -> ManifestError:
        return ManifestError(self.path, message, line=self.line(keypath),
                             field=dotted(keypath) or None)


def dotted(keypath: KeyPath) -> str:
    out = ""
    for k in keypath:
        if isinstance(k, int):
            out += f"[{k}]"
        else:
            out += ("." if out else "") + str(k)
    return out


_SCALARS = yaml.SafeLoader("")


def _scalar(node: yaml.ScalarNode) -> Any:
    return _SCALARS.construct_object(node, deep=True)


def loads(text: str, path: Path) -> tuple[Any, SourceMap]:
    smap = SourceMap(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ManifestError(path, f"invalid YAML: {problem}", line=line) from None
    except yaml.YAMLError as exc:
        raise ManifestError(path, f"invalid YAML: {exc}") from None
    if node is None:
        raise ManifestError(path, "file is empty")
    return _to_data(node, path, (), smap), smap


def _to_data(node: yaml.Node, path: Path, keypath: KeyPath, smap: SourceMap) -> Any:
    smap.lines.setdefault(keypath, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            kline = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ManifestError(path, "YAML merge keys (<<) are not supported", line=kline)
            if not isinstance(key_node, yaml.ScalarNode):
                raise ManifestError(path, "mapping keys must be plain strings", line=kline)
            key = str(_scalar(key_node))
            if key in out:
                raise ManifestError(path, f"duplicate key {key!r}", line=kline,
                                    field=dotted(keypath + (key,)))
            smap.lines[keypath + (key,)] = kline
            out[key] = _to_data(value_node, path, keypath + (key,), smap)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_data(item, path, keypath + (i,), smap) for i, item in enumerate(node.value)]
    if isinstance(node, yaml.ScalarNode):
        try:
            return _scalar(node)
        except yaml.YAMLError:
            raise ManifestError(path, f"YAML tag {node.tag} is not allowed",
                                line=node.start_mark.line + 1,
                                field=dotted(keypath) or None) from None
    raise ManifestError(path, "unsupported YAML node", line=node.start_mark.line + 1)


def load(path: Path) -> tuple[Any, SourceMap]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(path, "file not found") from None
    except UnicodeDecodeError:
        raise ManifestError(path, "not UTF-8 text") from None
    except OSError as exc:
        raise ManifestError(path, exc.strerror or str(exc)) from None
    return loads(text, path)
