"""Run every pre-flight check over the boards of a product; findings sorted by board.

Each board's layer stack is read from git objects at the resolved commits (a local `path:`
repository without a pinned commit from its work tree, as the build uses it); a layer read
once is shared by every board that uses it. What the manifest leaves to the layers (Mender
storage, sizes, image types, device type) is taken from the layers' own configuration, so the
manifest checks judge the values the build will really use.

Causes, not avalanches: a repository that cannot be read is one finding naming every board it
affects, and the checks that need that board's whole stack (machine, dependencies, targets,
Mender defaults) are skipped for those boards instead of reporting what follows from it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from dataclasses import dataclass, replace

from buildctl.compose.kasfile import resolve, stack_repos
from buildctl.compose.lockfile import Lock
from buildctl.errors import UserError
from buildctl.findings import Finding
from buildctl.layers.checks import check_stack
from buildctl.layers.gitfs import WORKTREE, GitFS
from buildctl.layers.layerinfo import LayerInfo, LayerRef, read_layers
from buildctl.layers.settings import MenderSettings, board_datastore, mender_settings
from buildctl.manifest.model import Board, Product
from buildctl.preflight.manifest_checks import board_statements, check_board
from buildctl.repos import RepoCache

# Manifest findings about Mender values the layers may supply (judged on the effective board).
MENDER_CODES = frozenset({"mender-device-type", "mender-storage", "mender-bootloader", "mender-artifact"})
# Findings that only restate that a repository could not be read.
CAUSE_CODES = frozenset({"repo-unavailable", "repo-unreadable", "layer-unreadable"})


@dataclass(frozen=True)
class StackRefs:
    refs: list[LayerRef]
    problems: list[Finding]
    local_roots: dict[str, str]  # display name of a local repo -> its directory
    declared: dict[str, tuple[str, int | None]]  # repo name -> manifest file and line
    pins: dict[str, tuple[str, str, str | None]] = None  # repo name -> (git dir, commit, tag)


def board_layer_refs(product: Product, board: Board, lock: Lock | None,
                     cache: RepoCache) -> tuple[list[LayerRef], list[Finding]]:
    """Which layers (repo, commit, dir) make up the board's stack; problems reaching them."""
    s = _stack_refs(product, board, lock, cache)
    return s.refs, s.problems


def _stack_refs(product: Product, board: Board, lock: Lock | None, cache: RepoCache) -> StackRefs:
    refs: list[LayerRef] = []
    problems: list[Finding] = []
    roots: dict[str, str] = {}
    declared: dict[str, tuple[str, int | None]] = {}
    pins: dict[str, tuple[str, str, str | None]] = {}
    for name, rr in resolve(product, board, lock).items():
        repo = rr.repo
        src = str(repo.source or "")
        declared[name] = (src, repo.line)
        if repo.is_local and rr.commit is None:
            # used as it is on disk: check the work tree, uncommitted changes included
            roots[name] = str(repo.path)
            refs += [LayerRef(str(repo.path), WORKTREE, "" if p == "." else p, name) for p in rr.layers]
            continue
        try:
            commit = rr.commit
            if commit is None and rr.branch:  # floating: reported already; check what we have
                commit = cache.branch_head(repo, rr.branch, update=not cache.offline)
            elif commit is None and rr.tag:
                commit = cache.tag_commit(repo, rr.tag)
            if commit is None:
                problems.append(Finding(board.name, "repo-series", f"repo {name} has no ref for "
                                        f"series {product.series}", src, repo.line))
                continue
            git_dir = str(cache.ensure_commit(repo, commit))
        except UserError as exc:
            msg = str(exc)
            if getattr(exc, "dubious", False):
                problems.append(Finding(board.name, "repo-unreadable", msg, src, repo.line))
            else:
                problems.append(Finding(board.name, "repo-unavailable", msg, src, repo.line))
            continue
        if repo.is_local:
            roots[name] = str(repo.path)
        pins[name] = (git_dir, commit, rr.tag if commit == rr.commit or rr.commit is None else None)
        refs += [LayerRef(git_dir, commit, "" if p == "." else p, name) for p in rr.layers]
    return StackRefs(refs, problems, roots, declared, pins)


