"""Run configuration text through BitBake's own datastore (the `bb` library) as a test oracle.

`bitbake-setup` ships `bb` but not the `hashserv`/`prserv` packages that `bb.parse` imports at
load time; the parser never uses them for plain configuration files, so empty stand-ins are
enough. `available()` says whether the oracle can run here.
"""
from __future__ import annotations

import os
import sys
import tempfile
import types


def _load():
    for name in ("hashserv", "hashserv.client", "prserv", "prserv.serv"):
        sys.modules.setdefault(name, types.ModuleType(name))
    import bb.data  # noqa: F401
    import bb.parse  # noqa: F401
    from bb.parse.parse_py import ConfHandler

    return bb, ConfHandler


def available() -> bool:
    try:
        _load()
        return True
    except Exception:  # pragma: no cover - depends on the environment
        return False


def evaluate(text: str, names: list[str], initial: dict[str, str] | None = None) -> dict[str, str | None]:
    """Parse text as a .conf file with BitBake and return getVar(name) for each name."""
    bb, ConfHandler = _load()
    import logging

    logging.getLogger("BitBake").setLevel(logging.ERROR)
    d = bb.data.init()
    for k, v in (initial or {}).items():
        d.setVar(k, v)
    fd, path = tempfile.mkstemp(suffix=".conf")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        ConfHandler.handle(path, d, False)
    finally:
        os.unlink(path)
    return {n: d.getVar(n) for n in names}
