"""BitBake settings generated from the typed manifest fields, grouped in named sections.

What is written comes from the table in buildctl/manifest/bitbake_vars.py; this module only
lays the rows out: one kas ``local_conf_header`` entry per section, in the order kas applies
them (sorted by name), then the free ``local_conf`` of product, variant and board, the more
specific last so that it wins. Cache *paths* (DL_DIR, SSTATE_DIR) are absent: the build
runtime owns them (one source of truth).
"""
from __future__ import annotations

from dataclasses import dataclass

from buildctl.manifest import bitbake_vars
from buildctl.manifest.bitbake_vars import Context
from buildctl.manifest.model import Board, Product, Variant


@dataclass(frozen=True)
class Assignment:
    """One generated ``VAR op "value"`` line, remembering which manifest field it came from."""

    var: str
    value: str
    op: str = "="
    origin: str = ""  # "file:line (field)" for findings

    def render(self) -> str:
        quoted = bitbake_vars.quote(self.value)
        if quoted is None or not self.value.isprintable() or not self.var.isprintable():
            # the loader refuses such values with file:line; reaching here is a bug
            raise ValueError(f"{self.var}: value BitBake could not read back unchanged")
        return f"{self.var} {self.op} {quoted}"


def _origin(obj, *keypath) -> str:
    path = getattr(obj, "path", None)
    line = obj.line(*keypath) if hasattr(obj, "line") else None
    return f"{path}:{line}" if line else str(path or "")


def _row_origin(row: bitbake_vars.Binding, c: Context) -> str:
    owner = c.board if row.scope == "board" else c.product
    return _origin(owner, *row.keypath)


def _free(obj, mapping: dict[str, str], *keypath) -> list[Assignment]:
    return [Assignment(var, str(value), op=getattr(value, "op", "="),
                       origin=_origin(obj, *keypath, var))
            for var, value in mapping.items()]


def sections(product: Product, board: Board, variant: Variant,
             verify_key_path: str | None = None) -> dict[str, list[Assignment]]:
    """The named local.conf sections for one board and variant, in the order kas applies them."""
    c = Context(product, board, variant, verify_key_path)
    secs: dict[str, list[Assignment]] = {}
    for row in bitbake_vars.local_conf_rows():
        value = row.render(c)
        if value is not None:
            secs.setdefault(row.section, []).append(
                Assignment(row.var, value, row.op, origin=_row_origin(row, c)))
    # product-wide first, then the variant, then the board (its own file and the product's
    # board_overrides, merged by the loader): the more specific setting is written later
    secs["50-product"] = _free(product, product.local_conf, "local_conf")
    secs[f"60-variant-{variant.name}"] = _free(product, variant.local_conf, "variants",
                                               variant.name, "local_conf")
    secs["70-board"] = _free(board, board.local_conf, "local_conf")
    return {k: v for k, v in secs.items() if v}


def kas_env(product: Product, board: Board, variant: Variant) -> dict[str, str | None]:
    """kas ``env`` entries: defaults BitBake reads from the environment (the process
    environment wins, which is how ``buildctl build`` passes per-run values), and secrets by
    name only (None: kas forwards the variable if the build's environment has it, and
    ``buildctl build`` resolves the manifest's reference into that environment)."""
    c = Context(product, board, variant)
    env: dict[str, str | None] = {}
    for row in bitbake_vars.env_rows():
        value = row.render(c)
        if value is None:
            continue
        env[row.var] = None if row.where == bitbake_vars.KAS_ENV_SECRET else value
    return env


def render(assignments: list[Assignment]) -> str:
    return "".join(a.render() + "\n" for a in assignments)
