"""What one layer declares, read from git at a pinned commit: collections, dependencies,
series compatibility, machines, distros, recipes and bbappends (each with file and line).

File names in a LayerInfo are "display" paths: `<repo name>/<path in repo>`, e.g.
`meta-raspberrypi/conf/layer.conf` or `poky/meta/conf/layer.conf`, so findings read well.
"""
from __future__ import annotations

import posixpath
import re
from functools import cached_property
from dataclasses import dataclass, field

from buildctl.layers import bbconf
from buildctl.layers.gitfs import GitFS, GitReadError, GitTree, default_fs

__all__ = [
    "Located",
    "LayerDep",
    "Collection",
    "Recipe",
    "Bbappend",
    "ConfFile",
    "LayerProblem",
    "LayerInfo",
    "read_layer",
    "layer_from_tree",
    "parse_depends",
    "recipe_name_version",
    "LayerRef",
    "read_layers",
]

_MACHINE_VARS = (
    "MACHINE_FEATURES",
    "PREFERRED_PROVIDER_virtual/bootloader",
    "PREFERRED_PROVIDER_virtual/kernel",
    "EFI_PROVIDER",
    "IMAGE_FSTYPES",
    "KERNEL_IMAGETYPE",
    "UBOOT_MACHINE",
    "MACHINEOVERRIDES",
    "SOC_FAMILY",
    "MACHINE_ARCH",
    "DEFAULTTUNE",
)


@dataclass(frozen=True)
class Located:
    """A value and where it was (last) assigned."""

    value: str
    file: str = ""
    line: int | None = None


@dataclass(frozen=True)
class LayerDep:
    """One entry of LAYERDEPENDS/LAYERRECOMMENDS, e.g. `core (>= 12)` -> name core, op >=, version 12."""

    name: str
    op: str = ""
    version: str = ""

    def __str__(self) -> str:
        return f"{self.name} ({self.op} {self.version})" if self.op else self.name


@dataclass(frozen=True)
class Collection:
    name: str
    file: str
    line: int | None
    priority: Located | None = None
    depends: tuple[LayerDep, ...] = ()
    depends_at: Located | None = None
    recommends: tuple[LayerDep, ...] = ()
    recommends_at: Located | None = None
    compat: tuple[str, ...] = ()
    compat_at: Located | None = None
    version: Located | None = None
    pattern: str | None = None


@dataclass(frozen=True)
class Recipe:
    """A .bb file: PN and PV from its name (as BitBake derives them), and its display path."""

    pn: str
    pv: str
    file: str
    dynamic: str = ""  # collection that must be present (BBFILES_DYNAMIC), "!x" = absent

    @cached_property
    def filename(self) -> str:
        return posixpath.basename(self.file)


@dataclass(frozen=True)
class Bbappend:
    file: str
    dynamic: str = ""

    @cached_property
    def filename(self) -> str:
        return posixpath.basename(self.file)


@dataclass(frozen=True)
class ConfFile:
    """A machine or distro configuration: name, file and the variables it sets (unexpanded)."""

    name: str
    file: str
    variables: dict[str, Located] = field(default_factory=dict, hash=False, compare=False)
    includes: tuple[Located, ...] = ()

    def features(self, var: str = "MACHINE_FEATURES") -> list[str]:
        loc = self.variables.get(var)
        return loc.value.split() if loc else []


@dataclass(frozen=True)
class LayerProblem:
    """Something wrong with the layer itself (unreadable conf, bad syntax)."""

    code: str
    message: str
    file: str
    line: int | None = None


