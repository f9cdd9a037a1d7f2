"""From a product manifest (or a plain kas file) to the per-board jobs the runner executes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from buildctl.build.runner import BoardJob
from buildctl.errors import UserError


@dataclass
class Target:
    """What ``buildctl build`` was pointed at, reduced to what the build needs."""

    name: str
    series: str
    root: Path  # repository whose last commit gives SOURCE_DATE_EPOCH
    jobs: list[BoardJob]
    variant: str
    cache: object | None = None  # the manifest's cache section (None: defaults)
    runtime: str | None = None
    image: str | None = None


def is_kas_file(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and isinstance(data.get("header"), dict) and "repos" in data


def from_kas_file(path: Path, boards: list[str], variant: str | None) -> Target:
    """A plain kas project as a one-board product (what `kas build FILE` would build)."""
    data = yaml.safe_load(path.read_text())
    machine = data.get("machine") or "qemux86-64"
    if boards and boards != [machine]:
        raise UserError(f"--board: {path} builds only {machine}")
    repos = {}
    for name, spec in (data.get("repos") or {}).items():
        spec = spec or {}
        entry = {k: spec[k] for k in ("url", "path", "commit") if spec.get(k)}
        repos[name] = entry
    job = BoardJob(name=machine, machine=machine, variant=variant or "", kas_file=path.resolve(),
                   repos=repos)
    return Target(name=path.stem, series="", root=path.resolve().parent, jobs=[job],
                  variant=variant or "")


def from_product(path: Path, boards: list[str], variant: str | None, compose_dir: Path) -> Target:
    try:
        from buildctl.compose import compose_board
        from buildctl.manifest import load_product
    except ImportError as exc:
        raise UserError(f"{path}: product manifests need buildctl.manifest/compose ({exc})") from None
    product = load_product(path)
    names = boards or list(product.boards)
    unknown = [b for b in names if b not in product.boards]
    if unknown:
        raise UserError(f"--board: {', '.join(unknown)} not in product {product.name} "
                        f"(boards: {', '.join(product.boards)})")
    variants = getattr(product, "variants", None) or {}
    variant = variant or getattr(product, "default_variant", None) or \
        (next(iter(variants)) if variants else "")
    if variants and variant not in variants:
        raise UserError(f"--variant: {variant!r} not in product {product.name} "
                        f"(variants: {', '.join(variants)})")
    jobs = []
    for name in names:
        board = product.boards[name]
        composed = compose_board(product, name, variant, compose_dir / f"{name}-{variant}")
        jobs.append(BoardJob(name=name, machine=composed.machine, variant=variant,
                             kas_file=Path(composed.kas_file), repos=dict(composed.repos),
                             tune=getattr(board, "tune", "") or "",
                             family=getattr(board, "family", "") or ""))
    return Target(name=product.name, series=getattr(product, "series", "") or "",
                  root=Path(getattr(product, "root", path.parent)), jobs=jobs, variant=variant,
                  cache=getattr(product, "cache", None), runtime=getattr(product, "runtime", None),
                  image=getattr(product, "container_image", None))


def load_target(path: Path, boards: list[str], variant: str | None, compose_dir: Path) -> Target:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if is_kas_file(path):
        return from_kas_file(path, boards, variant)
    return from_product(path, boards, variant, compose_dir)