def signature_findings(product: Product, boards: list[Board], stacks: dict[str, StackRefs]
                       ) -> list[Finding]:
    """Every pin a signed repository is built from, verified once by git against the product's
    allowed signers: one finding per refused pin, naming the boards that use it."""
    from buildctl.layers.signatures import SignatureVerifier

    wanted: dict[tuple, list[str]] = {}
    for board in boards:
        s = stacks.get(board.name)
        if s is None:
            continue
        for name, (repo, _layers) in stack_repos(product, board).items():
            signers = product.signature_policy(repo)
            if signers is None or name not in (s.pins or {}):
                continue
            git_dir, commit, tag = s.pins[name]
            key = (name, git_dir, commit, tag, tuple(x.name for x in signers))
            wanted.setdefault(key, []).append(board.name)
    out: list[Finding] = []
    with SignatureVerifier() as verifier:
        for (name, git_dir, commit, tag, names), on in sorted(wanted.items()):
            repo = product.repos.get(name) or next(b.repos[name] for b in boards if name in b.repos)
            signers = tuple(product.signers[n] for n in names)
            v = verifier.verify(git_dir, commit, signers, tag=tag)
            if v.ok:
                continue
            who = f" (signer: {v.signer})" if v.signer else ""
            out.append(Finding(", ".join(sorted(set(on))), "source-signature",
                               f"repo {name}: {v.what} {v.reason}{who}; allowed signers: "
                               f"{', '.join(names)}", str(repo.source or product.path), repo.line))
    return out


def _locate_product_fields(product: Product, findings: list[Finding]) -> list[Finding]:
    """Findings about the product's distro point at the product manifest, not the board's."""
    return [replace(f, file=str(product.path), line=product.line("distro"))
            if f.code == "distro-missing" else f for f in findings]


def _dangling_policy(product: Product, board: Board, findings: list[Finding]) -> list[Finding]:
    """What BitBake does with dangling bbappends given the board's configuration: BBMASK
    hides masked files (regular expressions searched in the file's path), and
    BB_DANGLINGAPPENDS_WARNONLY turns the rest into warnings."""
    masks: list[re.Pattern] = []
    warn_only = False
    for st in board_statements(product, board, product.variant(None)):
        if st.var == "BBMASK" and st.operation != "remove":
            for m in st.value.split():
                try:
                    masks.append(re.compile(m))
                except re.error:
                    pass  # BitBake ignores (and warns about) an invalid mask as well
        elif st.key == "BB_DANGLINGAPPENDS_WARNONLY":
            warn_only = st.value.strip().lower() in ("1", "yes", "true")
    out = []
    for f in findings:
        if f.code == "bbappend-dangling":
            if any(m.search(f.file) for m in masks):
                continue
            if warn_only:
                f = replace(f, severity="warning")
        out.append(f)
    return out


def _targets(product: Product, board: Board, stack: list) -> list[Finding]:
    """Each image target is a recipe of the board's stack (else bitbake stops after parsing:
    Nothing PROVIDES '<target>')."""
    if any(info.problems for info in stack):
        return []  # an unreadable layer already explains what is missing
    recipes = {r.pn for info in stack for r in info.recipes}
    return [Finding(board.name, "target-missing",
                    f"image {t!r} is not a recipe of any layer of this board "
                    f"(bitbake: Nothing PROVIDES '{t}')", str(product.path), product.line("target"))
            for t in product.targets if t not in recipes]


def layer_mender_settings(product: Product, board: Board, stack: list[LayerInfo]) -> MenderSettings:
    """meta-mender's settings for the board as its layers and the composed local.conf set them."""
    d = board_datastore(stack, machine=board.machine, distro=product.distro,
                        local_conf=board_statements(product, board, product.variant(None)))
    return mender_settings(d)


def effective_board(board: Board, layers: MenderSettings) -> tuple[Board, list[str]]:
    """The board with every Mender value the manifest leaves out taken from its layers; and
    the names of the fields so filled (for the findings' wording)."""
    m, s = board.mender, board.mender.storage
    filled: list[str] = []

    def pick(field: str, mine, theirs):
        if mine in (None, (), "") and theirs not in (None, (), ""):
            filled.append(field)
            return theirs
        return mine

    align_kb = layers.alignment_bytes // 1024 if layers.alignment_bytes else None
    storage = replace(s, device=pick("storage.device", s.device, layers.device),
                      total_mb=pick("storage.total_mb", s.total_mb, layers.total_mb),
                      boot_mb=pick("storage.boot_mb", s.boot_mb, layers.boot_mb),
                      data_mb=pick("storage.data_mb", s.data_mb, layers.data_mb),
                      alignment_kb=pick("storage.alignment_kb", s.alignment_kb, align_kb))
    mender = replace(m, storage=storage,
                     device_types=pick("device_types", m.device_types, layers.device_types),
                     image_types=pick("image_types", m.image_types, layers.image_types),
                     bootloader=pick("bootloader", m.bootloader, layers.bootloader))
    return replace(board, mender=mender), filled


