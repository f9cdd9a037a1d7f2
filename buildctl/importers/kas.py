"""Turn kas board files (with their includes) into buildctl board and product manifests.

kas itself merges each file with its includes (its IncludeHandler); what is common to every
file becomes the product, the rest the boards. local.conf text is parsed with buildctl's
BitBake parser and mapped to typed fields where one exists (storage, device types, packages,
caches, artifact name); everything else is kept as local_conf with its operator.

Every decision is a note naming the original file and line (kasfiles.py records where each
merged value came from): a value normalised, a duplicate resolved, a check silenced, anything
not imported. The same origins are written as comments on the manifest lines they produced, so
validate can name the kas line behind a finding.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from buildctl.errors import UserError
from buildctl.importers import kasfiles
from buildctl.layers import bbconf
from buildctl.layers.gitfs import GitError, git
from buildctl.manifest import bitbake_vars

KNOWN_SERIES = ("kirkstone", "langdale", "mickledore", "nanbield", "scarthgap", "styhead",
                "walnascar", "whinlatter", "wrynose", "blacksail")
EXCLUDED = {"excluded", "disabled", "n", "no", "false", "0"}

# (variable, operator) -> the table row whose field the assignment becomes
REVERSE = bitbake_vars.reverse_rules()


# top-level kas keys the importer reads; every other key is reported as not imported
IMPORTED_KEYS = {"header", "machine", "distro", "target", "repos", "local_conf_header", "overrides",
                 "defaults"}


@dataclass
class Imported:
    product: dict
    boards: dict[str, dict]
    notes: list[str] = field(default_factory=list)
    # where each written field came from: ("product" | board name) -> key path -> "file:line"
    origins: dict[str, dict[tuple, str]] = field(default_factory=dict)


def kas_config(path: Path) -> dict:
    """The merged configuration of one kas file with its includes, as kas builds it."""
    return kasfiles.read(path).config



def _name_pattern() -> re.Pattern:
    """Names that become file names: the manifest schema's rule for names."""
    schema = json.loads(resources.files("buildctl.manifest").joinpath(
        "schema/manifests.schema.json").read_text())
    return re.compile(schema["$defs"]["name"]["pattern"])


def check_name(kind: str, name: str, where: str) -> None:
    """A product or board name is a file name under --out: nothing that leaves it."""
    if not _name_pattern().fullmatch(name or "") or name in (".", ".."):
        raise UserError(f"{where}: {kind} name {name!r} cannot be a file name under --out "
                        "(letters, digits and . _ + - only, starting with a letter or digit)")


def _git(cwd: Path, *args: str) -> str | None:
    try:
        r = git(cwd, *args, check=False)
    except GitError as e:  # a checkout git refuses (dubious ownership): say so
        raise UserError(e.reason) from None
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


def _ref_of(name: str, entry: dict, defaults: dict, overrides: dict, src: kasfiles.KasSource,
            notes: list[str]) -> dict:
    """branch/tag/commit of a repo as kas resolves them: defaults, legacy refspec, lock overrides."""
    ref = {k: entry[k] for k in ("branch", "tag", "commit") if entry.get(k)}
    for k in ("branch", "tag"):
        if k not in ref and defaults.get(k) and "refspec" not in entry:
            ref[k] = defaults[k]
            notes.append(f"{src.origin('defaults', 'repos', k)}: repos.{name}.{k} {defaults[k]!r} "
                         "taken from defaults.repos")
    refspec = entry.get("refspec", defaults.get("refspec"))
    if refspec and not ref:
        where = src.origin("repos", name, "refspec")
        text = str(refspec)
        if re.fullmatch(r"[0-9a-fA-F]{40}", text):
            ref = {"commit": text.lower()}
        elif text.startswith("refs/tags/"):
            ref = {"tag": text.removeprefix("refs/tags/")}
        else:
            ref = {"branch": text.removeprefix("refs/heads/")}
        (kind, value), = ref.items()
        notes.append(f"{where}: repos.{name}.refspec {text!r} (kas's legacy form) imported as "
                     f"{kind} {value!r}")
    over = (overrides.get("repos") or {}).get(name) or {}
    for k in ("commit", "branch"):
        if over.get(k) and over[k] != ref.get(k):
            notes.append(f"{src.origin('overrides', 'repos', name, k)}: repos.{name}.{k} "
                         f"{over[k]!r} from the lock file overrides {ref.get(k)!r}")
            ref[k] = over[k]
    return ref


