"""Turn kas board files (with their includes) into buildctl board and product manifests.

kas itself merges each file with its includes (its IncludeHandler); what is common to every
file becomes the product, the rest the boards. local.conf text is parsed with buildctl's
BitBake parser and mapped to typed fields where one exists (storage, device types, packages,
caches, artifact name); everything else is kept as local_conf with its operator.
"""
from __future__ import annotations

import argparse
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from buildctl.errors import UserError
from buildctl.layers import bbconf
from buildctl.manifest import bitbake_vars

KNOWN_SERIES = ("kirkstone", "langdale", "mickledore", "nanbield", "scarthgap", "styhead",
                "walnascar", "whinlatter", "wrynose", "blacksail")
EXCLUDED = {"excluded", "disabled", "n", "no", "false", "0"}

# (variable, operator) -> the table row whose field the assignment becomes
REVERSE = bitbake_vars.reverse_rules()


@dataclass
class Imported:
    product: dict
    boards: dict[str, dict]
    notes: list[str] = field(default_factory=list)


def kas_config(path: Path) -> dict:
    """The merged configuration of one kas file with its includes, as kas builds it."""
    from kas import context
    from kas.includehandler import IncludeHandler
    from kas.kasusererror import KasUserError

    if context.get_context() is None:
        context.create_global_context(argparse.Namespace(no_color=True))
    try:
        config, missing = IncludeHandler([str(path)], use_lock=True).get_config()
    except KasUserError as exc:
        raise UserError(f"{path}: {exc}") from None
    except FileNotFoundError as exc:
        raise UserError(f"{path}: include not found: {exc.filename}") from None
    if missing:
        raise UserError(f"{path}: includes from other repositories need them checked out: "
                        f"{', '.join(missing)}")
    return config


def _git(cwd: Path, *args: str) -> str | None:
    r = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


@dataclass
class TopRepo:
    root: Path
    url: str | None
    commit: str | None
    branch: str | None


def top_repo(path: Path) -> TopRepo:
    root = _git(path.parent, "rev-parse", "--show-toplevel")
    if not root:
        return TopRepo(path.parent.resolve(), None, None, None)
    root_p = Path(root)
    return TopRepo(root_p, _git(root_p, "remote", "get-url", "origin"),
                   _git(root_p, "rev-parse", "HEAD"), _git(root_p, "symbolic-ref", "--short", "HEAD"))


def _layers(entry: dict) -> list[str]:
    layers = entry.get("layers")
    if layers is None:
        return ["."]
    return [name for name, v in layers.items() if not (isinstance(v, str) and v.lower() in EXCLUDED)]


def _repo(name: str, entry: dict | None, series: str, top: TopRepo, out_dir: Path,
          notes: list[str], source: Path) -> dict:
    entry = entry or {}
    for key in sorted(set(entry) - {"url", "commit", "branch", "tag", "layers", "path", "name", "type"}):
        notes.append(f"{source}: repos.{name}.{key} is not imported")
    if entry.get("url"):
        ref = {k: entry[k] for k in ("branch", "tag", "commit") if entry.get(k)}
        if not ref:
            raise UserError(f"{source}: repos.{name} has no branch, tag or commit to pin")
        return {"url": entry["url"], "refs": {series: ref}, "layers": _layers(entry)}
    if entry.get("path"):
        raise UserError(f"{source}: repos.{name} is a local path; buildctl needs a repository url")
    # no url: the repository that holds the kas file
    if top.url and top.commit:
        ref = {"commit": top.commit}
        if top.branch:
            ref = {"branch": top.branch, "commit": top.commit}
        return {"url": top.url, "refs": {series: ref}, "layers": _layers(entry)}
    import os

    return {"path": os.path.relpath(top.root, out_dir / "products"), "layers": _layers(entry)}