def _mender_findings(product: Product, board: Board, lock: Lock | None,
                     layers: MenderSettings | None) -> list[Finding]:
    if layers is None:
        return [f for f in check_board(product, board, lock) if f.code in MENDER_CODES]
    eff, filled = effective_board(board, layers)
    out = []
    for f in check_board(product, eff, lock):
        if f.code not in MENDER_CODES:
            continue
        if filled:
            f = replace(f, message=f"{f.message} (with the layers' defaults for what the manifest "
                        f"leaves out: {', '.join(filled)})")
        out.append(f)
    return out


def _without_layer_defaults(board: Board, findings: list[Finding]) -> list[Finding]:
    """When the layers cannot be read, what the manifest leaves to them is unknown, not wrong:
    drop the findings about those values (the unreadable repository is the finding)."""
    m, s = board.mender, board.mender.storage
    out = []
    for f in findings:
        if f.code == "mender-device-type" and not m.device_types:
            continue
        if f.code == "mender-artifact" and not m.image_types:
            continue
        if f.code == "mender-storage" and (s.device is None or s.total_mb is None or s.data_mb is None) \
                and ("missing" in f.message or "needs" in f.message):
            continue
        out.append(f)
    return out


def _merge_causes(findings: list[Finding]) -> list[Finding]:
    """One finding per unreadable repository, naming every board it affects."""
    groups: dict[tuple, list[str]] = {}
    rest = []
    for f in findings:
        if f.code in CAUSE_CODES:
            groups.setdefault((f.code, f.message, f.severity), []).append(f)
        else:
            rest.append(f)
    for (code, message, severity), same in groups.items():
        names = sorted({f.board for f in same})
        first = min(same, key=lambda f: (f.file, f.line or 0))  # where the repo is declared
        file, line = first.file, first.line
        skipped = "; layer checks of these boards were skipped" if len(names) > 1 else \
            "; layer checks of this board were skipped"
        rest.append(Finding(", ".join(names), code, message + skipped, file, line, severity))
    return rest


def _real_paths(findings: list[Finding], roots: dict[str, str]) -> list[Finding]:
    """Layer files of local repositories named by their path on disk, not `<repo id>/...`."""
    if not roots:
        return findings
    out = []
    for f in findings:
        name, sep, rest = f.file.partition("/")
        if sep and name in roots:
            f = replace(f, file=os.path.join(roots[name], rest))
        out.append(f)
    return out


def relative_to_cwd(findings: list[Finding], cwd: str | None = None) -> list[Finding]:
    """Absolute file names in findings made relative to the current directory (what a user
    can paste), when the file is below it or near it."""
    cwd = cwd or os.getcwd()
    out = []
    for f in findings:
        if f.file and os.path.isabs(f.file):
            f = replace(f, file=os.path.relpath(f.file, cwd))
        out.append(f)
    return out


_IMPORT_MARK = re.compile(r"#\s*kas:\s*(\S+?)(?::(\d+))?\s*$")


def with_import_origins(findings: list[Finding]) -> list[Finding]:
    """Findings on lines import-kas wrote also name the kas file and line the value came from
    (the manifest line ends with `# kas: <file>:<line>`, relative to the manifest)."""
    cache: dict[str, list[str]] = {}
    out = []
    for f in findings:
        if f.file and f.line:
            if f.file not in cache:
                try:
                    with open(f.file, encoding="utf-8", errors="replace") as fh:
                        cache[f.file] = fh.read(1 << 20).splitlines()
                except OSError:
                    cache[f.file] = []
            lines = cache[f.file]
            m = _IMPORT_MARK.search(lines[f.line - 1]) if 0 < f.line <= len(lines) else None
            if m:
                src = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(f.file)), m.group(1)))
                f = replace(f, message=f"{f.message} (imported from {src}"
                                       + (f":{m.group(2)})" if m.group(2) else ")"))
        out.append(f)
    return out


