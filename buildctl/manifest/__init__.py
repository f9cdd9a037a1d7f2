"""Board and product manifests: YAML in, typed model out (see docs/manifests.md)."""
from buildctl.manifest.loader import load_board, load_product  # noqa: F401
from buildctl.manifest.model import (Board, BoardMender, Cache, Product, Ref, Repo,  # noqa: F401
                                     Storage, Variant)
