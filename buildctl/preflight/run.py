"""Run every pre-flight check over the boards of a product; findings sorted by board."""
from __future__ import annotations

from buildctl.compose.lockfile import Lock
from buildctl.findings import Finding
from buildctl.manifest.model import Board, Product
from buildctl.preflight.manifest_checks import check_board
from buildctl.repos import RepoCache


def validate_product(product: Product, boards: list[Board], lock: Lock | None,
                     cache: RepoCache) -> list[Finding]:
    findings: list[Finding] = []
    for board in boards:
        findings += check_board(product, board, lock)
    return sorted(set(findings), key=lambda f: (f.board, f.file, f.line or 0, f.code, f.message))
