"""meta-mender-community's rules, run on kas board files or whole checkouts.

Board files are `kas/<board>.yml` (and the demos under `kas/demos/`); includes are read the
way kas reads them (paths relative to the repository root, `local_conf_header` merged by
label, repos merged by id). Rules (codes):

- floating-revision: a repository used by a board is not pinned to a commit
- lts-branch: a branch (or refspec) that does not follow the checkout's LTS series
- baseline: a board that does not include kas/include/mender-full*.yml
- machine-name: a board file whose MACHINE is not its file name
- variable-twice: one file assigns a variable twice (`=`/`:=`) with different values
- ci-matrix: a board missing from the build matrix of .github/workflows/build.yml
- layer-name: a layer of the repository not named meta-mender-<suffix>
- layer-compat: a layer without LAYERSERIES_COMPAT, or one that leaves the series out
- deprecated-key: kas keys newer formats replaced (refspec)
- kas-format: a file using keys newer than the format version its header declares
- kas-file: a file that is not readable YAML / not a kas project file
"""
from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from buildctl.boards import community
from buildctl.errors import ManifestError, UserError
from buildctl.findings import Finding
from buildctl.layers import bbconf
from buildctl.layers.checks import check_assignments
from buildctl.layers.gitfs import GitReadError, default_fs
from buildctl.manifest.yamlsrc import SourceMap, loads

RULES = ("floating-revision", "lts-branch", "baseline", "machine-name", "variable-twice",
         "ci-matrix", "layer-name", "layer-compat", "deprecated-key", "kas-format", "kas-file")
_SHA = re.compile(r"^[0-9a-fA-F]{40}$")


# -- where files come from ----------------------------------------------------------------------
class Source:
    """A community checkout: a work tree on disk or a git directory at a revision."""

    label: str

    def read(self, path: str) -> str | None: ...

    def files(self) -> list[str]: ...


@dataclass
class DirSource(Source):
    root: Path

    @property
    def label(self) -> str:
        return str(self.root)

    def read(self, path: str) -> str | None:
        p = self.root / path
        try:
            return p.read_text(encoding="utf-8") if p.is_file() else None
        except (OSError, UnicodeDecodeError):
            return None

    def files(self) -> list[str]:
        out = []
        for p in sorted(self.root.rglob("*")):
            rel = p.relative_to(self.root).as_posix()
            if p.is_file() and not rel.startswith(".git/") and "/.git/" not in rel:
                out.append(rel)
        return out


@dataclass
class GitSource(Source):
    git_dir: str
    rev: str
    _tree: Any = None

    @property
    def label(self) -> str:
        return f"{self.git_dir}@{self.rev}"

    def tree(self):
        if self._tree is None:
            try:
                self._tree = default_fs().tree(self.git_dir, self.rev)
            except GitReadError as e:
                raise UserError(str(e)) from None
        return self._tree

    def read(self, path: str) -> str | None:
        t = self.tree()
        return t.read_text(path) if t.is_file(path) else None

    def files(self) -> list[str]:
        return self.tree().files()


# -- kas files ----------------------------------------------------------------------------------
@dataclass
class KasFile:
    path: str  # repository-relative
    data: dict
    smap: SourceMap

    def line(self, *keypath) -> int | None:
        return self.smap.line(tuple(keypath))

    @property
    def includes(self) -> list[str]:
        header = self.data.get("header") or {}
        out = []
        for inc in header.get("includes") or []:
            if isinstance(inc, str):
                out.append(inc)
        return out


@dataclass
class Board:
    """A board file with its include closure, merged the way kas merges."""

    file: KasFile
    chain: list[KasFile]  # includes first (depth-first, in order), the board file last
    machine: str | None = None
    machine_at: tuple[str, int | None] = ("", None)
    repos: dict[str, dict] = field(default_factory=dict)  # id -> merged entry
    repo_at: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # where url was given

    @property
    def name(self) -> str:
        return posixpath.splitext(posixpath.basename(self.file.path))[0]


