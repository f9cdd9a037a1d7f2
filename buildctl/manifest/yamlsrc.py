"""YAML loading that remembers where every value came from.

``load(path)`` returns plain data plus a ``SourceMap`` from key paths (tuples of keys and
indices) to 1-based line numbers, so that schema and semantic errors can say ``file:line``.
Duplicate mapping keys are an error (plain YAML silently keeps the last one).

Hostile files end in one line, fast: the file size, the nesting depth and the number of values
the document stands for once its aliases are expanded are bounded while the node graph is
built, before anything is expanded; an alias that refers to its own ancestor is refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from buildctl.errors import ManifestError

KeyPath = tuple

MAX_BYTES = 16 << 20  # a manifest, lock or kas file is kilobytes
MAX_DEPTH = 64  # nesting of mappings and sequences
MAX_NODES = 200_000  # values after alias expansion (a billion-laughs file stands for 10**9)


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


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a depth bound checked while composing (no deep recursion)."""

    def __init__(self, stream, path: Path):
        super().__init__(stream)
        self._path = path
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ManifestError(self._path, f"nested more than {MAX_DEPTH} levels deep",
                                    line=mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_expansion(root: yaml.Node, path: Path) -> None:
    """Count the values the graph stands for once aliases are expanded, without expanding it:
    each node's expanded size is computed once (iteratively) and reused by every alias."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            total = 1 + sum(size[id(c)] for c in children)
            if total > MAX_NODES:
                raise ManifestError(path, f"document expands to more than {MAX_NODES} values "
                                    "(YAML aliases)", line=node.start_mark.line + 1)
            size[key] = total
            continue
        if key in size:
            continue
        on_path.add(key)
        stack.append((node, True))
        for c in children:
            if id(c) in on_path:
                raise ManifestError(path, "YAML alias refers to a value that contains it "
                                    "(recursive alias)", line=c.start_mark.line + 1)
            if id(c) not in size:
                stack.append((c, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


# A long run of flow-collection openers is refused before PyYAML's scanner, whose look-ahead
# for simple keys is quadratic over it (0.4 s for 1000 brackets). 256 in a row cannot be a
# real manifest (not even inside a quoted string); shorter runs reach the composer's bound.
_OPENERS = re.compile(r"(?:[\[{][ \t\r\n]*){256}")


def loads(text: str, path: Path) -> tuple[Any, SourceMap]:
    smap = SourceMap(path)
    if len(text) > MAX_BYTES:
        raise ManifestError(path, f"larger than {MAX_BYTES >> 20} MiB")
    run = _OPENERS.search(text)
    if run:
        raise ManifestError(path, f"nested more than {MAX_DEPTH} levels deep",
                            line=text.count("\n", 0, run.start()) + 1)
    loader = None
    try:
        loader = _BoundedLoader(text, path)  # the reader refuses control characters here
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ManifestError(path, f"invalid YAML: {problem}", line=line) from None
    except yaml.YAMLError as exc:
        raise ManifestError(path, f"invalid YAML: {' '.join(str(exc).split())}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        raise ManifestError(path, "file is empty")
    _check_expansion(node, path)
    return _to_data(node, path, (), smap), smap


_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


def _to_data(node: yaml.Node, path: Path, keypath: KeyPath, smap: SourceMap) -> Any:
    smap.lines.setdefault(keypath, node.start_mark.line + 1)
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _COLLECTION_TAGS:
        raise ManifestError(path, f"YAML tag {node.tag} is not allowed",
                            line=node.start_mark.line + 1, field=dotted(keypath) or None)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            kline = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ManifestError(path, "YAML merge keys (<<) are not supported", line=kline)
            if not isinstance(key_node, yaml.ScalarNode):
                raise ManifestError(path, "mapping keys must be plain strings", line=kline)
            try:
                key = str(_scalar(key_node))
            except (yaml.YAMLError, ValueError, OverflowError):
                raise ManifestError(path, "mapping key cannot be read", line=kline) from None
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
        except (ValueError, OverflowError) as exc:  # 40000-digit ints, 2024-13-45 dates
            raise ManifestError(path, f"value cannot be read: {' '.join(str(exc).split())}",
                                line=node.start_mark.line + 1,
                                field=dotted(keypath) or None) from None
    raise ManifestError(path, "unsupported YAML node", line=node.start_mark.line + 1)


def load(path: Path) -> tuple[Any, SourceMap]:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise ManifestError(path, f"larger than {MAX_BYTES >> 20} MiB")
        if b"\0" in raw:
            raise ManifestError(path, "binary file (contains NUL bytes), not YAML text")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ManifestError(path, "file not found") from None
    except UnicodeDecodeError:
        raise ManifestError(path, "not UTF-8 text") from None
    except IsADirectoryError:
        raise ManifestError(path, "is a directory, not a file") from None
    except OSError as exc:
        raise ManifestError(path, exc.strerror or str(exc)) from None
    return loads(text, path)
