"""Turn existing kas board files (with their includes) into buildctl manifests.

Writes OUT/products/<name>.yml and OUT/machines/<board>.yml (one per kas file; the board is
named after the file). What every file shares becomes the product; local.conf lines map to
typed fields where buildctl has one. Composing the result gives kas files equivalent to the
originals. Nothing is written when any file cannot be imported.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from buildctl.commands._common import add_json_flag, console, path_arg, print_json, safe_name
from buildctl.fsutil import write_atomic
from buildctl.errors import UserError
from buildctl.importers.kas import import_files


def register(sub) -> None:
    p = sub.add_parser("import-kas", help="convert kas board files into buildctl manifests",
                       description=__doc__)
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="kas board files")
    p.add_argument("--out", type=path_arg, default=Path("."), help="where products/ and machines/ go")
    p.add_argument("--product", default="imported", help="product name (default: imported)")
    p.add_argument("--series", help="release series (default: guessed from the branches)")
    p.add_argument("--force", action="store_true", help="overwrite existing manifests")
    add_json_flag(p)
    p.set_defaults(func=run)


class _Dumper(yaml.SafeDumper):
    pass


def _flow_refs(dumper, data):
    # refs entries ({branch, commit}) read best on one line
    if set(data) <= {"branch", "tag", "commit"} or set(data) <= {"op", "value"}:
        return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
    return dumper.represent_mapping("tag:yaml.org,2002:map", data)


_Dumper.add_representer(dict, _flow_refs)


def _dump(data: dict, header: str) -> str:
    return header + yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100)


def _check_outputs(imp, files: list[Path]) -> None:
    """What import writes must load again: a value kas accepted but a manifest cannot hold
    (a machine name with a newline...) is refused here, naming the kas file, before writing."""
    from buildctl.errors import ManifestError
    from buildctl.manifest import schema
    from buildctl.manifest.yamlsrc import SourceMap

    source_of = {f.stem: f for f in files}
    items = [(imp.product, "product", files[0])]
    items += [(b, "board", source_of.get(name, files[0])) for name, b in imp.boards.items()]
    for data, kind, source in items:
        try:
            schema.validate(data, kind, SourceMap(Path(source)))
        except ManifestError as exc:
            what = f"{exc.field}: " if exc.field else ""
            raise UserError(f"{source}: cannot import: {what}{exc.message}") from None


def run(args) -> int:
    safe_name(args.product, "--product")
    for f in args.files:  # each board is named after its file
        safe_name(f.stem, f"{f}: board name")
    imp = import_files(args.files, product_name=args.product, out_dir=args.out, series=args.series)
    outputs = {args.out / "products" / f"{args.product}.yml": imp.product}
    for name, board in imp.boards.items():
        outputs[args.out / "machines" / f"{name}.yml"] = board
    _check_outputs(imp, args.files)
    existing = [p for p in outputs if p.exists()]
    if existing and not args.force:
        raise UserError(f"{existing[0]}: exists (use --force to overwrite)")
    sources = ", ".join(str(f) for f in args.files)
    for path, data in outputs.items():
        write_atomic(path, _dump(data, f"# Imported by buildctl import-kas from {sources}\n"))
    if args.json:
        print_json({"written": [str(p) for p in outputs], "notes": imp.notes})
    else:
        con = console()
        for p in outputs:
            con.print(f"[green]wrote[/] {p}")
        for n in imp.notes:
            con.print(f"[yellow]note[/] {n}")
    return 0
