"""Files buildctl ships beside its code (package data), found the same way from a checkout,
an editable install and a wheel.

- ``containers/``: the builder image inputs (Dockerfile, entry point, package profiles);
- ``layers/``: buildctl's own BitBake layers (``meta-buildctl``, ``meta-buildctl-app``). In a
  checkout ``buildctl/data/layers`` is a link to the repository's ``layers/`` (which the demo
  product uses as a ``path:`` repository); a wheel carries a copy.
"""
from __future__ import annotations

import sys
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
LAYERS = ("meta-buildctl", "meta-buildctl-app")


def containers_dir() -> Path:
    return DATA_DIR / "containers"


def layers_dir() -> Path:
    return DATA_DIR / "layers"


def main(argv: list[str] | None = None) -> int:
    """``python -m buildctl.resources [containers|layers]``: print where the files are."""
    argv = sys.argv[1:] if argv is None else argv
    which = argv[0] if argv else "layers"
    paths = {"containers": containers_dir(), "layers": layers_dir()}
    if which not in paths:
        print(f"usage: python -m buildctl.resources [{'|'.join(paths)}]", file=sys.stderr)
        return 2
    print(paths[which])
    return 0


if __name__ == "__main__":
    sys.exit(main())