class Checker:
    def __init__(self, source: Source, series: str):
        self.src = source
        self.series = series
        self.findings: list[Finding] = []
        self._kas: dict[str, KasFile | None] = {}

    def add(self, board: str, code: str, message: str, file: str, line: int | None) -> None:
        self.findings.append(Finding(board, code, message, file, line))

    def kas(self, path: str, board: str = "*") -> KasFile | None:
        if path in self._kas:
            return self._kas[path]
        text = self.src.read(path)
        kf = None
        if text is None:
            pass
        else:
            try:
                data, smap = loads(text, Path(path))
            except ManifestError as e:
                self.add(board, "kas-file", e.message, path, e.line)
                data = None
            if data is not None:
                if not isinstance(data, dict) or "header" not in data:
                    self.add(board, "kas-file", "not a kas project file (no header)", path, 1)
                else:
                    kf = KasFile(path, data, smap)
        self._kas[path] = kf
        return kf

    # -- per file ---------------------------------------------------------------------------
    def check_file(self, kf: KasFile, board: str) -> None:
        repos = kf.data.get("repos") or {}
        for rid, entry in repos.items():
            entry = entry or {}
            if "refspec" in entry:
                dep = community.DEPRECATED_KAS_KEYS[0]
                self.add(board, "deprecated-key", f"repos.{rid}.refspec is deprecated since kas "
                         f"format {dep.since}: {dep.instead}", kf.path, kf.line("repos", rid, "refspec"))
            for key in ("branch", "refspec"):
                value = entry.get(key)
                if isinstance(value, str) and not _SHA.match(value) \
                        and not community.on_lts_branch(value, self.series):
                    self.add(board, "lts-branch", f"repos.{rid}.{key} {value!r} does not follow the "
                             f"LTS series {self.series}", kf.path, kf.line("repos", rid, key))
        version = (kf.data.get("header") or {}).get("version")
        for rid, entry in repos.items():
            for key in ("commit", "branch"):
                if isinstance(entry, dict) and key in entry and isinstance(version, int) \
                        and version < community.KAS_FORMAT:
                    self.add(board, "kas-format", f"repos.{rid}.{key} needs kas format "
                             f"{community.KAS_FORMAT}, the header declares version {version}",
                             kf.path, kf.line("repos", rid, key))
        for rid, entry in repos.items():
            if isinstance(entry, dict) and not entry.get("url") and not entry.get("path"):
                for layer in (entry.get("layers") or {}):
                    base = posixpath.basename(str(layer))
                    if rid == "meta-mender-community" and not base.startswith(community.LAYER_PREFIX):
                        self.add(board, "layer-name", f"layer {layer} of meta-mender-community is not "
                                 "named meta-mender-<BSP suffix>", kf.path, kf.line("repos", rid, "layers", layer))
        defaults = (kf.data.get("defaults") or {}).get("repos") or {}
        if "refspec" in defaults:
            self.add(board, "deprecated-key", "defaults.repos.refspec is deprecated since kas "
                     "format 14: use defaults.repos.branch", kf.path, kf.line("defaults", "repos", "refspec"))
        statements = []
        for label, text in (kf.data.get("local_conf_header") or {}).items():
            if not isinstance(text, str):
                continue
            start = (kf.line("local_conf_header", label) or 0)
            try:
                sts = bbconf.parse(text, kf.path)
            except bbconf.ConfSyntaxError as e:
                self.add(board, "kas-file", f"local_conf_header.{label}: {e.message}", kf.path, start + e.line)
                continue
            statements += [dataclasses.replace(st, line=start + st.line) for st in sts]
        for f in check_assignments(board, statements):
            self.add(board, "variable-twice", f.message.replace("; only the later value is used",
                     " in one file: only the later value is used"), f.file, f.line)

    # -- per board --------------------------------------------------------------------------
    def load_board(self, path: str) -> Board | None:
        name = posixpath.splitext(posixpath.basename(path))[0]
        top = self.kas(path, name)
        if top is None:
            return None
        chain: list[KasFile] = []
        seen: set[str] = set()

        def walk(kf: KasFile) -> None:
            for inc in kf.includes:
                if inc in seen:
                    continue
                seen.add(inc)
                sub = self.kas(inc, name)
                if sub is None:
                    if self.src.read(inc) is None:
                        self.add(name, "kas-file", f"include {inc} not found", kf.path,
                                 kf.line("header", "includes"))
                    continue
                walk(sub)
                chain.append(sub)

        seen.add(path)
        walk(top)
        chain.append(top)
        b = Board(top, chain)
        for kf in chain:
            if "machine" in kf.data:
                b.machine = str(kf.data["machine"])
                b.machine_at = (kf.path, kf.line("machine"))
            for rid, entry in (kf.data.get("repos") or {}).items():
                entry = dict(entry or {})
                merged = b.repos.setdefault(rid, {})
                merged.update(entry)
                if "url" in entry:
                    b.repo_at[rid] = (kf.path, kf.line("repos", rid, "url"))
                elif "commit" in entry or "refspec" in entry:
                    b.repo_at.setdefault(rid, (kf.path, kf.line("repos", rid)))
        return b

    def check_board(self, b: Board, ci_boards: set[str] | None, kind: str,
                    board_names: set[str]) -> None:
        name, path = b.name, b.file.path
        for rid, entry in b.repos.items():
            if "url" not in entry and "path" not in entry:
                continue  # the repository holding the kas files, or layers of another entry
            pinned = bool(entry.get("commit")) or bool(_SHA.match(str(entry.get("refspec", ""))))
            if not pinned:
                where = b.repo_at.get(rid, (path, None))
                what = (f"branch {entry['branch']}" if entry.get("branch") else
                        f"refspec {entry['refspec']}" if entry.get("refspec") else "its default branch")
                self.add(name if where[0] == path else "*", "floating-revision", f"repo {rid} follows {what} without a commit "
                         "(community boards pin every layer to a commit)", where[0], where[1])
        if kind == "board":
            includes = {inc for kf in b.chain for inc in kf.includes}
            if not any(i.startswith(community.BASELINE_PREFIX) for i in includes):
                self.add(name, "baseline", f"does not include {community.BASELINE} (or "
                         f"{posixpath.basename(community.BASELINE_UBI)}) as its baseline", path,
                         b.file.line("header", "includes") or b.file.line("header"))
            if b.machine is None:
                self.add(name, "machine-name", "no machine: set", path, 1)
            elif b.machine != name:
                other = f" (that is kas/{b.machine}.yml's MACHINE)" if b.machine in board_names else ""
                file, line = b.machine_at
                if file != path:  # set by an include: report it on the board, name the include
                    other += f" (set in {file}:{line})"
                    file, line = path, b.file.line("header", "includes") or 1
                self.add(name, "machine-name", f"file name says {name!r} but machine is "
                         f"{b.machine!r}{other}", file, line)
        if ci_boards is not None and name not in ci_boards:
            self.add(name, "ci-matrix", f"{name} is not in the build matrix of "
                     f"{community.CI_WORKFLOW} (add it with experimental: true)", path,
                     b.file.line("machine") or 1)

    # -- the repository's layers ------------------------------------------------------------
    def check_layers(self) -> None:
        files = self.src.files()
        confs = [f for f in files if f.endswith("/conf/layer.conf")]
        for conf in confs:
            layer = conf[: -len("/conf/layer.conf")]
            base = posixpath.basename(layer)
            if not base.startswith(community.LAYER_PREFIX) or base == community.LAYER_PREFIX.rstrip("-"):
                self.add("*", "layer-name", f"layer {layer} is not named meta-mender-<BSP suffix>",
                         conf, 1)
            text = self.src.read(conf) or ""
            try:
                sts = bbconf.parse(text, conf)
            except bbconf.ConfSyntaxError as e:
                self.add("*", "layer-compat", e.message, conf, e.line)
                continue
            values = bbconf.evaluate(sts, {"LAYERDIR": "/" + layer}, overrides=[])
            colls = values.get("BBFILE_COLLECTIONS", "").split()
            coll_line = next((s.line for s in sts if s.kind == "assign" and s.var == "BBFILE_COLLECTIONS"), 1)
            for c in colls:
                compat = values.get(f"LAYERSERIES_COMPAT_{c}")
                line = next((s.line for s in sts if s.kind == "assign" and s.var == f"LAYERSERIES_COMPAT_{c}"), None)
                if compat is None:
                    self.add("*", "layer-compat", f"collection {c} has no LAYERSERIES_COMPAT_{c}",
                             conf, coll_line)
                elif self.series not in compat.split():
                    self.add("*", "layer-compat", f"LAYERSERIES_COMPAT_{c} = \"{compat}\" does not "
                             f"name {self.series}", conf, line)

    # -- the CI matrix ----------------------------------------------------------------------
    def ci_boards(self) -> set[str] | None:
        text = self.src.read(community.CI_WORKFLOW)
        if text is None:
            return None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            self.add("*", "kas-file", "the CI workflow is not valid YAML", community.CI_WORKFLOW, None)
            return set()
        return ci_matrix_boards(data)


