"""The command line: a thin layer over the library.

Each verb lives in ``buildctl/commands/<verb>.py`` and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (a callable taking the parsed args, returning an
exit code). The module docstring is the verb's help text.

The contract, kept here once for every verb: exit 0 ok, 1 problems found, 2 bad input or
usage (one line, no traceback), 130 interrupted, 70 a bug in buildctl (the traceback goes to a
log file, the console gets one line pointing at it). Settings from the environment are read
once, here, and handed to the verbs as ``args.settings``.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from buildctl import __version__, commands
from buildctl.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, UserError
from buildctl.settings import Settings

# Operating-system errors about a path the user named (an output directory that cannot be
# written, a file that is a directory...): the user's to fix, reported in one line.
_USER_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR,
                errno.EEXIST, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG,
                errno.ELOOP, errno.ENOTEMPTY, errno.EXDEV, errno.EBUSY, errno.ETXTBSY}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors: one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_one_line(message)}\n")


def verb_names() -> list[str]:
    """Every verb, from the module names alone (nothing imported): import_kas -> import-kas."""
    return sorted(info.name.replace("_", "-") for info in pkgutil.iter_modules(commands.__path__)
                  if not info.name.startswith("_"))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every verb, or with ``only`` that verb: a command imports what its own
    verb needs, not the whole tool (the user waits for the start of every command)."""
    parser = _Parser(prog="buildctl",
                     description="Declarative manifests to shipped Yocto/Mender releases.",
                     epilog="Exit codes: 0 ok, 1 problems found, 2 bad input or usage, "
                            "130 interrupted, 70 a bug in buildctl (see the log it names).")
    parser.add_argument("--version", action="version", version=f"buildctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in verb_names():
        if only is not None and name != only:
            continue
        module = importlib.import_module(f"{commands.__name__}.{name.replace('-', '_')}")
        module.register(sub)
    return parser


def _verb(argv: list[str]) -> str | None:
    """The verb a command line names, when it names a known one before any option ("" for
    `buildctl --version`, which needs no verb)."""
    if argv[:1] == ["--version"]:
        return ""
    for arg in argv:
        if arg.startswith("-"):
            return None  # --help / --version / a typo: the full parser answers
        return arg if arg in verb_names() else None
    return None


def _quiet_optional_imports() -> None:
    """jsonschema imports every optional format checker installed beside it; rfc3987-syntax
    compiles a grammar when imported (1.7 s on an idle machine, on every command). buildctl's
    schemas use no IRI formats, so the command line does without it."""
    sys.modules.setdefault("rfc3987_syntax", None)


def _one_line(text: str) -> str:
    """Messages end up in terminals and CI logs: one line, no control characters."""
    text = " ".join(str(text).split())
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return text if len(text) <= 2000 else text[:2000] + "..."


def _err(message: str) -> None:
    try:
        print(f"buildctl: error: {_one_line(message)}", file=sys.stderr)
    except (OSError, ValueError):
        pass


def _write_crash_log(settings: Settings, argv: list[str]) -> Path | None:
    """The traceback of an internal error, in the log directory (else the temp directory)."""
    text = (f"buildctl {__version__} internal error\nargv: {argv!r}\npython: {sys.version}\n\n"
            + traceback.format_exc())
    name = f"crash-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    for d in (settings.log_dir, Path(tempfile.gettempdir())):
        try:
            d.mkdir(parents=True, exist_ok=True)
            path = d / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            return path
        except OSError:
            continue
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    settings = Settings.from_environ()
    _quiet_optional_imports()
    try:
        parser = build_parser(_verb(argv))
        args = parser.parse_args(argv)
        args.settings = settings
        return int(args.func(args) or 0)
    except UserError as exc:
        msg = str(exc)
        if msg:
            _err(msg)
        return exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`buildctl ... | head`): not an error; silence the final flush
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except OSError as exc:
        if exc.errno in _USER_ERRNOS and exc.filename is not None:
            where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
            what = exc.strerror or str(exc)
            if exc.errno == errno.EEXIST and not os.path.isdir(exc.filename):
                what = "exists and is not a directory"  # mkdir of an output directory
            _err(f"{where}: {what}")
            return EXIT_USAGE
        return _internal_error(settings, argv)
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001 - the one place bugs are turned into a report
        return _internal_error(settings, argv)


def _internal_error(settings: Settings, argv: list[str]) -> int:
    exc = sys.exc_info()[1]
    log = _write_crash_log(settings, argv)
    where = f"; details in {log}" if log else ""
    _err(f"internal error ({type(exc).__name__}): this is a bug in buildctl, please report it"
         f"{where}")
    return EXIT_INTERNAL
