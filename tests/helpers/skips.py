"""The one rule for tests that need something this machine may lack (a tool, root, the kit).

Locally a missing prerequisite skips the test with a reason. Under ``BUILDCTL_TEST_STRICT=1``
(``.ci/run`` sets it itself, so CI never depends on the caller's environment) it fails the
test instead, and tests/conftest.py turns any other skip into a failure as well: nothing in CI
skips silently.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

STRICT_ENV = "BUILDCTL_TEST_STRICT"
ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT.parent / "shared" / "yocto-kit"  # <repo>/../shared/yocto-kit, in CI and locally


def strict() -> bool:
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def missing(what: str, hint: str = "") -> NoReturn:
    """Skip (locally) or fail (strict) because ``what`` is not available here."""
    reason = f"{what} ({hint})" if hint else what
    if strict():
        pytest.fail(f"{reason}; required under {STRICT_ENV}=1", pytrace=False)
    pytest.skip(reason)


def require(condition: bool, what: str, hint: str = "") -> None:
    if not condition:
        missing(what, hint)


def unless(condition: bool, reason: str) -> pytest.MarkDecorator:
    """Marker form, for conditions known at import time (fails under strict via conftest)."""
    return pytest.mark.skipif(not condition, reason=reason)


def tool(name: str, hint: str = "") -> str:
    """Absolute path of the program ``name`` on PATH."""
    path = shutil.which(name)
    if not path:
        missing(f"{name} not installed", hint or f"apt-get install {name}")
    return path


def tools(names: list[str], hint: str = "") -> None:
    """Every program in ``names`` on PATH (one message listing all that are missing)."""
    absent = [n for n in names if not shutil.which(n)]
    if absent:
        missing(f"not installed: {' '.join(absent)}", hint or "see .ci/run")


def root(why: str) -> None:
    if os.geteuid() != 0:
        missing(f"needs root: {why}", "CI runs as root")


def kit() -> Path:
    """The offline copies of the upstream layer repositories, beside the repository checkout."""
    path = KIT.resolve()
    if not path.is_dir():
        missing(f"yocto kit not found at {path}", "<repo>/../shared/yocto-kit")
    return path


def kit_repo(name: str) -> Path:
    """One bare repository of the kit, e.g. ``git.openembedded.org.openembedded-core``."""
    path = kit() / name
    if not path.is_dir():
        missing(f"{name} missing from the yocto kit")
    return path
