"""Helpers for the content tests: where the shipped files are and a small reader
for BitBake assignments (conf/layer.conf, distro conf, recipes)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MACHINES = ROOT / "machines"
PRODUCTS = ROOT / "products"
LAYERS = ROOT / "layers"

HEX40 = re.compile(r"^[0-9a-f]{40}$")
SERIES = {"scarthgap", "wrynose"}  # the LTS series buildctl supports

# `VAR = "value"`, `VAR ?= ...`, `VAR += ...`, `VAR:append = ...`; no python/functions.
_ASSIGN = re.compile(
    r'^(?P<var>[A-Za-z0-9_${}\-/.:+]+?)\s*(?P<op>\?\?=|\?=|\+=|=\+|\.=|=\.|:=|=)\s*"(?P<val>.*)"\s*$'
)


@dataclass(frozen=True)
class Assignment:
    var: str
    op: str
    value: str
    line: int


def read_assignments(path: Path) -> list[Assignment]:
    """Assignments in a BitBake conf/recipe file, line continuations joined.
    Lines that are not simple assignments (functions, require, inherit) are skipped."""
    out: list[Assignment] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        start = i
        text = lines[i]
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text[:-1] + " " + lines[i].strip()
        i += 1
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _ASSIGN.match(stripped)
        if m:
            out.append(Assignment(m["var"], m["op"], " ".join(m["val"].split()), start + 1))
    return out


def values(path: Path) -> dict[str, str]:
    """Last plain value per variable (good enough for files that assign once)."""
    return {a.var: a.value for a in read_assignments(path)}


def directives(path: Path, keyword: str) -> list[str]:
    """Arguments of `require`/`include`/`inherit` lines."""
    out = []
    for line in path.read_text().splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0] == keyword:
            out.append(parts[1].strip())
    return out


def load_yaml(path: Path) -> dict:
    with path.open() as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), f"{path}: top level must be a mapping"
    return data


def board_files() -> list[Path]:
    return sorted(MACHINES.glob("*.yml"))


def product_file() -> Path:
    return PRODUCTS / "demo.yml"
