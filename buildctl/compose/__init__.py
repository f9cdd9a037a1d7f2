"""Composition: product + board + variant -> plain kas project files (and the product lock)."""
from buildctl.compose.kasfile import ComposedBoard, compose_board, resolve, stack_repos  # noqa: F401
from buildctl.compose.lockfile import Lock  # noqa: F401
