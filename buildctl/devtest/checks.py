"""The smoke checks of a product on a board, from checks.yml (the one place they are written)."""
from __future__ import annotations

from importlib import resources

import yaml

from buildctl.devtest.qemu import Check

SPECIAL = set("\\.^$*+?()[]{}|")


def ere_escape(text: str) -> str:
    """text as a regular expression that Python's re and POSIX ERE (grep -E) both read literally."""
    return "".join("\\" + ch if ch in SPECIAL else ch for ch in text)


def _entries() -> list[dict]:
    return yaml.safe_load(resources.files(__package__).joinpath("checks.yml").read_text())


def for_board(product, board: str, variant: str | None = None) -> list[Check]:
    name = product.artifact_name(board, variant)
    out = []
    for e in _entries():
        if e.get("type"):
            continue  # driven by buildctl, not a command (see types())
        expect = e.get("expect_output")
        if expect is not None:
            expect = expect.replace("{artifact_name}", ere_escape(name))
        out.append(Check(name=e["name"], command=e["command"], expect_exit=e.get("expect_exit", 0),
                         expect_output=expect, timeout=float(e.get("timeout", 30))))
    return out


def types() -> set[str]:
    """The step types beyond shell commands that every product gets (e.g. ota-update)."""
    return {e["type"] for e in _entries() if e.get("type")}


def descriptions() -> dict[str, str]:
    return {e["name"]: e.get("description", "") for e in _entries()}
