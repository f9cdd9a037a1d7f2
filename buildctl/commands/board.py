"""Board contributions: `board check PATH...` runs meta-mender-community's rules.

PATH is a kas board file (kas/<board>.yml; its includes are read from the same checkout), a
checkout of the community repository (every board, the CI matrix and the layers), or a git
directory read at --rev without a work tree. Rules: revisions pinned to commits, branches on
the LTS series, the mender-full* baseline, MACHINE matching the file name, no variable set
twice with different values in one file, the board in the CI matrix, integration layers named
meta-mender-<suffix> with LAYERSERIES_COMPAT for the series, no deprecated kas keys. Every
finding names file and line; exit 1 when there is one.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from rich.markup import escape

from buildctl.boards import community
from buildctl.boards.check import DirSource, GitSource, Source, board_kind, check_repository
from buildctl.commands._common import add_json_flag, console, print_json
from buildctl.errors import EXIT_PROBLEMS, UserError


def register(sub) -> None:
    p = sub.add_parser("board", help="board contributions (meta-mender-community rules)",
                       description=__doc__)
    verbs = p.add_subparsers(dest="board_command", metavar="VERB")
    verbs.required = True
    c = verbs.add_parser("check", help="check kas board files or a whole checkout", description=__doc__)
    c.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    c.add_argument("--series", help="LTS series the checkout targets (default: its branch name, "
                                    f"else {community.DEFAULT_SERIES})")
    c.add_argument("--rev", help="revision to read when PATH is a git directory (default: HEAD)")
    add_json_flag(c)
    c.set_defaults(func=run_check)


def _is_git_dir(p: Path) -> bool:
    return (p / "objects").is_dir() and (p / "HEAD").is_file() and not (p / ".git").exists()


def _branch(cwd: Path) -> str:
    r = subprocess.run(["git", "-C", str(cwd), "symbolic-ref", "--short", "-q", "HEAD"],
                       capture_output=True, text=True)
    return r.stdout.strip()


def _open(path: Path, rev: str | None) -> tuple[Source, list[str] | None, str]:
    """(source, board files to check or None for all, branch name hint)."""
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if path.is_dir():
        if _is_git_dir(path):
            r = rev or "HEAD"
            hint = r if r != "HEAD" else _branch(path)
            return GitSource(str(path), r), None, hint
        return DirSource(path), None, _branch(path)
    parts = path.resolve().parts
    if community.KAS_DIR in parts[:-1]:
        idx = len(parts) - 1 - list(reversed(parts[:-1])).index(community.KAS_DIR) - 1
        root = Path(*parts[:idx])
    else:
        root = path.resolve().parent
    rel = path.resolve().relative_to(root).as_posix()
    if board_kind(rel) is None and not rel.endswith((".yml", ".yaml")):
        raise UserError(f"{path}: not a kas file (.yml)")
    return DirSource(root), [rel], _branch(root)


def run_check(args) -> int:
    findings = []
    checked = []
    for path in args.paths:
        src, only, hint = _open(path, args.rev)
        series = args.series or community.lts_of(hint) or community.DEFAULT_SERIES
        for f in check_repository(src, series, only):
            loc = f.file
            if isinstance(src, DirSource):
                loc = str(Path(src.root) / f.file) if path.is_file() else str(path / f.file)
            findings.append(type(f)(f.board, f.code, f.message, loc, f.line, f.severity))
        checked.append({"path": str(path), "series": series})
    if args.json:
        print_json({"checked": checked, "ok": not findings, "findings": [f.to_dict() for f in findings]})
    else:
        con = console()
        for f in findings:
            loc = f.location()
            con.print(f"[red]{escape(loc)}[/]: {escape(f.message)} [dim]({f.code})[/]")
        con.print(("[red]" if findings else "[green]") +
                  f"{len(findings)} finding{'s' if len(findings) != 1 else ''}[/]")
    return EXIT_PROBLEMS if findings else 0