def _repo(name: str, entry: dict | None, series: str, top: TopRepo, out_dir: Path,
          notes: list[str], src: kasfiles.KasSource) -> dict:
    entry = entry or {}
    config = src.config
    defaults = ((config.get("defaults") or {}).get("repos")) or {}
    overrides = config.get("overrides") or {}
    for key in sorted(set(entry) - {"url", "commit", "branch", "tag", "refspec", "layers", "path",
                                    "name", "type"}):
        notes.append(f"{src.origin('repos', name, key)}: repos.{name}.{key} is not imported")
    layers = _layers(entry)
    for layer, v in (entry.get("layers") or {}).items():
        if isinstance(v, str) and v.lower() in EXCLUDED:
            notes.append(f"{src.origin('repos', name, 'layers', layer)}: layer {name}/{layer} is "
                         f"{v!r}: left out of the board")
    url = (overrides.get("repos") or {}).get(name, {}).get("url") or entry.get("url")
    if url:
        ref = _ref_of(name, entry, defaults, overrides, src, notes)
        if not ref:
            raise UserError(f"{src.origin('repos', name)}: repos.{name} has no branch, tag or commit to pin")
        return {"url": url, "refs": {series: ref}, "layers": layers}
    if entry.get("path"):
        raise UserError(f"{src.origin('repos', name, 'path')}: repos.{name} is a local path; "
                        "buildctl needs a repository url")
    # no url: the repository that holds the kas file
    if top.url and top.commit:
        ref = {"commit": top.commit}
        if top.branch:
            ref = {"branch": top.branch, "commit": top.commit}
        notes.append(f"{src.origin('repos', name)}: repos.{name} (the repository of the kas file) "
                     f"pinned to its checked-out commit {top.commit[:12]} of {top.url}")
        return {"url": top.url, "refs": {series: ref}, "layers": layers}
    import os

    return {"path": os.path.relpath(top.root, out_dir / "products"), "layers": layers}


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
    origin: str = field(default="", compare=False)  # "file:line" in the original kas files


def _line_of(src: kasfiles.KasSource, section: str, line: int) -> str:
    """file:line of line `line` of a local_conf_header section's text."""
    body = src.origins.get(("local_conf_header", section, "#body"))
    if body:
        file, _, first = body.rpartition(":")
        return f"{file}:{int(first) + line - 1}"
    return src.origin("local_conf_header", section)


def _statements(src: kasfiles.KasSource, notes: list[str]) -> list[_Stmt]:
    out = []
    config = src.config
    for section, text in sorted((config.get("local_conf_header") or {}).items()):
        try:
            parsed = bbconf.parse(text or "", f"local_conf_header.{section}")
        except bbconf.ConfSyntaxError as exc:
            raise UserError(f"{_line_of(src, section, exc.line)}: {exc.message}") from None
        for st in parsed:
            where = _line_of(src, section, st.line)
            if st.kind != "assign" or st.flag or st.exported:
                notes.append(f"{where}: {st.kind} {st.var or st.value} is not imported "
                             "(only plain assignments map to a manifest)")
                continue
            out.append(_Stmt(st.key, st.op, st.value, where))
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


# local.conf variables that turn a check off (BitBake's or validate's): imported, with a note
SILENCING = {
    "BB_DANGLINGAPPENDS_WARNONLY": "dangling bbappends become warnings (BitBake and validate)",
    "BBMASK": "masked recipes and bbappends are not parsed or checked",
    "SANITY_TESTED_DISTROS": "BitBake's host distribution check",
    "INSANE_SKIP": "QA checks of the named packages",
    "ERROR_QA": "QA checks downgraded (a :remove moves them out of the errors)",
}