@dataclass
class LayerInfo:
    name: str  # display name (<repo>/<path>)
    repo: str  # repository display name
    path: str  # layer directory inside the repository ("" = root)
    commit: str
    conf_file: str  # display path of conf/layer.conf
    collections: list[Collection] = field(default_factory=list)
    corenames: Located | None = None  # LAYERSERIES_CORENAMES (OE-core)
    machines: dict[str, ConfFile] = field(default_factory=dict)
    distros: dict[str, ConfFile] = field(default_factory=dict)
    recipes: list[Recipe] = field(default_factory=list)
    bbappends: list[Bbappend] = field(default_factory=list)
    statements: list[bbconf.Statement] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    problems: list[LayerProblem] = field(default_factory=list)
    tree: GitTree | None = field(default=None, repr=False, compare=False)

    def read_text(self, rel: str) -> str | None:
        """A file of this layer (path relative to the layer directory), None if absent."""
        if self.tree is None:
            return None
        full = "/".join(x for x in (self.path, rel.strip("/")) if x)
        return self.tree.read_text(full) if self.tree.is_file(full) else None

    def display_path(self, rel: str) -> str:
        return _display(self.repo, self.path, rel)

    @property
    def collection_names(self) -> list[str]:
        return [c.name for c in self.collections]


_DEP_TOKEN = re.compile(r"\s*([^\s()]+)(?:\s*\(\s*([<>=!]+)\s*([^)\s]+)\s*\))?")