def validate_product(product: Product, boards: list[Board], lock: Lock | None,
                     cache: RepoCache, *, layers: bool = True) -> list[Finding]:
    findings: list[Finding] = []
    stacks: dict[str, StackRefs] = {}
    for board in boards:
        findings += [f for f in check_board(product, board, lock) if f.code not in MENDER_CODES]
        if layers and product.series in board.series:  # else: no stack to check
            stacks[board.name] = _stack_refs(product, board, lock, cache)
            findings += stacks[board.name].problems
    roots = {k: v for s in stacks.values() for k, v in s.local_roots.items()}
    findings += signature_findings(product, boards, stacks)
    fs = GitFS()
    try:
        # every board's layers in one go: a layer shared by boards is read once
        all_refs = [r for s in stacks.values() for r in s.refs]
        infos = dict(zip(all_refs, read_layers(all_refs, fs=fs, record_errors=True)))
        for board in boards:
            s = stacks.get(board.name)
            if s is None:
                findings += [f for f in check_board(product, board, lock) if f.code in MENDER_CODES]
                continue
            stack = [infos[r] for r in s.refs]
            unreadable = [p for info in stack for p in info.problems if p.code in CAUSE_CODES]
            if s.problems or unreadable:
                # the stack is incomplete: report why (once per repository), and only the
                # problems of the layers that could be read
                for info in stack:
                    for p in info.problems:
                        file, line = s.declared.get(info.repo, (p.file, p.line)) \
                            if p.code in CAUSE_CODES else (p.file, p.line)
                        findings.append(Finding(board.name, p.code, p.message, file, line))
                findings += _without_layer_defaults(board, _mender_findings(product, board, lock, None))
                continue
            findings += _mender_findings(product, board, lock,
                                         layer_mender_settings(product, board, stack))
            findings += _targets(product, board, stack)
            findings += _locate_product_fields(product, _dangling_policy(product, board, check_stack(
                board.name, stack, series=product.series,
                machine=board.machine, distro=product.distro,
                bootloader=board.mender.bootloader or None,
                manifest_file=str(board.path or ""),
                manifest_lines={"machine": board.line("machine"), "series": board.line("series"),
                                "bootloader": board.line("mender", "bootloader")},
                local_conf=board_statements(product, board, product.variant(None)))))
    finally:
        fs.close()
    findings = _real_paths(_merge_causes(findings), roots)
    return sorted(set(findings), key=lambda f: (f.board, f.file, f.line or 0, f.code, f.message))


def preflight_for_build(product_path, *, boards: list[str] | None, series: str | None,
                        lock_path, repo_ref_dir, git_cache: Path | None = None,
                        signs: bool = False, settings=None,
                        pkcs11_module: str | None = None) -> list[Finding]:
    """What `buildctl build` runs before any container starts: validate of the boards it will
    build (findings relative to the current directory). A plain kas file has nothing to check."""
    from buildctl.builder.jobs import is_kas_file
    from buildctl.compose import lockfile
    from buildctl.manifest import load_product

    if not os.path.isfile(product_path) or is_kas_file(product_path):
        return []  # build itself says what is wrong with the path; a kas file has no manifest
    from buildctl.compose import verifykey

    product = load_product(product_path)
    if series:
        product = product.with_series(series)
    # a key that cannot be read is bad input whatever the layers say: refused first
    verifykey.public_pem(product)
    if signs and product.mender.signing_key:
        from buildctl.ota.mender.keys import load_private_key

        try:
            load_private_key(verifykey.absolute_ref(product, product.mender.signing_key),
                             "mender.signing_key", pkcs11_module=pkcs11_module)
        except UserError as exc:
            raise UserError(f"{exc} (artifacts are signed on this host after the build)") from None
    lock = lockfile.find(product, lock_path)
    from buildctl.layers.gitauth import GitAuth

    auth = GitAuth.for_product(product, agent_socket=getattr(settings, "ssh_auth_sock", None),
                               credential_helper=getattr(settings, "git_credential_helper", None),
                               home=getattr(settings, "home", None))
    cache = RepoCache(ref_dir=repo_ref_dir, auth=auth,
                      **({"cache_dir": git_cache} if git_cache else {}))
    return with_import_origins(relative_to_cwd(
        validate_product(product, product.select_boards(boards or None), lock, cache)))
