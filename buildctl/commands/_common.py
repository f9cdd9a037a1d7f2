"""Helpers shared by the verbs: output for people (rich) and machines (--json), and the
argument checks every verb applies the same way."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


# what may name a file buildctl writes (product, board): no separators, no leading dot


def add_json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def path_arg(text: str) -> Path:
    """An argparse type for paths: the empty string is not the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path")
    if "\0" in text:
        raise argparse.ArgumentTypeError("path contains a NUL byte")
    return Path(text)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)