def _local_conf(stmts: list[_Stmt], notes: list[str], origins: dict[tuple, str]) -> dict:
    out: dict = {}
    first: dict[str, _Stmt] = {}
    for s in stmts:
        what = SILENCING.get(s.key.split(":")[0])
        if what:
            notes.append(f"{s.origin}: {s.key} {s.op} \"{s.value.strip()}\" imported: it silences "
                         f"a check ({what})")
        value = s.value
        if s.key in out:
            prev = out[s.key]
            prev_op = prev["op"] if isinstance(prev, dict) else "="
            if prev_op == s.op and (s.op in ("+=", ".=", "=.") or ":" in s.key):
                joined = (prev["value"] if isinstance(prev, dict) else prev) + " " + value.strip()
                value = joined
                notes.append(f"{s.origin}: {s.key} {s.op} joined with the one at "
                             f"{first[s.key].origin} into one local_conf entry")
            else:
                notes.append(f"{s.origin}: {s.key} is set again (first at {first[s.key].origin}); "
                             "the later value is kept, as BitBake would")
        first.setdefault(s.key, s)
        out[s.key] = value if s.op == "=" else {"op": s.op, "value": value}
        origins[("local_conf", s.key)] = s.origin
    return out


def _flat(d, kp=()) -> dict[tuple, object]:
    out: dict[tuple, object] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flat(v, kp + (k,)))
    else:
        out[kp] = d if not isinstance(d, list) else tuple(d)
    return out


def _typed_noted(stmts: list[_Stmt], board: dict, product: dict, notes: list[str],
                 origins: dict[str, dict[tuple, str]], board_key: str) -> list[_Stmt]:
    """_typed, one statement at a time, noting which manifest field each statement became
    (whatever the mapping table says) and remembering its origin for the written field."""
    import copy

    rest = []
    for s in stmts:
        before_b, before_p = copy.deepcopy(board), copy.deepcopy(product)
        tmp_notes: list[str] = []
        left = _typed([s], board, product, tmp_notes, Path(s.origin))
        notes.extend(tmp_notes)
        if left:
            rest.extend(left)
            continue
        changed = []
        for owner, old, new in ((board_key, before_b, board), ("product", before_p, product)):
            fo, fn = _flat(old), _flat(new)
            for kp, v in fn.items():
                if fo.get(kp) == v:
                    continue
                if kp == ("_artifact_name",):  # becomes the product's release.artifact_name
                    changed.append(f"release.artifact_name: {v!r}")
                    continue
                origins.setdefault(owner, {})[kp] = s.origin
                changed.append(f"{'.'.join(map(str, kp))}: {list(v) if isinstance(v, tuple) else v!r}")
        what = ", ".join(changed) or "a field it already had"
        notes.append(f"{s.origin}: {s.key} {s.op} \"{s.value.strip()}\" imported as {what}")
    return rest


