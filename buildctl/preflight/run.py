"""Run every pre-flight check over the boards of a product; findings sorted by board.

Manifest checks first (no I/O), then each board's layer stack read from git objects at the
resolved commits. A layer read once is shared by every board that uses it.
"""
from __future__ import annotations

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


def _dangling_policy(product: Product, board: Board, findings: list[Finding]) -> list[Finding]:
    """BB_DANGLINGAPPENDS_WARNONLY in the board's configuration makes BitBake only warn."""
    settings = {**board.local_conf, **product.local_conf}
    for v in product.variants.values():
        settings.update(v.local_conf)
    if settings.get("BB_DANGLINGAPPENDS_WARNONLY", "").strip().lower() not in ("1", "yes", "true"):
        return findings
    return [replace(f, severity="warning") if f.code == "bbappend-dangling" else f for f in findings]


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
            findings += _dangling_policy(product, board, check_stack(
                board.name, [infos[r] for r in stacks[board.name]], series=product.series,
                machine=board.machine, distro=product.distro, bootloader=board.mender.bootloader,
                manifest_file=str(board.path or ""),
                manifest_lines={"machine": board.line("machine"), "series": board.line("series"),
                                "bootloader": board.line("mender", "bootloader")},
                local_conf=board_statements(product, board, product.variant(None))))
    finally:
        fs.close()
    return sorted(set(findings), key=lambda f: (f.board, f.file, f.line or 0, f.code, f.message))