def ci_matrix_boards(workflow: dict) -> set[str]:
    out: set[str] = set()
    for job in (workflow.get("jobs") or {}).values():
        matrix = ((job or {}).get("strategy") or {}).get("matrix") or {}
        if not isinstance(matrix, dict):
            continue
        boards = matrix.get("board") or []
        out.update(str(b) for b in boards if isinstance(boards, list))
        for inc in matrix.get("include") or []:
            if isinstance(inc, dict) and inc.get("board"):
                out.add(str(inc["board"]))
    return out


def board_kind(path: str) -> str | None:
    """"board" for kas/<name>.yml, "demo" under kas/demos/, None for includes and the rest."""
    if not path.endswith((".yml", ".yaml")):
        return None
    if fnmatch.fnmatch(path, f"{community.KAS_DIR}/*.y*ml") and "/" not in path[len(community.KAS_DIR) + 1:]:
        return "board"
    if path.startswith(f"{community.KAS_DIR}/demos/") and path.count("/") == 2:
        return "demo"
    return None


def check_repository(src: Source, series: str, only: list[str] | None = None) -> list[Finding]:
    """Every rule over a checkout (or only the given repository-relative board files)."""
    ch = Checker(src, series)
    files = src.files()
    boards = [f for f in files if board_kind(f)]
    names = {posixpath.splitext(posixpath.basename(f))[0] for f in boards if board_kind(f) == "board"}
    ci = ch.ci_boards()
    targets = only if only is not None else boards
    checked: set[str] = set()
    for path in targets:
        b = ch.load_board(path)
        if b is None:
            if src.read(path) is None:
                raise UserError(f"{path}: not found in {src.label}")
            continue
        ch.check_board(b, ci, board_kind(path) or "board", names)
        for kf in b.chain:
            if kf.path not in checked:
                checked.add(kf.path)
                ch.check_file(kf, b.name if kf is b.file else "*")
    if only is None:
        ch.check_layers()
    # One finding per place and rule (an include shared by many boards is reported once).
    unique: dict[tuple, Finding] = {}
    for f in ch.findings:
        key = (f.code, f.file, f.line, f.message if f.code != "floating-revision" else f.message)
        unique.setdefault(key, f)
    return sorted(unique.values(), key=lambda f: (f.file, f.line or 0, f.code, f.message))