def import_files(files: list[Path], *, product_name: str, out_dir: Path, series: str | None = None,
                 version: str = "0.0.0") -> Imported:
    if not files:
        raise UserError("import-kas needs at least one kas file")
    check_name("product", product_name, "--product")
    notes: list[str] = []
    origins: dict[str, dict[tuple, str]] = {"product": {}}
    configs: list[tuple[Path, dict, TopRepo, kasfiles.KasSource]] = []
    for f in files:
        if not f.is_file():
            raise UserError(f"{f}: is a directory, not a kas file" if f.is_dir()
                            else f"{f}: file not found")
        check_name("board", f.stem, str(f))
        src = kasfiles.read(f)
        notes.extend(src.notes)
        configs.append((f, src.config, top_repo(f), src))
    ser = _series([c for _, c, _, _ in configs], configs[0][2], series)

    product: dict = {"name": product_name, "series": ser}
    boards: dict[str, dict] = {}
    repos_per_board: dict[str, dict[str, dict]] = {}
    stmts_per_board: dict[str, list[_Stmt]] = {}
    for f, cfg, top, src in configs:
        name = f.stem
        if name in boards:
            raise UserError(f"{f}: a second file for board {name!r}")
        machine = cfg.get("machine")
        if not machine:
            raise UserError(f"{f}: no machine (is this a board file?)")
        bo = origins.setdefault(name, {})
        board: dict = {"machine": machine}
        bo[("machine",)] = src.origin("machine")
        if machine != name:
            board["machine_name_differs"] = True
            bo[("machine_name_differs",)] = src.origin("machine")
            notes.append(f"{src.origin('machine')}: board {name!r} builds MACHINE {machine!r}: "
                         "machine_name_differs: true silences validate's board-name check")
        board["series"] = [ser]
        for key in sorted(set(cfg) - IMPORTED_KEYS):
            notes.append(f"{src.origin(key)}: {key} is not imported (buildctl has no field for it)")
        repos_per_board[name] = {rn: _repo(rn, r, ser, top, out_dir, notes, src)
                                 for rn, r in (cfg.get("repos") or {}).items()}
        for rn in repos_per_board[name]:
            bo[("repos", rn)] = src.origin("repos", rn)
        stmts_per_board[name] = _statements(src, notes)
        boards[name] = board

    for key in ("distro", "target"):
        values = {repr(cfg.get(key)) for _, cfg, _, _ in configs}
        if len(values) > 1:
            raise UserError(f"the files use different {key}s ({', '.join(sorted(values))}); "
                            "import them into separate products")
    first, src0 = configs[0][1], configs[0][3]
    product["distro"] = first.get("distro") or "nodistro"
    if first.get("distro"):
        origins["product"][("distro",)] = src0.origin("distro")
    else:
        notes.append(f"{kasfiles.shown(files[0])}: no distro: the product uses 'nodistro', as kas does")
    target = first.get("target") or "core-image-minimal"
    if first.get("target"):
        origins["product"][("target",)] = src0.origin("target")
    else:
        notes.append(f"{kasfiles.shown(files[0])}: no target: the product builds core-image-minimal, "
                     "kas's default")
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
        origins["product"][("repos", rn)] = origins[next(iter(boards))][("repos", rn)]
    product["repos"] = core
    for b, repos in repos_per_board.items():
        own = {}
        for rn, e in repos.items():
            if rn in core:
                extra = [layer for layer in e["layers"] if layer not in core[rn]["layers"]]
                if extra:
                    own[rn] = {"layers": extra}  # more layers of the core repo, as kas writes it
                else:
                    origins[b].pop(("repos", rn), None)
            else:
                own[rn] = e
        boards[b]["repos"] = own

    # statements every board has belong to the product; typed ones go to their fields
    common_stmts = set.intersection(*(set(s) for s in stmts_per_board.values()))
    shared: dict = {"mender": {}}  # board-level fields every board shares
    product_rest = _typed_noted([s for s in stmts_per_board[next(iter(boards))] if s in common_stmts],
                                shared, product, notes, origins, "shared")
    if product_rest:
        product["local_conf"] = _local_conf(product_rest, notes, origins["product"])
    shared_origins = origins.pop("shared", {})
    for key in ("packages", "image_features"):
        if shared.get(key):
            product[key] = shared[key]
            origins["product"].update({kp: o for kp, o in shared_origins.items() if kp[0] == key})
    artifact = shared.get("_artifact_name")
    if artifact:
        origins["product"][("release", "artifact_name")] = next(
            (s.origin for s in common_stmts if s.key == "MENDER_ARTIFACT_NAME"), "")
    for b, stmts in stmts_per_board.items():
        board = boards[b]
        board.setdefault("mender", {})
        rest = _typed_noted([s for s in stmts if s not in common_stmts], board, product, notes,
                            origins, b)
        if rest:
            board["local_conf"] = _local_conf(rest, notes, origins[b])
        for k, v in shared.get("mender", {}).items():
            board["mender"].setdefault(k, v)
        origins[b].update({kp: o for kp, o in shared_origins.items() if kp[0] == "mender"})
        if not board["mender"].get("device_types"):
            board["mender"]["device_types"] = [board["machine"]]
            notes.append(f"{origins[b][('machine',)]}: board {b}: no MENDER_DEVICE_TYPE: device type "
                         f"{board['machine']!r} (meta-mender's default, MACHINE) written explicitly")
        if board.pop("_artifact_name", None):
            raise UserError(f"board {b} sets its own MENDER_ARTIFACT_NAME; buildctl derives it from "
                            "the product's release.artifact_name")
        if board.get("image_features"):
            raise UserError(f"board {b} sets EXTRA_IMAGE_FEATURES; buildctl keeps image features "
                            "per product or variant")
    product["boards"] = list(boards)
    product["release"] = {"version": version, "artifact_name": artifact or "{product}-{version}-{board}"}
    if not artifact:
        notes.append(f"{kasfiles.shown(files[0])}: no MENDER_ARTIFACT_NAME: release.artifact_name is "
                     "buildctl's default {product}-{version}-{board}")
    product.setdefault("sbom", {}).setdefault("spdx", False)
    return Imported(product=product, boards=boards, notes=notes, origins=origins)
