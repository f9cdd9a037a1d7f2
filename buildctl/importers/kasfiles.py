"""Read a kas project file with its includes the way kas 5 does, remembering where each value
came from (file and line), so the importer can say what it did with every line.

kas itself merges the files (its IncludeHandler); this module walks the same include tree
first to refuse what kas would crash on (include cycles, the pre-1 `"0.10"` header, invalid
YAML) in one line, to report schema errors with file:line, and to record origins: for each key
path of the merged configuration, the file and line of the value that won the merge.
"""
from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from buildctl.errors import UserError
from buildctl.layers.gitfs import GitError, git

KeyPath = tuple
MAX_NODES = 200_000  # YAML nodes visited per file (aliases count each time they are used)


@dataclass
class KasFile:
    path: Path
    data: dict
    lines: dict[KeyPath, int]
    is_lock: bool = False

    def line(self, keypath: KeyPath) -> int | None:
        keypath = tuple(keypath)
        while keypath not in self.lines and keypath:
            keypath = keypath[:-1]
        return self.lines.get(keypath)

    def at(self, keypath: KeyPath) -> str:
        line = self.line(keypath)
        return f"{shown(self.path)}:{line}" if line else shown(self.path)


@dataclass
class KasSource:
    """One kas file merged with its includes (and lock file), as kas merges them."""

    path: Path
    config: dict
    files: list[KasFile]  # in merge order (later wins)
    origins: dict[KeyPath, str] = field(default_factory=dict)  # key path -> "file:line"
    notes: list[str] = field(default_factory=list)  # decisions taken while reading

    def origin(self, *keypath) -> str:
        keypath = tuple(keypath)
        while keypath not in self.origins and keypath:
            keypath = keypath[:-1]
        return self.origins.get(keypath, shown(self.path))


def shown(path: Path | str) -> str:
    """A path as the user can open it from the current directory."""
    p = os.path.abspath(path)
    rel = os.path.relpath(p)
    return rel if not rel.startswith("..") else p


