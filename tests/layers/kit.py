"""The yocto-kit: real upstream layer repositories at the shipped product's pins, offline.

It sits beside the checkout (`<repo>/../shared/yocto-kit`) here and in CI. Whether a missing kit
skips (locally) or fails (CI) is tests/helpers/skips.py's one rule.
"""
from __future__ import annotations

from pathlib import Path

from tests.helpers import skips

ROOT = skips.ROOT
KIT = skips.KIT

# kit directory (kas reference-mirror naming) of each repository the tests read
OE_CORE = "git.openembedded.org.openembedded-core"
META_OE = "git.openembedded.org.meta-openembedded"
META_YOCTO = "git.yoctoproject.org.meta-yocto"
MENDER = "github.com.mendersoftware.meta-mender.git"
RPI = "github.com.agherzan.meta-raspberrypi.git"


def need_kit() -> Path:
    """The kit directory; skip (locally) or fail (strict) when it is absent."""
    return skips.kit()


def kit_repo(name: str) -> str:
    return str(skips.kit_repo(name))