def _series(configs: list[dict], top: TopRepo, given: str | None) -> str:
    if given:
        return given
    candidates = [top.branch] + [r.get("branch") for c in configs for r in (c.get("repos") or {}).values()
                                 if isinstance(r, dict)]
    for cand in candidates:
        if cand in KNOWN_SERIES:
            return cand
    raise UserError("cannot tell the release series from the branches; give --series")


@dataclass(frozen=True)
class _Stmt:
    key: str
    op: str
    value: str


def _statements(config: dict, source: Path, notes: list[str]) -> list[_Stmt]:
    out = []
    for section, text in sorted((config.get("local_conf_header") or {}).items()):
        try:
            parsed = bbconf.parse(text or "", f"{source}:local_conf_header.{section}")
        except bbconf.ConfSyntaxError as exc:
            raise UserError(str(exc)) from None
        for st in parsed:
            if st.kind != "assign" or st.flag or st.exported:
                notes.append(f"{source}: local_conf_header.{section}: line {st.line} "
                              f"({st.kind} {st.var or st.value}) is not imported")
                continue
            out.append(_Stmt(st.key, st.op, st.value))
    return out


def _typed(stmts: list[_Stmt], board: dict, product: dict, notes: list[str], source: Path) -> list[_Stmt]:
    """Move statements that a typed field owns into that field; return the rest."""
    rest = []
    board.setdefault("mender", {})
    for s in stmts:
        row = REVERSE.get((s.key, s.op))
        if row is None or not _reverse(row, s, board, product, notes, source):
            rest.append(s)
    return rest


def _reverse(row: bitbake_vars.Binding, s: _Stmt, board: dict, product: dict, notes: list[str],
             source: Path) -> bool:
    """Apply the row's reverse rule (see bitbake_vars.Reverse); False if it does not apply."""
    r = row.reverse
    target = board if r.scope == "board" else product
    *parents, last = r.path
    for key in parents:
        target = target.setdefault(key, {})
    value = s.value
    if r.kind == "scalar":
        target[last] = int(value) if value.isdigit() else value
    elif r.kind == "words":
        items = target.setdefault(last, [])
        items.extend(w for w in value.split() if w not in items)
    elif r.kind == "first":
        target[last] = [value] + [t for t in target.get(last, []) if t != value]
    elif r.kind == "rest":
        first = target.get(last, [])[:1]
        target[last] = first + [t for t in value.split() if t not in first]
    elif r.kind == "secret":
        target[last] = f"env:{row.base}"
        notes.append(f"{source}: {row.base} value not imported; the product reads it from env:{row.base}")
    elif r.kind == "pairs":
        words = value.replace("\\n", " ").split()
        target[last] = [f"{words[i]} {words[i + 1]}" for i in range(0, len(words) - 1, 2)]
    elif r.kind == "inherit":
        if value.split() != ["create-spdx"]:
            return False
        target[last] = True
    elif r.kind == "artifact-name":
        board["_artifact_name"] = value  # product-wide only: checked once every board is read
    else:
        raise ValueError(f"unknown reverse rule {r.kind}")
    return True


def _local_conf(stmts: list[_Stmt], notes: list[str], source: Path) -> dict:
    out: dict = {}
    for s in stmts:
        value = s.value
        if s.key in out:
            prev = out[s.key]
            prev_op = prev["op"] if isinstance(prev, dict) else "="
            if prev_op == s.op and (s.op in ("+=", ".=", "=.") or ":" in s.key):
                joined = (prev["value"] if isinstance(prev, dict) else prev) + " " + value.strip()
                value = joined
            else:
                notes.append(f"{source}: {s.key} is set twice; the later value is kept")
        out[s.key] = value if s.op == "=" else {"op": s.op, "value": value}
    return out


