"""The yocto-kit: real upstream layer repositories at the shipped product's pins, offline.

It sits beside the checkout (`<repo>/../shared/yocto-kit`) here and in CI. Tests that need it
call `need_kit()`: without the kit they skip locally and fail under CI=true (never silently).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT.parent / "shared" / "yocto-kit"

# kit directory (kas reference-mirror naming) of each repository the tests read
OE_CORE = "git.openembedded.org.openembedded-core"
META_OE = "git.openembedded.org.meta-openembedded"
META_YOCTO = "git.yoctoproject.org.meta-yocto"
MENDER = "github.com.mendersoftware.meta-mender.git"
RPI = "github.com.agherzan.meta-raspberrypi.git"


def need_kit() -> Path:
    """The kit directory; skip (locally) or fail (CI=true) when it is absent."""
    if not (KIT / OE_CORE).is_dir():
        msg = f"yocto-kit not found at {KIT} (expected beside the checkout: ../shared/yocto-kit)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return KIT


def kit_repo(name: str) -> str:
    return str(need_kit() / name)
