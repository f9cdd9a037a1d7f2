"""Scaffold a board: machines/<board>.yml, a meta-mender-community contribution, a hub post.

The BSP is probed instead of asking wherever it can answer: the MACHINE's configuration is
read from git objects at the pinned commit and evaluated with its includes over the layer
stack (kernel image type, IMAGE_FSTYPES, serial console, bootloader provider, EFI or U-Boot,
raw flash or block storage); the Mender settings proposed from it can each be overridden by a
flag, the answers file (--answers) or at the prompt. The transcript says where every value
came from. Interactive on a terminal (--non-interactive for scripts); outputs are written
whole or not at all, identical reruns change nothing, and a file that exists with other
content is kept unless --force.

Outputs: --machines-dir/<board>.yml; under --out: contribution/ (the added and changed files,
in meta-mender-community's layout), contribution.patch and hub-post.md. --apply CHECKOUT
commits the contribution to a meta-mender-community work tree (signed off).
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from rich.markup import escape

from buildctl.boards import community, scaffold
from buildctl.boards.answers import BOOTLOADERS, Answers, from_file, merge_flags
from buildctl.boards.base import CommunityBase, git_dir_of, open_base
from buildctl.boards.contribution import apply as apply_commit
from buildctl.boards.contribution import patch as make_patch
from buildctl.boards.resolve import NoPrompts, resolve
from buildctl.commands._common import add_json_flag, console, print_json
from buildctl.errors import UserError
from buildctl.fsutil import write_atomic
from buildctl.manifest.model import Repo
from buildctl.commands._product import repo_cache
from buildctl.repos import RepoAccessError, RepoCache


def register(sub) -> None:
    p = sub.add_parser("new-board", help="scaffold a board and its meta-mender-community contribution",
                       description=__doc__)
    p.add_argument("--answers", type=Path, help="answers file (YAML; see docs/boards.md)")
    p.add_argument("--board", help="board name (default: the MACHINE)")
    p.add_argument("--machine", help="BitBake MACHINE")
    p.add_argument("--description", help="one-line board description")
    p.add_argument("--vendor", help="vendor: kas/include/<vendor>.yml")
    p.add_argument("--series", help=f"Yocto LTS series (default {community.DEFAULT_SERIES})")
    p.add_argument("--bsp", action="append", metavar="URL[,branch=B][,commit=C][,layers=a+b][,name=N]",
                   help="BSP repository (repeatable, in layer order)")
    p.add_argument("--bootloader", choices=BOOTLOADERS, help="bootloader integration (default: probed)")
    p.add_argument("--ubi", action=__import__("argparse").BooleanOptionalAction, default=None,
                   help="UBI on raw flash (default: probed)")
    p.add_argument("--device", help="storage device, e.g. /dev/mmcblk0")
    p.add_argument("--total-mb", type=int, help="storage size in MiB")
    p.add_argument("--boot-mb", type=int, help="boot partition size in MiB")
    p.add_argument("--data-mb", type=int, help="data partition size in MiB")
    p.add_argument("--integration-layer", help="meta-mender-<suffix> layer name")
    p.add_argument("--mtdids", help="UBI boards: MENDER_MTDIDS")
    p.add_argument("--fstypes-remove", metavar="'TYPE ...'",
                   help="BSP image types to drop with IMAGE_FSTYPES:remove (default: the probed "
                        "disk images the Mender image replaces; '' keeps all)")
    p.add_argument("--machines-dir", type=Path, default=Path("machines"),
                   help="where machines/<board>.yml goes (default: machines)")
    p.add_argument("--out", type=Path, help="output directory (default: out/new-board/<board>)")
    p.add_argument("--community", type=Path,
                   help="meta-mender-community checkout or git directory to contribute to "
                        "(default: the series branch upstream, from the mirrors or the cache)")
    p.add_argument("--community-rev", help="revision of --community (default: HEAD / the series branch)")
    p.add_argument("--apply", type=Path, metavar="CHECKOUT",
                   help="commit the contribution to this meta-mender-community work tree")
    p.add_argument("--force", action="store_true", help="overwrite files that exist with other content")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--interactive", action="store_true", help="ask even when stdin is not a terminal")
    mode.add_argument("--non-interactive", action="store_true", help="never ask; take every proposal")
    p.add_argument("--repo-ref-dir", type=Path, default=None,
                   help="local reference mirrors of the repositories (like KAS_REPO_REF_DIR)")
    p.add_argument("--offline", action="store_true", help="never fetch; use mirrors and the cache")
    add_json_flag(p)
    p.set_defaults(func=run)


class RichPrompter:
    """Asks on the terminal: each question with its one-line explanation and a default."""

    interactive = True

    def __init__(self, con):
        self.con = con

    def ask(self, key, question, why, default, *, choices=None, kind=str):
        from rich.prompt import IntPrompt, Prompt

        if not question:
            return default
        self.con.print(f"[dim]{escape(why)}[/]")
        try:
            if kind is bool:
                got = Prompt.ask(question, choices=["y", "n"], default="y" if default else "n",
                                 console=self.con)
                return got == "y"
            if kind is int:
                return IntPrompt.ask(question, default=default, console=self.con)
            kw = {"choices": list(choices)} if choices else {}
            got = Prompt.ask(question, default=default if default is not None else "",
                             console=self.con, **kw)
        except EOFError:
            raise UserError(f"input ended while asking: {question}") from None
        return got if got != "" or default is not None else None


def _base(args, series: str, cache: RepoCache) -> CommunityBase:
    if args.community:
        path = Path(args.community)
        if (path / "objects").is_dir() and (path / "HEAD").is_file():  # a git directory (bare)
            return open_base(path, args.community_rev or series)
        return open_base(git_dir_of(path), args.community_rev or "HEAD")
    repo = Repo("meta-mender-community", community.COMMUNITY_URL, None, {}, ())
    try:
        head = cache.branch_head(repo, series)
    except RepoAccessError as e:
        raise UserError(f"meta-mender-community: {e} (give --community or --repo-ref-dir)") from None
    base = open_base(cache.git_dir(repo), args.community_rev or head)
    base.branch = series
    return base


def _include_url(base: CommunityBase, spec, rid: str) -> str:
    import yaml

    data = yaml.safe_load(base.read(f"{community.INCLUDE_DIR}/{spec.vendor}.yml") or "") or {}
    return str(((data.get("repos") or {}).get(rid) or {}).get("url") or "")


def _plan(targets: dict[Path, str], force: bool) -> tuple[list[Path], list[Path]]:
    """(files to write, files already up to date); refuses to overwrite without --force."""
    write, same = [], []
    for path, text in targets.items():
        if path.is_file():
            if path.read_text() == text:
                same.append(path)
                continue
            if not force:
                raise UserError(f"{path}: exists with other content (use --force to overwrite)")
        elif path.exists():
            raise UserError(f"{path}: exists and is not a file")
        write.append(path)
    return write, same


def run(args) -> int:
    answers = from_file(args.answers) if args.answers else Answers()
    answers = merge_flags(answers, args)
    err = console(stderr=True)
    interactive = args.interactive or (not args.non_interactive and sys.stdin.isatty() and not args.json)
    prompter = RichPrompter(err) if interactive else NoPrompts()
    cache = repo_cache(args, offline=args.offline)
    res = resolve(answers, cache, prompter)
    spec = res.spec
    base = _base(args, spec.series, cache)

    core_layer = None
    if res.probe.layer.repo in {c.name for c in community.CORE_STACK} and res.probe.layer.path != "meta":
        core_layer = (res.probe.layer.repo, res.probe.layer.path)
    machine_text = scaffold.machine_manifest(spec, base, res.probe.conf_file, core_layer)
    pins: dict[str, str] = {}
    unpinned: list[str] = []
    for rid, branch in scaffold.floating_in_include(spec, base):
        try:
            pins[rid] = cache.branch_head(Repo(rid, _include_url(base, spec, rid), None, {}, ()), branch)
            res.transcript.append((f"pin {rid}", pins[rid][:12], f"branch head of {branch} "
                                   f"(floating in kas/include/{spec.vendor}.yml)"))
        except (RepoAccessError, UserError) as e:
            unpinned.append(rid)
            res.transcript.append((f"pin {rid}", "(floating)", f"cannot resolve: {e}"))
    files = scaffold.contribution(spec, base, pins)
    patch_text = make_patch(files)
    issues = scaffold.known_issues(spec) + [
        f"kas/include/{spec.vendor}.yml leaves {rid} on a branch (no commit): pin it" for rid in unpinned]
    post = scaffold.hub_post(spec, res.probe.conf_file, issues)
    out = args.out or Path("out/new-board") / spec.board

    targets: dict[Path, str] = {args.machines_dir / f"{spec.board}.yml": machine_text,
                                out / "hub-post.md": post, out / "contribution.patch": patch_text}
    for f in files:
        targets[out / "contribution" / f.path] = f.text
    write, same = _plan(targets, args.force)
    for path in write:
        write_atomic(path, targets[path])
    commit = None
    if args.apply:
        commit = apply_commit(args.apply, files, scaffold.commit_message(spec, base))

    if args.json:
        print_json({"board": spec.board, "spec": dataclasses.asdict(spec), "transcript": [
            {"field": f, "value": v, "origin": o} for f, v, o in res.transcript],
            "written": [str(p) for p in write], "unchanged": [str(p) for p in same],
            "contribution": [f.path for f in files], "commit": commit})
        return 0
    from rich.table import Table

    con = console()
    table = Table(title=f"new-board {spec.board}", show_lines=False)
    for col in ("field", "value", "from"):
        table.add_column(col)
    for f, v, o in res.transcript:
        table.add_row(escape(f), escape(v), escape(o))
    con.print(table)
    for p in write:
        con.print(f"[green]wrote[/] {escape(str(p))}")
    for p in same:
        con.print(f"[dim]unchanged {escape(str(p))}[/]")
    if args.apply:
        con.print(f"[green]committed[/] {commit[:12]} in {escape(str(args.apply))}" if commit
                  else f"[dim]{escape(str(args.apply))} already has this contribution[/]")
    return 0