def import_files(files: list[Path], *, product_name: str, out_dir: Path, series: str | None = None,
                 version: str = "0.0.0") -> Imported:
    if not files:
        raise UserError("import-kas needs at least one kas file")
    notes: list[str] = []
    configs = []
    for f in files:
        if not f.is_file():
            raise UserError(f"{f}: file not found")
        configs.append((f, kas_config(f), top_repo(f)))
    ser = _series([c for _, c, _ in configs], configs[0][2], series)

    product: dict = {"name": product_name, "series": ser}
    boards: dict[str, dict] = {}
    repos_per_board: dict[str, dict[str, dict]] = {}
    stmts_per_board: dict[str, list[_Stmt]] = {}
    for f, cfg, top in configs:
        name = f.stem
        if name in boards:
            raise UserError(f"{f}: a second file for board {name!r}")
        machine = cfg.get("machine")
        if not machine:
            raise UserError(f"{f}: no machine (is this a board file?)")
        board: dict = {"machine": machine}
        if machine != name:
            board["machine_name_differs"] = True
        board["series"] = [ser]
        repos_per_board[name] = {rn: _repo(rn, r, ser, top, out_dir, notes, f)
                                 for rn, r in (cfg.get("repos") or {}).items()}
        stmts_per_board[name] = _statements(cfg, f, notes)
        boards[name] = board

    for key in ("distro", "target"):
        values = {repr(cfg.get(key)) for _, cfg, _ in configs}
        if len(values) > 1:
            raise UserError(f"the files use different {key}s ({', '.join(sorted(values))}); "
                            "import them into separate products")
    first = configs[0][1]
    product["distro"] = first.get("distro") or "nodistro"
    target = first.get("target") or "core-image-minimal"
    product["target"] = target if isinstance(target, str) or len(target) > 1 else target[0]

    # repos every board has (same source and ref) belong to the product; layers common to all
    names = set.intersection(*(set(r) for r in repos_per_board.values()))
    core: dict[str, dict] = {}
    for rn in sorted(names):
        entries = [repos_per_board[b][rn] for b in boards]
        src = {repr((e.get("url"), e.get("path"), e.get("refs"))) for e in entries}
        if len(src) != 1:
            continue
        common = [layer for layer in entries[0]["layers"] if all(layer in e["layers"] for e in entries)]
        core[rn] = dict(entries[0], layers=common)
    product["repos"] = core
    for b, repos in repos_per_board.items():
        own = {}
        for rn, e in repos.items():
            if rn in core:
                extra = [layer for layer in e["layers"] if layer not in core[rn]["layers"]]
                if extra:
                    own[rn] = {"layers": extra}  # more layers of the core repo, as kas writes it
            else:
                own[rn] = e
        boards[b]["repos"] = own

    # statements every board has belong to the product; typed ones go to their fields
    common_stmts = set.intersection(*(set(s) for s in stmts_per_board.values()))
    shared: dict = {}  # board-level fields every board shares
    product_rest = _typed([s for s in stmts_per_board[next(iter(boards))] if s in common_stmts],
                          shared, product, notes, files[0])
    if product_rest:
        product["local_conf"] = _local_conf(product_rest, notes, files[0])
    if shared.get("packages"):
        product["packages"] = shared["packages"]
    if shared.get("image_features"):
        product["image_features"] = shared["image_features"]
    artifact = shared.get("_artifact_name")
    for b, stmts in stmts_per_board.items():
        board = boards[b]
        rest = _typed([s for s in stmts if s not in common_stmts], board, product, notes, files[0])
        if rest:
            board["local_conf"] = _local_conf(rest, notes, files[0])
        for k, v in shared.get("mender", {}).items():
            board["mender"].setdefault(k, v)
        board["mender"].setdefault("device_types", [board["machine"]])
        if board.pop("_artifact_name", None):
            raise UserError(f"board {b} sets its own MENDER_ARTIFACT_NAME; buildctl derives it from "
                            "the product's release.artifact_name")
        if board.get("image_features"):
            raise UserError(f"board {b} sets EXTRA_IMAGE_FEATURES; buildctl keeps image features "
                            "per product or variant")
    product["boards"] = list(boards)
    product["release"] = {"version": version, "artifact_name": artifact or "{product}-{version}-{board}"}
    product.setdefault("sbom", {}).setdefault("spdx", False)
    return Imported(product=product, boards=boards, notes=notes)
