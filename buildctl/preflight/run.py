"""Run every pre-flight check over the boards of a product; findings sorted by board.

Manifest checks first (no I/O), then each board's layer stack read from git objects at the
resolved commits. A layer read once is shared by every board that uses it.
"""
from __future__ import annotations

from buildctl.compose.kasfile import resolve
from buildctl.compose.lockfile import Lock
from buildctl.errors import UserError
from buildctl.findings import Finding
from buildctl.layers.checks import check_stack
from buildctl.layers.gitfs import GitFS, GitReadError
from buildctl.layers.layerinfo import LayerInfo, read_layer
from buildctl.manifest.model import Board, Product
from buildctl.preflight.manifest_checks import check_board
from buildctl.repos import RepoCache


def board_layers(product: Product, board: Board, lock: Lock | None, cache: RepoCache,
                 fs: GitFS) -> tuple[list[LayerInfo], list[Finding]]:
    layers: list[LayerInfo] = []
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
            git_dir = cache.ensure_commit(repo, commit)
            for layer_path in rr.layers:
                path = "" if layer_path == "." else layer_path
                layers.append(read_layer(str(git_dir), commit, path, name, fs=fs))
        except (UserError, GitReadError) as exc:
            problems.append(Finding(board.name, "repo-unavailable", str(exc), src, repo.line))
    return layers, problems


def validate_product(product: Product, boards: list[Board], lock: Lock | None,
                     cache: RepoCache, *, layers: bool = True) -> list[Finding]:
    findings: list[Finding] = []
    fs = GitFS()
    try:
        for board in boards:
            findings += check_board(product, board, lock)
            if not layers:
                continue
            stack, problems = board_layers(product, board, lock, cache, fs)
            findings += problems
            findings += check_stack(
                board.name, stack, series=product.series, machine=board.machine,
                distro=product.distro, bootloader=board.mender.bootloader,
                manifest_file=str(board.path or ""),
                manifest_lines={"machine": board.line("machine"), "series": board.line("series"),
                                "bootloader": board.line("mender", "bootloader"),
                                })
    finally:
        fs.close()
    return sorted(set(findings), key=lambda f: (f.board, f.file, f.line or 0, f.code, f.message))