def parse_depends(value: str) -> list[LayerDep]:
    """`core (>= 12) openembedded-layer` -> [LayerDep(core, >=, 12), LayerDep(openembedded-layer)]."""
    out: list[LayerDep] = []
    pos = 0
    value = value.strip()
    while pos < len(value):
        m = _DEP_TOKEN.match(value, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot read dependency list at {value[pos:]!r}")
        out.append(LayerDep(m.group(1), m.group(2) or "", m.group(3) or ""))
        pos = m.end()
        while pos < len(value) and value[pos].isspace():
            pos += 1
    return out


def recipe_name_version(filename: str) -> tuple[str, str]:
    """PN and PV from a recipe file name (`busybox_1.36.1.bb` -> busybox, 1.36.1; no `_` -> 1.0)."""
    stem = filename.rsplit(".", 1)[0]
    parts = stem.split("_")
    return parts[0], parts[1] if len(parts) > 1 and parts[1] else "1.0"


def _display(repo: str, *parts: str) -> str:
    return "/".join(p.strip("/") for p in (repo, *parts) if p and p.strip("/"))


def _last_assignment(statements: list[bbconf.Statement], var: str) -> bbconf.Statement | None:
    for st in reversed(statements):
        if st.kind == "assign" and st.var == var and not st.flag:
            return st
    return None


def _located(statements, values, var, file) -> Located | None:
    if var not in values:
        return None
    st = _last_assignment(statements, var)
    return Located(values[var], file, st.line if st else None)


def _read_conf(tree: GitTree, path: str, display: str, problems: list[LayerProblem]) -> list[bbconf.Statement]:
    try:
        return bbconf.parse(tree.read_text(path), display)
    except bbconf.ConfSyntaxError as e:
        problems.append(LayerProblem("conf-syntax", e.message, e.filename, e.line))
        return []


def _conf_file(tree: GitTree, path: str, display: str, name: str, problems) -> ConfFile:
    sts = _read_conf(tree, path, display, problems)
    variables: dict[str, Located] = {}
    # Plain per-file evaluation (no includes followed): enough to see MACHINE_FEATURES etc.
    d = bbconf.datastore(sts, overrides=[])
    for st in sts:
        if st.kind == "assign" and not st.flag and not st.override:
            val = d.get(st.var, expand_value=False)
            if val is not None:
                variables[st.var] = Located(val, display, st.line)
    includes = tuple(Located(st.value, display, st.line) for st in sts if st.kind in ("include", "require"))
    return ConfFile(name, display, variables, includes)


def layer_from_tree(tree: GitTree, layer_path: str = "", repo_name: str = "", *, read_confs: bool = True) -> LayerInfo:
    """Build a LayerInfo for the layer at layer_path inside tree (see read_layer)."""
    layer_path = layer_path.strip("/")
    repo_name = repo_name or posixpath.basename(tree.repo_path.rstrip("/")).removesuffix(".git")
    join = (lambda *p: "/".join(x for x in (layer_path, *p) if x))
    conf_path = join("conf", "layer.conf")
    conf_disp = _display(repo_name, conf_path)
    info = LayerInfo(
        name=_display(repo_name, layer_path) or repo_name,
        repo=repo_name,
        path=layer_path,
        commit=tree.commit,
        conf_file=conf_disp,
        tree=tree,
    )
    if not tree.is_file(conf_path):
        where = f"{repo_name}/{layer_path}" if layer_path else repo_name
        info.problems.append(
            LayerProblem("layer-conf-missing", f"{where} has no conf/layer.conf at commit {tree.commit[:12]}: not a layer", conf_disp)
        )
        return info
    sts = _read_conf(tree, conf_path, conf_disp, info.problems)
    info.statements = sts
    # LAYERDIR is the checkout directory in BitBake; "/<repo>/<layer path>" stands in for it so
    # BBFILES globs map back to paths inside the repository.
    layerdir = "/" + (_display(repo_name, layer_path) or repo_name)
    values = bbconf.evaluate(sts, {"LAYERDIR": layerdir, "LAYERDIR_RE": re.escape(layerdir)}, overrides=[])
    values.pop("LAYERDIR", None)
    values.pop("LAYERDIR_RE", None)
    info.variables = values

    coll_st = _last_assignment(sts, "BBFILE_COLLECTIONS")
    for cname in values.get("BBFILE_COLLECTIONS", "").split():
        def loc(prefix: str) -> Located | None:
            return _located(sts, values, f"{prefix}_{cname}", conf_disp)

        depends_at = loc("LAYERDEPENDS")
        recommends_at = loc("LAYERRECOMMENDS")
        deps: list[LayerDep] = []
        recs: list[LayerDep] = []
        for at, sink in ((depends_at, deps), (recommends_at, recs)):
            if at is None:
                continue
            try:
                sink.extend(parse_depends(at.value))
            except ValueError as e:
                info.problems.append(LayerProblem("layer-depends-syntax", f"{e} (collection '{cname}')", conf_disp, at.line))
        compat_at = loc("LAYERSERIES_COMPAT")
        info.collections.append(
            Collection(
                name=cname,
                file=conf_disp,
                line=coll_st.line if coll_st else None,
                priority=loc("BBFILE_PRIORITY"),
                depends=tuple(deps),
                depends_at=depends_at,
                recommends=tuple(recs),
                recommends_at=recommends_at,
                compat=tuple(compat_at.value.split()) if compat_at else (),
                compat_at=compat_at,
                version=loc("LAYERVERSION"),
                pattern=values.get(f"BBFILE_PATTERN_{cname}"),
            )
        )
    info.corenames = _located(sts, values, "LAYERSERIES_CORENAMES", conf_disp)

    for kind, sink in (("machine", info.machines), ("distro", info.distros)):
        conf_dir = join("conf", kind)
        for name in tree.list_dir(conf_dir):
            full = f"{conf_dir}/{name}"
            if name.endswith(".conf") and tree.is_file(full):
                mname = name[: -len(".conf")]
                disp = _display(repo_name, full)
                sink[mname] = (
                    _conf_file(tree, full, disp, mname, info.problems) if read_confs else ConfFile(mname, disp)
                )

    _collect_recipes(tree, info, values, layerdir, repo_name)
    return info


def _strip_layerdir(pattern: str, layerdir: str) -> str | None:
    """Turn an expanded BBFILES entry into a path inside the repository, or None if foreign."""
    if "${" in pattern:
        return None  # inline Python or an unknown variable: cannot be evaluated statically
    if pattern.startswith(layerdir + "/"):
        return pattern[len(layerdir) + 1 :]
    return None


def _collect_recipes(tree: GitTree, info: LayerInfo, values: dict[str, str], layerdir: str, repo_name: str) -> None:
    globs: list[tuple[str, str]] = [(p, "") for p in values.get("BBFILES", "").split()]
    for entry in values.get("BBFILES_DYNAMIC", "").split():
        coll, sep, pat = entry.partition(":")
        if sep:
            globs.append((pat, coll))
    seen: set[str] = set()
    for pattern, dynamic in globs:
        rel = _strip_layerdir(pattern, layerdir)
        if rel is None:
            continue
        full = "/".join(x for x in (info.path, rel) if x)
        for path in tree.glob(full):
            if path in seen:
                continue
            seen.add(path)
            disp = _display(repo_name, path)
            fname = posixpath.basename(path)
            if fname.endswith(".bb"):
                pn, pv = recipe_name_version(fname)
                info.recipes.append(Recipe(pn, pv, disp, dynamic))
            elif fname.endswith(".bbappend"):
                info.bbappends.append(Bbappend(disp, dynamic))


def read_layer(
    repo_path: str,
    commit: str,
    layer_path: str = "",
    repo_name: str = "",
    *,
    fs: GitFS | None = None,
    read_confs: bool = True,
) -> LayerInfo:
    """Read the layer at layer_path ("" = repository root) of repo_path at commit.

    repo_name is used in display paths (default: the repository directory's name). Problems
    with the layer (missing or unparsable conf) are in LayerInfo.problems, not raised; an
    unreadable repository or commit raises gitfs.GitReadError.
    """
    fs = fs or default_fs()
    tree = fs.tree(repo_path, commit)
    key = ("layerinfo", tree.repo_path, tree.commit, layer_path.strip("/"), repo_name, read_confs)
    info = fs.memo.get(key)
    if info is None:
        info = fs.memo[key] = layer_from_tree(tree, layer_path, repo_name, read_confs=read_confs)
    return info


@dataclass(frozen=True)
class LayerRef:
    """Which layer to read: repository path, pinned commit, layer dir in it, display name."""

    repo_path: str
    commit: str
    layer_path: str = ""
    repo_name: str = ""


def read_layers(
    refs: list[LayerRef], *, fs: GitFS | None = None, workers: int = 8, record_errors: bool = False
) -> list[LayerInfo]:
    """read_layer for many layers (e.g. every board's stack at once), one thread per repository.

    Results come back in the order of refs; duplicates are read once. Git work is mostly
    waiting on git processes, so repositories are read concurrently; each repository is only
    touched by one thread (GitPython's persistent cat-file is per repository).
    record_errors=True turns an unreadable repository/commit into a LayerInfo whose problems
    hold one "layer-unreadable" entry (so every board is still checked) instead of raising
    GitReadError.
    """
    from concurrent.futures import ThreadPoolExecutor
    import os

    fs = fs or default_fs()
    by_repo: dict[str, list[LayerRef]] = {}
    for ref in dict.fromkeys(refs):
        by_repo.setdefault(os.path.realpath(ref.repo_path), []).append(ref)
    results: dict[LayerRef, LayerInfo] = {}

    def work(group: list[LayerRef]) -> None:
        for ref in group:
            try:
                results[ref] = read_layer(ref.repo_path, ref.commit, ref.layer_path, ref.repo_name, fs=fs)
            except GitReadError as e:
                if not record_errors:
                    raise
                if e.dubious:  # a checkout of another user: name it, it is not a missing commit
                    results[ref] = _unreadable(ref, f"repo {ref.repo_name or ref.repo_path}: {e.reason}",
                                               "repo-unreadable")
                else:
                    results[ref] = _unreadable(ref, str(e))

    if len(by_repo) <= 1 or workers <= 1:
        for group in by_repo.values():
            work(group)
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(by_repo))) as pool:
            for fut in [pool.submit(work, g) for g in by_repo.values()]:
                fut.result()
    return [results[r] for r in refs]


def _unreadable(ref: LayerRef, message: str, code: str = "layer-unreadable") -> LayerInfo:
    repo = ref.repo_name or posixpath.basename(ref.repo_path.rstrip("/")).removesuffix(".git")
    conf = _display(repo, ref.layer_path, "conf/layer.conf")
    info = LayerInfo(name=_display(repo, ref.layer_path) or repo, repo=repo, path=ref.layer_path,
                     commit=ref.commit, conf_file=conf)
    info.problems.append(LayerProblem(code, message, conf))
    return info
