"""Helpers for the content tests: where the shipped files are, and their BitBake
assignments read with buildctl's own parser (conf/layer.conf, distro conf, recipes)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from buildctl.layers import bbconf

ROOT = Path(__file__).resolve().parents[2]
MACHINES = ROOT / "machines"
PRODUCTS = ROOT / "products"
LAYERS = ROOT / "layers"

HEX40 = re.compile(r"^[0-9a-f]{40}$")
SERIES = {"scarthgap", "wrynose"}  # the LTS series buildctl supports

@dataclass(frozen=True)
class Assignment:
    var: str  # as written, overrides included (`INHERIT`, `IMAGE_FSTYPES:remove`)
    op: str
    value: str
    line: int


def _statements(path: Path) -> list[bbconf.Statement]:
    """The file as BitBake reads it (buildctl's own parser, which refuses what BitBake refuses)."""
    return bbconf.parse(path.read_text(), str(path))


def read_assignments(path: Path) -> list[Assignment]:
    """Assignments in a BitBake conf/recipe file, white space in values folded."""
    return [Assignment(st.key, st.op, " ".join(st.value.split()), st.line)
            for st in _statements(path) if st.kind == "assign" and not st.flag]


def values(path: Path) -> dict[str, str]:
    """Last plain value per variable (good enough for files that assign once)."""
    return {a.var: a.value for a in read_assignments(path)}


def directives(path: Path, keyword: str) -> list[str]:
    """Arguments of `require`/`include`/`inherit` lines."""
    return [st.value.strip() for st in _statements(path) if st.kind == keyword]


def load_yaml(path: Path) -> dict:
    with path.open() as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), f"{path}: top level must be a mapping"
    return data


def board_files() -> list[Path]:
    return sorted(MACHINES.glob("*.yml"))


def product_file() -> Path:
    return PRODUCTS / "demo.yml"