# --- YAML with lines (duplicate keys allowed, as kas's yaml.safe_load allows them) ----------
def _load(path: Path, notes: list[str]) -> tuple[dict, dict[KeyPath, int]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{shown(path)}: {exc.strerror}") from None
    if b"\0" in raw:
        raise UserError(f"{shown(path)}: not a kas file (binary content)")
    text = raw.decode("utf-8", errors="replace")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{shown(path)}:{mark.line + 1}" if mark else shown(path)
        raise UserError(f"{where}: invalid YAML: {exc.problem or exc.context}") from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise UserError(f"{shown(path)}: invalid kas file: {str(exc).splitlines()[0]}") from None
    if node is None or not isinstance(node, yaml.MappingNode):
        raise UserError(f"{shown(path)}: not a kas file (the top level is not a mapping)")
    lines: dict[KeyPath, int] = {}
    budget = [MAX_NODES]

    def walk(n: yaml.Node, kp: KeyPath, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise UserError(f"{shown(path)}: more than {MAX_NODES} values once aliases are "
                            "expanded: not a kas file")
        if depth > 50:
            raise UserError(f"{shown(path)}:{n.start_mark.line + 1}: nested more than 50 levels "
                            "deep: not a kas file")
        lines.setdefault(kp, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            seen: dict[str, int] = {}
            for k, v in n.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else str(k.start_mark.line)
                if key in seen:
                    notes.append(f"{shown(path)}:{k.start_mark.line + 1}: {'.'.join(map(str, kp + (key,)))} "
                                 f"is given twice (also line {seen[key]}); the later one is used, as kas does")
                seen[key] = k.start_mark.line + 1
                lines[kp + (key,)] = k.start_mark.line + 1
                walk(v, kp + (key,), depth + 1)
                # the value of a block scalar starts on the line after the key
                if isinstance(v, yaml.ScalarNode) and v.style in ("|", ">"):
                    lines[kp + (key, "#body")] = v.start_mark.line + 2
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, kp + (i,), depth + 1)

    walk(node, (), 0)  # bounded: only then is the data built (as kas will build it)
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise UserError(f"{shown(path)}: invalid kas file: {str(exc).splitlines()[0]}") from None
    return data, lines


def _schema_check(f: KasFile) -> None:
    from jsonschema.validators import validator_for
    from kas.configschema import CONFIGSCHEMA

    validator = validator_for(CONFIGSCHEMA)(CONFIGSCHEMA)
    errors = sorted(validator.iter_errors(f.data), key=lambda e: (len(e.absolute_path), str(e.message)))
    if errors:
        e = errors[0]
        where = f.at(tuple(e.absolute_path))
        field_ = ".".join(str(p) for p in e.absolute_path)
        raise UserError(f"{where}: {field_ + ': ' if field_ else ''}{e.message.splitlines()[0][:200]} "
                        "(kas refuses this file)")


def _version(f: KasFile) -> None:
    from kas import __compatible_file_version__, __file_version__, __version__

    header = f.data.get("header")
    if not isinstance(header, dict):
        return  # the schema check names it
    v = header.get("version")
    if isinstance(v, str):
        # kas's schema allows the pre-1 string "0.10", but kas 5 stops with a traceback when it
        # merges such a file: refuse it in one line instead
        raise UserError(f"{f.at(('header', 'version'))}: header version {v!r} is the format before "
                        f"version 1, which kas {__version__} cannot merge: write `version: 1`")
    if isinstance(v, int) and not __compatible_file_version__ <= v <= __file_version__:
        raise UserError(f"{f.at(('header', 'version'))}: header version {v}: kas accepts "
                        f"{__compatible_file_version__} to {__file_version__}")


def repo_root(path: Path) -> Path:
    """Where kas resolves repo-relative includes: the git work tree holding the file, else its
    directory."""
    try:
        r = git(path.parent, "rev-parse", "--show-toplevel", check=False)
    except GitError as e:
        raise UserError(e.reason) from None
    return Path(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip() else path.parent.resolve()


def _include_path(root: Path, current: Path, include: str, where: str) -> Path:
    for base in (root, current.parent):
        cand = (base / include).resolve()
        if not cand.is_relative_to(base.resolve()):
            raise UserError(f"{where}: include {include!r} resolves outside {shown(base)} (kas refuses it)")
        if cand.exists():
            return cand
    raise UserError(f"{where}: include not found: {include}")


def _walk(path: Path, root: Path, chain: list[Path], out: list[KasFile], notes: list[str],
          is_lock: bool = False) -> None:
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(shown(p) for p in chain[chain.index(path):] + [path])
        raise UserError(f"{shown(chain[-1])}: include cycle: {cycle}")
    data, lines = _load(path, notes)
    f = KasFile(path, data, lines, is_lock)
    _version(f)
    _schema_check(f)
    lock = path.with_name(path.stem + ".lock" + path.suffix)
    if not is_lock and lock.exists():
        _walk(lock, root, chain + [path], out, notes, is_lock=True)
    header = data.get("header") or {}
    for i, inc in enumerate(header.get("includes") or []):
        where = f.at(("header", "includes", i))
        if isinstance(inc, str):
            _walk(_include_path(root, path, inc, where), root, chain + [path], out, notes)
        else:
            raise UserError(f"{where}: include from repository {inc.get('repo')!r} needs it checked "
                            "out; import the file from a checkout of that repository")
    out.append(f)


def _flatten(value, kp: KeyPath, sink: dict[KeyPath, object]) -> None:
    sink[kp] = value
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, kp + (k,), sink)


def read(path: Path) -> KasSource:
    """The merged configuration of one kas file with its includes, as kas builds it."""
    notes: list[str] = []
    files: list[KasFile] = []
    _walk(path, repo_root(path.resolve()), [], files, notes)
    origins: dict[KeyPath, str] = {}
    values: dict[KeyPath, object] = {}
    for f in files:
        flat: dict[KeyPath, object] = {}
        _flatten(f.data, (), flat)
        for kp, v in flat.items():
            if not kp or kp[0] == "header":
                continue
            if (kp in values and values[kp] != v and not isinstance(v, dict)
                    and not isinstance(values[kp], dict)):
                notes.append(f"{f.at(kp)}: {'.'.join(map(str, kp))} replaces the value from "
                             f"{origins[kp]} (the later file wins, as in kas)")
            values[kp] = v
            origins[kp] = f.at(kp)
            body = f.lines.get(kp + ("#body",))
            if body:
                origins[kp + ("#body",)] = f"{shown(f.path)}:{body}"
    return KasSource(path=path, config=_kas_merge(path), files=files, origins=origins, notes=notes)


def _kas_merge(path: Path) -> dict:
    """kas's own merge of the file, its includes and its lock file."""
    from kas import context
    from kas.includehandler import IncludeHandler
    from kas.kasusererror import KasUserError

    if context.get_context() is None:
        context.create_global_context(argparse.Namespace(no_color=True))
    log = logging.getLogger()
    level = log.level
    log.setLevel(logging.CRITICAL)  # kas logs multi-line reports; the walk above said it in one
    try:
        config, missing = IncludeHandler([str(path)], use_lock=True).get_config()
    except KasUserError as exc:
        raise UserError(f"{shown(path)}: {str(exc).splitlines()[0]}") from None
    except FileNotFoundError as exc:
        raise UserError(f"{shown(path)}: include not found: {exc.filename}") from None
    finally:
        log.setLevel(level)
    if missing:
        raise UserError(f"{shown(path)}: includes from other repositories need them checked out: "
                        f"{', '.join(missing)}")
    return config
