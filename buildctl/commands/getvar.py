"""Print BitBake variables as a board's own BitBake resolves them.

Enters each board's build environment the way `buildctl shell` does (checking it out first
when needed) and asks the pinned BitBake: `bitbake-getvar` where it has one, else `bitbake
-e`. Global values by default, a recipe's with --recipe. One board: `VAR="value"` lines;
several boards or --all-boards: a table (board x variable); --json for machines. Secret values
(the tenant token) are never printed. Exit 1 when a board could not be asked or a variable is
not defined there (one line per board and variable on stderr).
"""
from __future__ import annotations

import sys

from buildctl.commands._common import add_json_flag, console, print_json
from buildctl.commands.shell import add_session_args, session_args


def register(subparsers) -> None:
    p = subparsers.add_parser("getvar", help="resolved BitBake variables per board",
                              description=__doc__)
    add_session_args(p)
    p.add_argument("variables", nargs="+", metavar="VAR", help="BitBake variable names")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--board", "-b", action="append", metavar="B",
                       help="ask this board (repeatable)")
    which.add_argument("--all-boards", action="store_true", help="ask every board of the product")
    p.add_argument("--recipe", "-r", metavar="RECIPE",
                   help="the values in this recipe's context (parses every recipe: slower)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from buildctl.builder.session import Session, check_names, check_recipe

    names = check_names(list(dict.fromkeys(args.variables)))
    check_recipe(args.recipe)  # before the board directory and caches are made
    session = Session(session_args(args, [] if args.all_boards else list(dict.fromkeys(args.board))))
    results = [session.getvar(job, names, args.recipe) for job in session.jobs]
    target = session.opened.target
    if args.json:
        print_json({"product": target.name, "variant": target.variant, "recipe": args.recipe,
                    "variables": names, "boards": [r.to_dict() for r in results]})
    elif len(results) == 1 and not args.all_boards:
        for name in names:
            if name in results[0].values:
                sys.stdout.write(f'{name}="{results[0].values[name]}"\n')
    else:
        print_table(results, names)
    return report_errors(results, names)


def table_rows(results, names: list[str]) -> list[list[str]]:
    """One row per board: its value of each variable, or why there is none."""
    rows = []
    for r in results:
        cells = [r.board]
        for n in names:
            cells.append(r.values[n] if n in r.values else
                         "(not defined)" if n in r.errors and "not defined" in r.errors[n]
                         else "(error)")
        rows.append(cells)
    return rows


def print_table(results, names: list[str]) -> None:
    from rich.table import Table

    t = Table(box=None)
    for col in ["board", *names]:
        t.add_column(col, overflow="fold")
    for row in table_rows(results, names):
        t.add_row(*row)
    console().print(t)


def report_errors(results, names: list[str]) -> int:
    err = console(stderr=True)
    problems = 0
    for r in results:
        if r.error:
            problems += 1
            err.print(f"{r.board}: {r.error}", markup=False)
            continue
        for n in names:
            if n in r.errors:
                problems += 1
                err.print(f"{r.board}: {n}: {r.errors[n]}", markup=False)
    return 1 if problems else 0
