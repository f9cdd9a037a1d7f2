"""Run every pre-flight check over the boards of a product; findings sorted by board.

Manifest checks first (no I/O), then each board's layer stack read from git objects at the
resolved commits. A layer read once is shared by every board that uses it.
"""
from __future__ import annotations

import re
from dataclasses import replace

from buildctl.compose.kasfile import resolve
from buildctl.compose.lockfile import Lock
from buildctl.errors import UserError
from buildctl.findings import Finding
from buildctl.layers.checks import check_stack
from buildctl.layers.gitfs import GitFS
from buildctl.layers.layerinfo import LayerRef, read_layers
from buildctl.manifest.model import Board, Product
from buildctl.preflight.manifest_checks import board_statements, check_board
from buildctl.repos import RepoCache


def board_layer_refs(product: Product, board: Board, lock: Lock | None,
                     cache: RepoCache) -> tuple[list[LayerRef], list[Finding]]:
    """Which layers (repo, commit, dir) make up the board's stack; problems reaching them."""
    refs: list[LayerRef] = []
    problems: list[Finding] = []
    for name, rr in resolve(product, board, lock, head_of=cache.head).items():
        repo = rr.repo
        src = str(repo.source or "")
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
            problems.append(Finding(board.name, "repo-unavailable", str(exc), src, repo.line))
            continue
        refs += [LayerRef(git_dir, commit, "" if p == "." else p, name) for p in rr.layers]
    return refs, problems


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


def validate_product(product: Product, boards: list[Board], lock: Lock | None,
                     cache: RepoCache, *, layers: bool = True) -> list[Finding]:
    findings: list[Finding] = []
    stacks: dict[str, list[LayerRef]] = {}
    for board in boards:
        findings += check_board(product, board, lock)
        if layers and product.series in board.series:  # else: no stack to check
            stacks[board.name], problems = board_layer_refs(product, board, lock, cache)
            findings += problems
    fs = GitFS()
    try:
        # every board's layers in one go: a layer shared by boards is read once
        all_refs = [r for refs in stacks.values() for r in refs]
        infos = dict(zip(all_refs, read_layers(all_refs, fs=fs, record_errors=True)))
        for board in boards:
            if board.name not in stacks:
                continue
            findings += _targets(product, board, [infos[r] for r in stacks[board.name]])
            findings += _locate_product_fields(product, _dangling_policy(product, board, check_stack(
                board.name, [infos[r] for r in stacks[board.name]], series=product.series,
                machine=board.machine, distro=product.distro, bootloader=board.mender.bootloader,
                manifest_file=str(board.path or ""),
                manifest_lines={"machine": board.line("machine"), "series": board.line("series"),
                                "bootloader": board.line("mender", "bootloader")},
                local_conf=board_statements(product, board, product.variant(None)))))
    finally:
        fs.close()
    return sorted(set(findings), key=lambda f: (f.board, f.file, f.line or 0, f.code, f.message))
