"""The command line: a thin layer over the library.

Each verb lives in ``buildctl/commands/<verb>.py`` and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (a callable taking the parsed args, returning an
exit code). The module docstring is the verb's help text.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from buildctl import __version__, commands
from buildctl.errors import EXIT_USAGE, UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors: one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser with every verb, or with only ``verb`` when it names one (start-up time:
    a verb does not import the libraries of the others)."""
    parser = _Parser(prog="buildctl",
                     description="Declarative manifests to shipped Yocto/Mender releases.")
    parser.add_argument("--version", action="version", version=f"buildctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__)
                   if not m.name.startswith("_"))
    if verb is not None and verb.replace("-", "_") in names:
        names = [verb.replace("-", "_")]
    for name in names:
        importlib.import_module(f"{commands.__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    parser = build_parser(next((a for a in given if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        msg = str(exc)
        if msg:
            print(f"buildctl: error: {msg}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("buildctl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
