"""Composition: product + board + variant -> plain kas project files (and the product lock)."""
from buildctl.compose.kasfile import (ComposedBoard, compose_board, render_board, resolve,  # noqa: F401
                                      stack_repos, write_board)  # noqa: F401
from buildctl.compose.lockfile import Lock  # noqa: F401
